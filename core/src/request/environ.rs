//! Building `environ` (PEP 3333) from a `Request`.
//!
//! The pure rules (mount splitting, header names, percent-decoding) come first
//! and are tested without Python; `build` then fills a copy of the app's
//! prebuilt template dict using interned keys, so a request costs one dict
//! copy plus one `str` per per-request value.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

use crate::python::embed::latin1;
use crate::request::Request;

/// Splits a decoded path at the mount point into `(SCRIPT_NAME, PATH_INFO)`.
/// `mount` has no trailing slash (`""` for the root). A path outside the mount
/// (a regex location, say) is all `PATH_INFO`.
pub fn split_mount<'a>(mount: &'a [u8], path: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    if mount.is_empty() {
        return (b"", path);
    }
    match path.strip_prefix(mount) {
        Some(rest) if rest.is_empty() || rest[0] == b'/' => (mount, rest),
        _ => (b"", path),
    }
}

/// Normalises a configured mount point: `/`, `` and `/app/` become `` and `/app`.
pub fn normalize_mount(mount: &str) -> String {
    let trimmed = mount.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are); `+` is left
/// alone, as it means a space only in query strings.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Where a request header goes in `environ`.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderKey {
    /// Dropped: names with `_` (a client could otherwise spoof a header a
    /// proxy set, `X_Forwarded_For` for `X-Forwarded-For`) or not a token.
    Drop,
    ContentType,
    ContentLength,
    /// `HTTP_` + the name upper-cased with `-` as `_`.
    Http(String),
}

/// Maps a header name to its `environ` key.
pub fn header_key(name: &[u8]) -> HeaderKey {
    if name.is_empty()
        || !name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^`|~".contains(&b))
    {
        return HeaderKey::Drop;
    }
    // httpoxy (CVE-2016-5385): `HTTP_PROXY` is the name CGI-era libraries
    // (requests, urllib) read as the proxy for the app's own outgoing
    // calls, so a client's `Proxy:` header would route them through the
    // client. No legitimate request sends it.
    if name.eq_ignore_ascii_case(b"proxy") {
        return HeaderKey::Drop;
    }
    if name.eq_ignore_ascii_case(b"content-type") {
        return HeaderKey::ContentType;
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        return HeaderKey::ContentLength;
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    for &b in name {
        key.push(if b == b'-' {
            '_'
        } else {
            b.to_ascii_uppercase() as char
        });
    }
    HeaderKey::Http(key)
}

/// The separator for repeated headers: cookies are joined as one cookie list.
pub fn join_separator(key: &str) -> &'static str {
    if key == "HTTP_COOKIE" { "; " } else { ", " }
}

/// Headers common enough to deserve interned keys (lower-case name, key).
const COMMON_HEADERS: &[(&str, &str)] = &[
    ("host", "HTTP_HOST"),
    ("user-agent", "HTTP_USER_AGENT"),
    ("accept", "HTTP_ACCEPT"),
    ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
    ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
    ("connection", "HTTP_CONNECTION"),
    ("cookie", "HTTP_COOKIE"),
    ("referer", "HTTP_REFERER"),
    ("cache-control", "HTTP_CACHE_CONTROL"),
    ("origin", "HTTP_ORIGIN"),
    ("authorization", "HTTP_AUTHORIZATION"),
    ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
    ("x-requested-with", "HTTP_X_REQUESTED_WITH"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    (
        "upgrade-insecure-requests",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
    ),
    ("content-encoding", "HTTP_CONTENT_ENCODING"),
];

fn common_header(name: &[u8]) -> Option<usize> {
    COMMON_HEADERS
        .iter()
        .position(|(n, _)| n.len() == name.len() && name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Interned `str` keys and constant values, made once per process.
struct Keys {
    request_method: Py<PyString>,
    script_name: Py<PyString>,
    path_info: Py<PyString>,
    query_string: Py<PyString>,
    request_uri: Py<PyString>,
    server_name: Py<PyString>,
    server_port: Py<PyString>,
    server_protocol: Py<PyString>,
    remote_addr: Py<PyString>,
    remote_port: Py<PyString>,
    content_type: Py<PyString>,
    content_length: Py<PyString>,
    https: Py<PyString>,
    url_scheme: Py<PyString>,
    input: Py<PyString>,
    input_terminated: Py<PyString>,
    http: Py<PyString>,
    https_value: Py<PyString>,
    on: Py<PyString>,
    common: Vec<Py<PyString>>,
    methods: Vec<(&'static [u8], Py<PyString>)>,
    protocols: Vec<(&'static [u8], Py<PyString>)>,
}

static KEYS: PyOnceLock<Keys> = PyOnceLock::new();

/// Makes the interned keys now, in the interpreter being set up (the main
/// one: the keys then outlive every application group's).
pub(crate) fn warm(py: Python<'_>) {
    keys(py);
}

fn keys(py: Python<'_>) -> &Keys {
    KEYS.get_or_init(py, || {
        let i = |s: &str| PyString::intern(py, s).unbind();
        Keys {
            request_method: i("REQUEST_METHOD"),
            script_name: i("SCRIPT_NAME"),
            path_info: i("PATH_INFO"),
            query_string: i("QUERY_STRING"),
            request_uri: i("REQUEST_URI"),
            server_name: i("SERVER_NAME"),
            server_port: i("SERVER_PORT"),
            server_protocol: i("SERVER_PROTOCOL"),
            remote_addr: i("REMOTE_ADDR"),
            remote_port: i("REMOTE_PORT"),
            content_type: i("CONTENT_TYPE"),
            content_length: i("CONTENT_LENGTH"),
            https: i("HTTPS"),
            url_scheme: i("wsgi.url_scheme"),
            input: i("wsgi.input"),
            input_terminated: i("wsgi.input_terminated"),
            http: i("http"),
            https_value: i("https"),
            on: i("on"),
            common: COMMON_HEADERS.iter().map(|(_, k)| i(k)).collect(),
            methods: [
                &b"GET"[..],
                b"POST",
                b"HEAD",
                b"PUT",
                b"DELETE",
                b"PATCH",
                b"OPTIONS",
            ]
            .into_iter()
            .map(|m| (m, i(std::str::from_utf8(m).expect("ascii"))))
            .collect(),
            protocols: [&b"HTTP/1.1"[..], b"HTTP/1.0", b"HTTP/2.0"]
                .into_iter()
                .map(|p| (p, i(std::str::from_utf8(p).expect("ascii"))))
                .collect(),
        }
    })
}

fn cached_or_latin1<'py>(
    py: Python<'py>,
    table: &[(&'static [u8], Py<PyString>)],
    value: &[u8],
) -> Bound<'py, PyString> {
    for (k, v) in table {
        if *k == value {
            return v.bind(py).clone();
        }
    }
    latin1(py, value)
}

fn port_str(py: Python<'_>, port: u16) -> Bound<'_, PyString> {
    let mut buf = [0u8; 5];
    let mut n = port;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    latin1(py, &buf[i..])
}

/// How the body is presented to the app, decided before `environ` is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyInfo {
    /// The body was inflated from gzip: `CONTENT_LENGTH` is its inflated size
    /// and `Content-Encoding` is no longer the app's business.
    pub inflated_len: Option<u64>,
    /// `wsgi.input_terminated`: the app reads until EOF, not CONTENT_LENGTH.
    pub terminated: bool,
}

/// Fills a copy of `template` with this request's values.
pub(crate) fn build<'py, R: Request + ?Sized>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    mount: &[u8],
    req: &R,
    input: Bound<'py, PyAny>,
    body: BodyInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let k = keys(py);
    let env = template.copy()?;
    let (script_name, path_info) = split_mount(mount, req.path());
    env.set_item(
        k.request_method.bind(py),
        cached_or_latin1(py, &k.methods, req.method()),
    )?;
    env.set_item(k.script_name.bind(py), latin1(py, script_name))?;
    env.set_item(k.path_info.bind(py), latin1(py, path_info))?;
    env.set_item(k.query_string.bind(py), latin1(py, req.query()))?;
    env.set_item(k.request_uri.bind(py), latin1(py, req.uri()))?;
    env.set_item(k.server_name.bind(py), latin1(py, req.server_name()))?;
    env.set_item(k.server_port.bind(py), port_str(py, req.server_port()))?;
    env.set_item(
        k.server_protocol.bind(py),
        cached_or_latin1(py, &k.protocols, req.protocol()),
    )?;
    env.set_item(k.remote_addr.bind(py), latin1(py, req.remote_addr()))?;
    env.set_item(k.remote_port.bind(py), port_str(py, req.remote_port()))?;
    if req.is_https() {
        env.set_item(k.https.bind(py), k.on.bind(py))?;
        env.set_item(k.url_scheme.bind(py), k.https_value.bind(py))?;
    } else {
        env.set_item(k.url_scheme.bind(py), k.http.bind(py))?;
    }
    env.set_item(k.input.bind(py), input)?;
    if body.terminated {
        env.set_item(k.input_terminated.bind(py), true)?;
    }
    if let Some(n) = body.inflated_len {
        env.set_item(k.content_length.bind(py), n.to_string())?;
    }

    let mut failed: Option<PyErr> = None;
    req.for_each_header(&mut |name, value| {
        if failed.is_some() {
            return;
        }
        if let Err(e) = add_header(py, k, &env, name, value, body.inflated_len.is_some()) {
            failed = Some(e);
        }
    });
    req.for_each_extra_var(&mut |name, value| {
        if failed.is_some() {
            return;
        }
        let r = env.set_item(latin1(py, name), latin1(py, value));
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(env),
    }
}

fn add_header<'py>(
    py: Python<'py>,
    k: &Keys,
    env: &Bound<'py, PyDict>,
    name: &[u8],
    value: &[u8],
    inflated: bool,
) -> PyResult<()> {
    let key: Bound<'py, PyString> = if let Some(i) = common_header(name) {
        if inflated && COMMON_HEADERS[i].1 == "HTTP_CONTENT_ENCODING" {
            return Ok(());
        }
        k.common[i].bind(py).clone()
    } else {
        match header_key(name) {
            HeaderKey::Drop => return Ok(()),
            HeaderKey::ContentType => {
                if !env.contains(k.content_type.bind(py))? {
                    env.set_item(k.content_type.bind(py), latin1(py, value))?;
                }
                return Ok(());
            }
            HeaderKey::ContentLength => {
                if !inflated && !env.contains(k.content_length.bind(py))? {
                    env.set_item(k.content_length.bind(py), latin1(py, value))?;
                }
                return Ok(());
            }
            HeaderKey::Http(s) => PyString::new(py, &s),
        }
    };
    match env.get_item(&key)? {
        None => env.set_item(key, latin1(py, value)),
        Some(old) => {
            let sep = join_separator(key.to_str()?);
            let mut joined = old.cast::<PyString>()?.to_str()?.to_owned();
            joined.push_str(sep);
            // `old` came from latin-1 bytes, so appending latin-1 keeps it so.
            joined.extend(value.iter().map(|&b| b as char));
            env.set_item(key, joined)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_splitting() {
        assert_eq!(split_mount(b"", b"/a/b"), (&b""[..], &b"/a/b"[..]));
        assert_eq!(split_mount(b"/mnt", b"/mnt"), (&b"/mnt"[..], &b""[..]));
        assert_eq!(split_mount(b"/mnt", b"/mnt/"), (&b"/mnt"[..], &b"/"[..]));
        assert_eq!(
            split_mount(b"/mnt", b"/mnt/x/y"),
            (&b"/mnt"[..], &b"/x/y"[..])
        );
        // A prefix that is not a whole path segment is not the mount.
        assert_eq!(split_mount(b"/mnt", b"/mntx"), (&b""[..], &b"/mntx"[..]));
        assert_eq!(split_mount(b"/mnt", b"/other"), (&b""[..], &b"/other"[..]));
    }

    #[test]
    fn mount_normalisation() {
        assert_eq!(normalize_mount("/"), "");
        assert_eq!(normalize_mount(""), "");
        assert_eq!(normalize_mount("/app/"), "/app");
        assert_eq!(normalize_mount("app"), "/app");
        assert_eq!(normalize_mount("/a/b"), "/a/b");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"/a%20b"), b"/a b");
        assert_eq!(percent_decode(b"/caf%C3%A9"), "/café".as_bytes());
        assert_eq!(percent_decode(b"/100%"), b"/100%");
        assert_eq!(percent_decode(b"/%zz"), b"/%zz");
        assert_eq!(percent_decode(b"/%4"), b"/%4");
        assert_eq!(percent_decode(b"/a+b"), b"/a+b");
        assert_eq!(percent_decode(b"%2F"), b"/");
    }

    #[test]
    fn header_keys() {
        assert_eq!(header_key(b"Host"), HeaderKey::Http("HTTP_HOST".into()));
        assert_eq!(
            header_key(b"X-Forwarded-For"),
            HeaderKey::Http("HTTP_X_FORWARDED_FOR".into())
        );
        assert_eq!(header_key(b"content-type"), HeaderKey::ContentType);
        assert_eq!(header_key(b"Content-Length"), HeaderKey::ContentLength);
        assert_eq!(header_key(b"X_Forwarded_For"), HeaderKey::Drop);
        assert_eq!(header_key(b"Bad Header"), HeaderKey::Drop);
        assert_eq!(header_key(b""), HeaderKey::Drop);
        assert_eq!(header_key(b"Proxy"), HeaderKey::Drop, "httpoxy");
        assert_eq!(header_key(b"PROXY"), HeaderKey::Drop, "httpoxy");
        assert_eq!(
            header_key(b"Proxy-Authorization"),
            HeaderKey::Http("HTTP_PROXY_AUTHORIZATION".into())
        );
    }

    #[test]
    fn common_headers_agree_with_the_rule() {
        for (name, key) in COMMON_HEADERS {
            assert_eq!(
                header_key(name.as_bytes()),
                HeaderKey::Http(key.to_string())
            );
            assert_eq!(
                common_header(name.to_uppercase().as_bytes()),
                common_header(name.as_bytes())
            );
        }
    }

    #[test]
    fn separators() {
        assert_eq!(join_separator("HTTP_COOKIE"), "; ");
        assert_eq!(join_separator("HTTP_ACCEPT"), ", ");
    }
}

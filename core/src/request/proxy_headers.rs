//! Headers a front proxy sets about the client (`X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, ...), trusted as mod_wsgi's
//! `WSGITrustedProxyHeaders` and `WSGITrustedProxies` say: only the headers
//! named, only from the proxies listed (any client when none are), and the
//! other headers of the same kind removed, so an app that reads them
//! cannot be lied to by a client.

use std::net::IpAddr;

use crate::request::OwnedRequest;

/// An address or network a trusted proxy connects from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    addr: IpAddr,
    bits: u8,
}

impl Subnet {
    /// `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `::1`, `fd00::/8`.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let bad = || format!("Unable to parse trusted proxy IP address/subnet of \"{s}\".");
        let (ip, mask) = match s.split_once('/') {
            Some((ip, mask)) => (ip, Some(mask)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match mask {
            None => full,
            Some(m) => match (m.parse::<u8>(), m.parse::<std::net::Ipv4Addr>()) {
                (Ok(b), _) if b <= full => b,
                (_, Ok(dotted)) if addr.is_ipv4() => {
                    let m = u32::from(dotted);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return Err(bad());
                    }
                    m.leading_ones() as u8
                }
                _ => return Err(bad()),
            },
        };
        Ok(Subnet { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The kinds of header a proxy sets, each one's names as environ keys.
const CLIENT: &[&str] = &["HTTP_X_FORWARDED_FOR", "HTTP_X_CLIENT_IP", "HTTP_X_REAL_IP"];
const SCHEME: &[&str] = &[
    "HTTP_X_FORWARDED_HTTPS",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SCHEME",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_HTTPS",
    "HTTP_X_SCHEME",
];
const HOST: &[&str] = &["HTTP_X_FORWARDED_HOST", "HTTP_X_HOST"];
const SCRIPT_NAME: &[&str] = &["HTTP_X_SCRIPT_NAME", "HTTP_X_FORWARDED_SCRIPT_NAME"];

/// What a configuration trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// Environ keys of the trusted headers (`HTTP_X_FORWARDED_FOR`), in
    /// the configuration's order.
    pub headers: Vec<String>,
    /// Where they are trusted from (`None`: from any client).
    pub proxies: Option<Vec<Subnet>>,
}

/// A header name as its environ key: `X-Forwarded-For` is
/// `HTTP_X_FORWARDED_FOR` (letters, digits and `-` only).
pub fn environ_key(header: &str) -> Result<String, String> {
    if header.is_empty()
        || !header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "\"{header}\" is not a header name (letters, digits and '-')"
        ));
    }
    Ok(format!(
        "HTTP_{}",
        header.to_ascii_uppercase().replace('-', "_")
    ))
}

fn key_of(name: &[u8]) -> String {
    let mut k = String::from("HTTP_");
    for &b in name {
        k.push(if b == b'-' {
            '_'
        } else {
            b.to_ascii_uppercase() as char
        });
    }
    k
}

/// The kinds of header, in the order `Found::used` keeps them: the client,
/// the scheme, the host, the mount point.
const KINDS: [&[&str]; 4] = [CLIENT, SCHEME, HOST, SCRIPT_NAME];

/// What the trusted headers of one request gave.
#[derive(Default)]
struct Found<'k> {
    /// Per kind (`KINDS`), the header whose value was taken.
    used: [Option<&'k str>; 4],
    /// Variables to set in environ.
    vars: Vec<(&'static str, String)>,
    /// The scheme: https or not.
    https: Option<bool>,
}

impl Found<'_> {
    fn apply_to(self, req: &mut OwnedRequest) {
        if let Some(on) = self.https {
            // wsgi.url_scheme follows; HTTPS is "on" when it is https, as
            // behind mod_ssl (mod_wsgi leaves HTTPS out after a proxy's
            // header).
            req.https = on;
            req.extra_vars.retain(|(n, _)| n.as_slice() != b"HTTPS");
        }
        for (name, v) in self.vars {
            req.extra_vars
                .retain(|(n, _)| n.as_slice() != name.as_bytes());
            req.extra_vars
                .push((name.as_bytes().to_vec(), v.into_bytes()));
        }
    }
}

impl TrustedProxies {
    /// Rewrites `req` as mod_wsgi rewrites its environ: the client
    /// address, host, scheme, server name and port and mount point the
    /// trusted headers give, and the other headers of each kind named
    /// removed.
    pub fn apply(&self, req: &mut OwnedRequest) {
        if self.headers.is_empty() {
            return;
        }
        let trusted = self.trusts(req);
        // Per kind: whether the configuration names one, and what the
        // trusted headers gave.
        let mut named: [bool; 4] = [false; 4];
        let mut found = Found::default();
        for key in &self.headers {
            let key = key.as_str();
            if let Some(k) = KINDS.iter().position(|names| names.contains(&key)) {
                named[k] = true;
            }
            if !trusted {
                continue;
            }
            let value = req
                .headers
                .iter()
                .find(|(n, _)| key_of(n) == key)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            if let Some(v) = value {
                self.take(req, key, v, &mut found);
            }
        }
        // The headers of a kind named that were not the one used are gone.
        for (k, names) in KINDS.iter().enumerate() {
            if named[k] {
                req.headers.retain(|(n, _)| {
                    let key = key_of(n);
                    !names.contains(&key.as_str()) || found.used[k] == Some(key.as_str())
                });
            }
        }
        found.apply_to(req);
    }

    /// Whether the request came from a trusted proxy (any, when none is
    /// listed).
    fn trusts(&self, req: &OwnedRequest) -> bool {
        match &self.proxies {
            None => true,
            Some(nets) => std::str::from_utf8(&req.remote_addr)
                .ok()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(ip))),
        }
    }

    /// What the trusted header `key` says (value `v`), noted in `found`;
    /// the client address and X-Forwarded-For are rewritten at once.
    fn take<'k>(&self, req: &mut OwnedRequest, key: &'k str, v: String, found: &mut Found<'k>) {
        match key {
            "HTTP_X_FORWARDED_FOR" => {
                let (client, list) = self.forwarded_for(&v);
                if let Some(client) = client {
                    req.remote_addr = client.into_bytes();
                }
                if let Some(list) = list {
                    set_header(req, key, list);
                }
                found.used[0] = Some(key);
            }
            "HTTP_X_CLIENT_IP" | "HTTP_X_REAL_IP" => {
                req.remote_addr = v.into_bytes();
                found.used[0] = Some(key);
            }
            "HTTP_X_FORWARDED_HOST" | "HTTP_X_HOST" => {
                found.vars.push(("HTTP_HOST", v));
                found.used[2] = Some(key);
            }
            "HTTP_X_FORWARDED_SERVER" => found.vars.push(("SERVER_NAME", v)),
            "HTTP_X_FORWARDED_PORT" => found.vars.push(("SERVER_PORT", v)),
            "HTTP_X_SCRIPT_NAME" | "HTTP_X_FORWARDED_SCRIPT_NAME" => {
                found.vars.push(("mod_wsgi.mount_point", v.clone()));
                found.vars.push(("SCRIPT_NAME", v));
                found.used[3] = Some(key);
            }
            "HTTP_X_FORWARDED_PROTO" | "HTTP_X_FORWARDED_SCHEME" | "HTTP_X_SCHEME" => {
                found.used[1] = Some(key);
                if v.eq_ignore_ascii_case("https") {
                    found.https = Some(true);
                } else if v.eq_ignore_ascii_case("http") {
                    found.https = Some(false);
                }
            }
            "HTTP_X_FORWARDED_HTTPS" | "HTTP_X_FORWARDED_SSL" | "HTTP_X_HTTPS" => {
                found.used[1] = Some(key);
                let is = |words: [&str; 3]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
                if is(["on", "true", "1"]) {
                    found.https = Some(true);
                } else if is(["off", "false", "0"]) {
                    found.https = Some(false);
                }
            }
            _ => {}
        }
    }

    /// The client an `X-Forwarded-For` names, and the list to leave in its
    /// place (`None`: as it is). With trusted proxies, the address before
    /// the trusted ones at its end (the first when all are trusted, the
    /// last when its last is not), and the list from there on; without,
    /// the first.
    fn forwarded_for(&self, value: &str) -> (Option<String>, Option<String>) {
        let items: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let Some(nets) = &self.proxies else {
            return (items.first().map(|s| s.to_string()), None);
        };
        if items.is_empty() {
            return (None, None);
        }
        let mut first = None;
        for (i, item) in items.iter().enumerate().rev() {
            match item.parse::<IpAddr>() {
                Ok(ip) if nets.iter().any(|n| n.contains(ip)) => first = Some(i),
                _ => break,
            }
        }
        let from = match first {
            Some(f) => f.saturating_sub(1),
            None => items.len() - 1,
        };
        (
            Some(items[from].to_string()),
            Some(items[from..].join(", ")),
        )
    }
}

fn set_header(req: &mut OwnedRequest, key: &str, value: String) {
    if let Some(h) = req.headers.iter_mut().find(|(n, _)| key_of(n) == key) {
        h.1 = value.into_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(remote: &str, headers: &[(&str, &str)]) -> OwnedRequest {
        OwnedRequest {
            method: b"GET".to_vec(),
            uri: b"/".to_vec(),
            path: b"/".to_vec(),
            query: Vec::new(),
            protocol: b"HTTP/1.1".to_vec(),
            https: false,
            server_name: b"localhost".to_vec(),
            server_port: 80,
            remote_addr: remote.as_bytes().to_vec(),
            remote_port: 5555,
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            extra_vars: Vec::new(),
            chunked: false,
            body: None,
        }
    }

    fn trust(headers: &[&str], proxies: Option<&[&str]>) -> TrustedProxies {
        TrustedProxies {
            headers: headers.iter().map(|h| environ_key(h).unwrap()).collect(),
            proxies: proxies.map(|p| p.iter().map(|s| Subnet::parse(s).unwrap()).collect()),
        }
    }

    fn header<'a>(r: &'a OwnedRequest, name: &str) -> Option<&'a [u8]> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    fn var<'a>(r: &'a OwnedRequest, name: &str) -> Option<&'a [u8]> {
        r.extra_vars
            .iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn subnets_parse_and_match() {
        let net = Subnet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.9.8.7".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert_eq!(Subnet::parse("10.0.0.0/255.0.0.0").unwrap(), net);
        assert!(
            Subnet::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Subnet::parse("0.0.0.0/0")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        for bad in ["example.com", "10.0.0.0/33", "10.0.0.0/255.0.255.0", ""] {
            let e = Subnet::parse(bad).unwrap_err();
            assert!(e.contains("Unable to parse trusted proxy"), "{bad}: {e}");
        }
        assert!(environ_key("X_Forwarded").is_err());
        assert_eq!(environ_key("x-real-ip").unwrap(), "HTTP_X_REAL_IP");
    }

    #[test]
    fn any_client_is_trusted_without_a_proxy_list() {
        let t = trust(
            &["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"],
            None,
        );
        let mut r = req(
            "127.0.0.1",
            &[
                ("X-Forwarded-For", "203.0.113.9, 10.0.0.2"),
                ("X-Real-IP", "6.6.6.6"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-SSL", "off"),
                ("X-Forwarded-Host", "www.example.com"),
                ("X-Host", "evil.example"),
            ],
        );
        t.apply(&mut r);
        assert_eq!(r.remote_addr, b"203.0.113.9");
        assert!(r.https);
        assert_eq!(var(&r, "HTTPS"), None);
        assert_eq!(var(&r, "HTTP_HOST"), Some(&b"www.example.com"[..]));
        // The header used stays as it was; the others of its kind go.
        assert_eq!(
            header(&r, "X-Forwarded-For"),
            Some(&b"203.0.113.9, 10.0.0.2"[..])
        );
        for gone in ["X-Real-IP", "X-Forwarded-SSL", "X-Host"] {
            assert_eq!(header(&r, gone), None, "{gone}");
        }
    }

    #[test]
    fn an_untrusted_client_changes_nothing_and_loses_the_headers() {
        let t = trust(
            &["X-Forwarded-For", "X-Forwarded-Proto"],
            Some(&["10.0.0.0/8"]),
        );
        let mut r = req(
            "192.0.2.1",
            &[
                ("X-Forwarded-For", "1.1.1.1"),
                ("X-Client-IP", "2.2.2.2"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "kept.example"),
            ],
        );
        t.apply(&mut r);
        assert_eq!(r.remote_addr, b"192.0.2.1");
        assert!(!r.https);
        for gone in ["X-Forwarded-For", "X-Client-IP", "X-Forwarded-Proto"] {
            assert_eq!(header(&r, gone), None, "{gone}");
        }
        // A kind not named is left alone.
        assert_eq!(header(&r, "X-Forwarded-Host"), Some(&b"kept.example"[..]));
    }

    #[test]
    fn forwarded_for_through_trusted_proxies_names_the_client_before_them() {
        let t = trust(&["X-Forwarded-For"], Some(&["10.0.0.0/8"]));
        let cases = [
            (
                "198.51.100.7, 10.0.0.5, 10.0.0.6",
                "198.51.100.7",
                "198.51.100.7, 10.0.0.5, 10.0.0.6",
            ),
            (
                "6.6.6.6, 198.51.100.7, 10.0.0.5",
                "198.51.100.7",
                "198.51.100.7, 10.0.0.5",
            ),
            // The last is no trusted proxy: it is the client.
            ("10.0.0.5, 198.51.100.7", "198.51.100.7", "198.51.100.7"),
            // All trusted: the first (mod_wsgi's rule).
            ("10.0.0.1, 10.0.0.2", "10.0.0.1", "10.0.0.1, 10.0.0.2"),
        ];
        for (value, client, list) in cases {
            let mut r = req("10.1.1.1", &[("X-Forwarded-For", value)]);
            t.apply(&mut r);
            assert_eq!(r.remote_addr, client.as_bytes(), "{value}");
            assert_eq!(
                header(&r, "X-Forwarded-For"),
                Some(list.as_bytes()),
                "{value}"
            );
        }
    }

    #[test]
    fn server_port_and_script_name_come_as_they_are() {
        let t = trust(
            &[
                "X-Forwarded-Server",
                "X-Forwarded-Port",
                "X-Script-Name",
                "X-Forwarded-HTTPS",
            ],
            None,
        );
        let mut r = req(
            "127.0.0.1",
            &[
                ("X-Forwarded-Server", "front.example"),
                ("X-Forwarded-Port", "8443"),
                ("X-Script-Name", "/app"),
                ("X-Forwarded-HTTPS", "on"),
            ],
        );
        t.apply(&mut r);
        assert_eq!(var(&r, "SERVER_NAME"), Some(&b"front.example"[..]));
        assert_eq!(var(&r, "SERVER_PORT"), Some(&b"8443"[..]));
        assert_eq!(var(&r, "SCRIPT_NAME"), Some(&b"/app"[..]));
        assert_eq!(var(&r, "mod_wsgi.mount_point"), Some(&b"/app"[..]));
        assert!(r.https);
    }
}

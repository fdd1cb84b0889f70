//! What a client sees on the wire, checked the same way on both servers
//! (routes of tests/apps/cases.py under `prefix`): responses that end where
//! their framing says on a kept-alive connection, latin-1 headers, short
//! bodies cut at once, versions no app should see, and the exit statuses of
//! the processes an app starts.

use std::time::{Duration, Instant};

use crate::http::{self, Conn, Request, Response};

/// The statuses whose body must be dropped, and the ways an app yields one.
pub const NO_CONTENT_STATUSES: &[u16] = &[204, 205, 304];
pub const BODY_SHAPES: &[&str] = &["list", "gen", "write", "file"];

/// The marker the cases app's second request answers with.
const NEXT: &str = "latin-1 headers";

/// Sends `first` and then a plain request on one kept-alive connection; the
/// second answer must be intact (a stray body from the first would be read
/// as its status line).
pub fn then_next(port: u16, prefix: &str, first: Request) -> Response {
    let what = format!("{} {}", first.method, first.path);
    let mut conn = Conn::open(port);
    let r = conn.send(first).unwrap_or_else(|e| panic!("{what}: {e}"));
    let next = conn
        .send(Request::get(&format!("{prefix}/latin1")))
        .unwrap_or_else(|e| panic!("the response after {what} is garbled: {e}"));
    assert_eq!(next.status, 200, "after {what}");
    assert_eq!(next.text(), NEXT, "after {what}");
    r
}

/// 204/205/304 with a body from the app, in every shape, and HEAD: no body
/// byte reaches the client and the next response is intact.
pub fn no_body_leaks(port: u16, prefix: &str) {
    for &status in NO_CONTENT_STATUSES {
        for shape in BODY_SHAPES {
            let path = format!("{prefix}/no-content?status={status}&shape={shape}&length=26");
            let r = then_next(port, prefix, Request::get(&path));
            assert_eq!(r.status, status, "{path}");
            assert!(r.body.is_empty(), "{path}: {:?}", r.text());
            assert_eq!(r.header("Transfer-Encoding"), None, "{path}");
            match status {
                204 => assert_eq!(r.header("Content-Length"), None, "{path}"),
                205 => assert_eq!(r.header("Content-Length"), Some("0"), "{path}"),
                _ => {}
            }
        }
    }
    for path in ["/stream?n=3", "/big?size=5000", "/write", "/file?size=5000"] {
        let path = format!("{prefix}{path}");
        let r = then_next(port, prefix, Request::get(&path).method("HEAD"));
        assert_eq!(r.status, 200, "HEAD {path}");
    }
}

/// PEP 3333 header values and the reason phrase are latin-1 on the wire.
pub fn latin1_headers(port: u16, prefix: &str) {
    let r = http::get(port, &format!("{prefix}/latin1"));
    assert_eq!(r.reason, "Tr\u{e8}s bien");
    assert_eq!(r.header("X-Test"), Some("caf\u{e9}"));
    assert_eq!(r.header("X-High"), Some("\u{ff}\u{a0}end"));
}

/// A body shorter than the app's Content-Length: the client gets what was
/// produced and then the connection closes at once, so the response is
/// plainly incomplete; a longer one is cut to the promise and the
/// connection stays usable.
pub fn length_promises(port: u16, prefix: &str) {
    for shape in BODY_SHAPES {
        let path = format!("{prefix}/short-body?shape={shape}");
        let start = Instant::now();
        let r = http::get(port, &path);
        let took = start.elapsed();
        assert!(!r.complete, "{path}: a short body must not look complete");
        assert!(
            took < Duration::from_secs(2),
            "{path}: the client waited {took:?} for bytes that never come"
        );
        assert_eq!(r.text(), "only twenty bytes...", "{path}");
    }
    let r = then_next(port, prefix, Request::get(&format!("{prefix}/long-body")));
    assert_eq!(r.text(), "12345");
    let r = then_next(
        port,
        prefix,
        Request::get(&format!("{prefix}/same-lengths")),
    );
    assert_eq!(r.headers_named("Content-Length"), ["5"]);
    assert_eq!(r.text(), "12345");
}

/// Request lines no app should see get the server's answer; `log` reads
/// the error log, where the app would have printed the marker.
pub fn odd_request_lines(port: u16, prefix: &str, log: impl Fn() -> String) {
    for version in ["HTTP/9.9", "HTTP/2.0", "HTTP/3.0"] {
        let marker = format!("version-{}", version.replace('/', "-"));
        let raw = format!("GET {prefix}/log?marker={marker} {version}\r\nHost: x\r\n\r\n");
        let r = http::send(port, raw.as_bytes(), false).expect(version);
        assert!(
            r.status == 505 || r.status == 400,
            "{version}: {} {}",
            r.status,
            r.text()
        );
        // The app prints "stdout says MARKER" (the server may log the
        // request line itself).
        assert!(
            !log().contains(&format!("says {marker}")),
            "{version} reached the app:\n{}",
            log()
        );
    }
    // A later HTTP/1.x is read as HTTP/1.1 (RFC 9112).
    let raw = format!("GET {prefix}/latin1 HTTP/1.9\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = http::send(port, raw.as_bytes(), false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, NEXT));
}

/// The processes an app starts report their own exit statuses.
pub fn child_exit_statuses(port: u16, prefix: &str) {
    for (how, expect) in [
        ("popen", "3"),
        ("run", "5"),
        ("communicate", "7:3000000"),
        ("many", "ok"),
        ("system", "9"),
    ] {
        let r = http::get(port, &format!("{prefix}/children?how={how}"));
        assert_eq!((r.status, r.text().as_str()), (200, expect), "{how}");
    }
}

/// Over HTTP/2 (TLS; curl on one connection, `base` an https URL with the
/// prefix): a 204 and a 304 whose app yields a body, then a plain request.
/// A DATA frame on either is a protocol error that fails curl.
pub fn no_body_leaks_over_http2(base: &str) {
    let out = std::process::Command::new("curl")
        .args(["-sSk", "--http2", "-w", "[%{http_code} %{http_version}]"])
        .arg(format!("{base}/no-content?status=204&shape=gen"))
        .arg(format!("{base}/no-content?status=304&shape=list"))
        .arg(format!("{base}/latin1"))
        .output()
        .expect("run curl");
    let text = crate::output_text(&out);
    assert!(out.status.success(), "curl: {text}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("[204 2][304 2]{NEXT}[200 2]"),
        "{text}"
    );
}

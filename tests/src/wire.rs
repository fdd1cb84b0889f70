//! What a client sees on the wire, checked the same way on both servers
//! (routes of tests/apps/cases.py under `prefix`): responses that end where
//! their framing says on a kept-alive connection, latin-1 headers, short
//! bodies cut at once, versions no app should see, and the exit statuses of
//! the processes an app starts.

use std::io::{BufRead, BufReader, Read, Write};
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

/// A generator that sleeps between items: each item reaches the client as
/// it is produced, not with the next one (PEP 3333: no block is delayed).
pub fn each_chunk_leaves_at_once(port: u16, prefix: &str) {
    const DELAY: f64 = 0.4;
    let mut s = http::connect(port);
    let start = Instant::now();
    s.write_all(&Request::get(&format!("{prefix}/stream?n=4&size=8&delay={DELAY}")).to_bytes(port))
        .unwrap();
    let mut reader = BufReader::new(s);
    let (status, headers) = http::read_head(&mut reader).unwrap();
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("Transfer-Encoding") && v == "chunked"),
        "{headers:?}"
    );
    for i in 0..4 {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        assert_eq!(size.trim(), "8", "chunk {i}");
        let mut data = [0u8; 10];
        reader.read_exact(&mut data).unwrap();
        assert_eq!(&data[..2], format!("{i}:").as_bytes());
        let at = start.elapsed().as_secs_f64();
        let due = DELAY * i as f64;
        assert!(
            at >= due - 0.05 && at < due + 0.3,
            "chunk {i} arrived after {at:.3} s; it was produced at {due:.1} s"
        );
    }
}

/// While a response streams, the app reads its request body and prints:
/// the body comes back whole and the lines reach the error log (`log`).
pub fn streaming_while_reading_and_logging(port: u16, prefix: &str, log: impl Fn() -> String) {
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    for size in [4096, 65536] {
        let r = Request::post(
            &format!("{prefix}/stream-echo?size={size}"),
            "application/octet-stream",
            &body,
        )
        .send(port);
        assert_eq!(r.status, 200);
        assert!(
            r.complete && r.body == body,
            "size {size}: the echo differs"
        );
    }
    let r = http::get(port, &format!("{prefix}/stream?n=50&size=100&log=W7"));
    assert_eq!(r.body.len(), 5000);
    let lines = crate::wait_until(Duration::from_secs(10), || {
        (0..50).all(|i| log().contains(&format!("streaming W7 {i}")))
    });
    assert!(lines, "lines missing:\n{}", log());
}

/// A client that reads a 1 GiB stream slowly: the app is throttled, and the
/// server's memory (`rss`, KiB) does not grow with what the app produced.
pub fn slow_reader_is_throttled(port: u16, prefix: &str, rss: impl Fn() -> u64) {
    http::get(port, &format!("{prefix}/cookies"));
    let baseline = rss();
    // 1 GiB generated in 64 KiB chunks, read slowly.
    let mut s = http::connect(port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&Request::get(&format!("{prefix}/stream?n=16384&size=65536")).to_bytes(port))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let mut peak = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        got += s.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        peak = peak.max(rss());
    }
    assert!(got > 0);
    assert!(
        got < 512 << 20,
        "the client read {got} bytes: not slow enough to test"
    );
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < 64 * 1024,
        "server RSS grew by {growth} KiB for a slow reader"
    );
}

/// Uploads 64 MiB to `prefix`/consume (an app that reads it slowly) and
/// fails if the server's memory (`rss`, KiB) grows by 16 MiB or more
/// meanwhile: the body must stream at the app's pace, not pile up.
pub fn slow_upload_keeps_memory_flat(port: u16, prefix: &str, rss: impl Fn() -> u64) {
    let baseline = rss();
    let size = 64 << 20;
    let mut s = http::connect(port);
    let head = format!(
        "POST {prefix}/consume?delay=0.002 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let block = vec![b'u'; 1 << 20];
    let mut peak = 0;
    for _ in 0..(size >> 20) {
        s.write_all(&block).unwrap();
        peak = peak.max(rss());
    }
    let r = http::read_response(&mut std::io::BufReader::new(s), false).unwrap();
    assert_eq!(r.text(), size.to_string());
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < 16 * 1024,
        "the server's RSS grew by {growth} KiB during a 64 MiB upload"
    );
}

/// A 3 MB body posted to `prefix`/echo, read by the app in 8 KiB and 64 KiB
/// pieces and by lines, with a length and chunked: it comes back whole
/// every time (`what` names the server's setup in a failure).
pub fn uploads_in_pieces_arrive_whole(port: u16, prefix: &str, what: &str) {
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    for (how, chunked) in [
        ("chunks&size=8192", false),
        ("chunks&size=65536", false),
        ("chunks&size=65536", true),
        ("lines", false),
    ] {
        let mut req = Request::post(
            &format!("{prefix}/echo?how={how}"),
            "application/octet-stream",
            &large,
        );
        if chunked {
            req = req.chunked();
        }
        let r = req.send(port);
        assert_eq!(r.status, 200, "{what} {how}");
        assert!(
            r.body == large,
            "{what} {how} chunked={chunked}: the body differs"
        );
    }
}

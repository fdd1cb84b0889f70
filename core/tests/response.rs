//! Responses: the PEP 3333 contract, what apps that get it wrong see, close(),
//! Content-Length, file_wrapper, and client disconnects.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use oxwsgi_core::Outcome;
use oxwsgi_core::testing::{Event, MemoryRequest, MemorySink, serve};

/// Requests `path` of the cases app and expects a 500 whose log line names
/// the mistake.
fn expect_500(path: &str, message: &str) {
    let (resp, outcome) = get(cases(), path);
    assert_eq!(outcome, Outcome::Error(500), "{path}: {}", resp.text());
    assert_eq!(resp.status(), 500, "{path}");
    assert!(resp.finished(), "{path}");
    assert!(
        resp.text().contains("500 Internal Server Error"),
        "{path}: {}",
        resp.text()
    );
    let lines = logs_with(&format!("GET {path}: "));
    assert!(
        lines.iter().any(|l| l.contains(message)),
        "{path}: no log line with {message:?} in {lines:#?}"
    );
}

#[test]
fn str_body_is_named() {
    expect_500(
        "/str-body",
        "application returned str (body item 0), WSGI needs bytes: encode it",
    );
}

#[test]
fn str_return_is_named() {
    expect_500(
        "/str-return",
        "application returned str, WSGI needs bytes: encode it",
    );
}

#[test]
fn bytes_return_is_named() {
    expect_500(
        "/bytes-return",
        "application returned bytes itself, WSGI needs an iterable of bytes",
    );
}

#[test]
fn none_return_is_named() {
    expect_500("/none-return", "application returned None");
}

#[test]
fn status_must_be_a_str() {
    expect_500(
        "/int-status",
        "TypeError: status must be a str like \"200 OK\", got int",
    );
    expect_500(
        "/bad-status",
        "ValueError: status must be a str like \"200 OK\"",
    );
}

#[test]
fn headers_must_be_a_list_of_str_tuples() {
    expect_500(
        "/tuple-headers",
        "response headers must be a list of (name, value) tuples of str, got tuple",
    );
    expect_500(
        "/bytes-header",
        "response header 0 name must be str, got bytes",
    );
}

#[test]
fn forbidden_header_values() {
    expect_500("/hop-header", "\"Connection\" is a hop-by-hop header");
    expect_500("/non-latin1-header", "not latin-1");
    expect_500("/crlf-header", "CR, LF or NUL");
    expect_500(
        "/bad-content-length",
        "Content-Length: \"lots\" is not a number",
    );
}

#[test]
fn exceptions_before_headers_become_500_with_traceback() {
    expect_500(
        "/raise-early",
        "RuntimeError: the app failed before start_response",
    );
    let lines = logs_with("GET /raise-early: ");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Traceback (most recent call last)")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cases.py") && l.contains("in raise_early")),
        "{lines:#?}"
    );
}

#[test]
fn missing_or_repeated_start_response() {
    expect_500(
        "/no-start",
        "application returned without calling start_response",
    );
    expect_500(
        "/twice",
        "start_response called a second time without exc_info",
    );
}

#[test]
fn the_worker_keeps_serving_after_errors() {
    expect_500("/raise-early", "RuntimeError");
    let (resp, outcome) = get(cases(), "/cookies");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.status(), 200);
}

#[test]
fn error_after_headers_aborts_and_closes() {
    let before = closed_count();
    let (resp, outcome) = get(cases(), "/raise-late");
    assert_eq!(outcome, Outcome::Aborted);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, b"part one;");
    assert!(resp.aborted() && !resp.finished());
    assert!(
        !logs_with("GET /raise-late: RuntimeError: failure inside the response iterable")
            .is_empty()
    );
    assert_eq!(closed_count(), before + 1);
}

fn closed_count() -> u64 {
    get(cases(), "/closed").0.text().parse().unwrap()
}

#[test]
fn exc_info_replaces_headers_before_they_are_sent() {
    let (resp, outcome) = get(cases(), "/exc-info");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.text(), "app error page");
}

#[test]
fn exc_info_after_headers_reraises_and_aborts() {
    let (resp, outcome) = get(cases(), "/exc-info-late");
    assert_eq!(outcome, Outcome::Aborted);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, b"first part;");
    assert!(!logs_with("GET /exc-info-late: ValueError: late failure").is_empty());
}

#[test]
fn write_callable_comes_before_the_iterable() {
    let (resp, outcome) = get(cases(), "/write");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.text(), "written-1;written-2;returned");
    // write() data cannot be counted in advance: no Content-Length.
    assert_eq!(resp.header("Content-Length"), None);
}

#[test]
fn single_item_lists_get_a_content_length() {
    let (resp, _) = get(cases(), "/big?size=1000");
    assert_eq!(resp.header("Content-Length"), Some("1000"));
    assert_eq!(resp.body.len(), 1000);
    assert_eq!(resp.writes(), 1);
}

#[test]
fn generators_stream_chunk_by_chunk() {
    let before = closed_count();
    let (resp, outcome) = get(cases(), "/stream?n=4&size=8");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.header("Content-Length"), None);
    assert_eq!(resp.text(), "0:......1:......2:......3:......");
    let flushes_after_writes = resp
        .events
        .windows(2)
        .filter(|w| matches!(w[0], Event::Write(8)) && w[1] == Event::Flush)
        .count();
    assert_eq!(flushes_after_writes, 4, "{:?}", resp.events);
    assert_eq!(closed_count(), before + 1);
}

#[test]
fn short_body_aborts() {
    let (resp, outcome) = get(cases(), "/short-body");
    assert_eq!(outcome, Outcome::Aborted);
    assert_eq!(resp.header("Content-Length"), Some("100"));
    assert!(resp.aborted());
    assert!(
        !logs_with("GET /short-body: application promised 100 bytes in Content-Length but sent 20")
            .is_empty()
    );
}

#[test]
fn long_body_is_cut_at_content_length() {
    let (resp, outcome) = get(cases(), "/long-body");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.body, b"12345");
    assert!(
        !logs_with("GET /long-body: application sent more than its Content-Length of 5 bytes")
            .is_empty()
    );
}

#[test]
fn client_disconnect_stops_iteration_and_closes() {
    let before = closed_count();
    let (sink, shared) = MemorySink::failing_after(2);
    let mut req = MemoryRequest::get("/stream?n=1000&size=10");
    let outcome = oxwsgi_core::handle(cases(), &mut req, Box::new(sink));
    assert_eq!(outcome, Outcome::ClientGone);
    let resp = shared.lock().unwrap().clone();
    assert_eq!(resp.writes(), 2);
    assert_eq!(closed_count(), before + 1);
}

#[test]
fn close_errors_are_logged_and_the_response_stands() {
    let (resp, outcome) = get(cases(), "/close-raises");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.text(), "body");
    assert!(
        !logs_with(
            "GET /close-raises: close() of the response failed: RuntimeError: close() failed"
        )
        .is_empty()
    );
}

#[test]
fn bodiless_responses() {
    let (resp, _) = get(cases(), "/empty");
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.header("Content-Length"), None);
    assert!(resp.finished());
    let (resp, _) = get(cases(), "/headers-only");
    assert_eq!(resp.header("Content-Length"), Some("0"));
    assert_eq!(resp.header("X-Custom"), Some("yes"));
}

#[test]
fn head_requests_get_no_invented_length() {
    let (resp, _) = serve(cases(), MemoryRequest::new("HEAD", "/big?size=1000"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("Content-Length"), None);
}

#[test]
fn repeated_response_headers_are_kept() {
    let (resp, _) = get(cases(), "/cookies");
    let cookies: Vec<_> = resp
        .head
        .unwrap()
        .headers
        .into_iter()
        .filter(|(n, _)| n == "Set-Cookie")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
}

#[test]
fn file_wrapper_over_a_real_file_uses_send_file() {
    let (resp, outcome) = get(cases(), "/file?size=100000");
    assert_eq!(outcome, Outcome::Complete);
    assert!(
        resp.events.contains(&Event::SendFile {
            offset: 0,
            len: 100000
        }),
        "{:?}",
        resp.events
    );
    assert_eq!(resp.header("Content-Length"), Some("100000"));
    assert_eq!(resp.body.len(), 100000);
    assert_eq!(&resp.body[..4], &[0, 1, 2, 3]);
}

#[test]
fn file_wrapper_starts_at_the_file_position() {
    let (resp, _) = get(cases(), "/file?size=10000&skip=1000");
    assert!(
        resp.events.contains(&Event::SendFile {
            offset: 1000,
            len: 9000
        }),
        "{:?}",
        resp.events
    );
    assert_eq!(resp.body.len(), 9000);
    assert_eq!(resp.body[0], (1000 % 256) as u8);
}

#[test]
fn file_wrapper_over_a_file_like_iterates_blocks() {
    let (resp, outcome) = get(cases(), "/filelike");
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.text(), "from a file-like object ".repeat(10));
    assert!(
        !resp
            .events
            .iter()
            .any(|e| matches!(e, Event::SendFile { .. }))
    );
    assert!(resp.writes() > 30, "7-byte blocks: {}", resp.writes());
}

#[test]
fn python_output_goes_to_the_log() {
    let (resp, _) = get(cases(), "/log?marker=M4RK3R");
    assert_eq!(resp.text(), "logged M4RK3R");
    assert_eq!(logs_with("INFO python.stdout stdout says M4RK3R").len(), 1);
    assert_eq!(logs_with("ERROR python.stderr stderr says M4RK3R").len(), 1);
    assert_eq!(logs_with("ERROR wsgi.errors errors says M4RK3R").len(), 1);
}

/// A sink whose server code panics: the panic must not escape `handle`.
struct PanickingSink;

impl oxwsgi_core::ResponseSink for PanickingSink {
    fn start(&mut self, _: oxwsgi_core::ResponseHead) -> std::io::Result<()> {
        panic!("sink exploded");
    }
    fn write(&mut self, _: oxwsgi_core::Chunk) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn abort(&mut self) {}
}

#[test]
fn panics_never_escape_the_handler() {
    let mut req = MemoryRequest::get("/cookies");
    let outcome = oxwsgi_core::handle(cases(), &mut req, Box::new(PanickingSink));
    assert_eq!(outcome, Outcome::Aborted);
    assert!(!logs_with("GET /cookies: internal error (panic): sink exploded").is_empty());
    // And Python is still usable afterwards.
    let (resp, _) = get(cases(), "/cookies");
    assert_eq!(resp.status(), 200);
}

#[test]
fn statuses_without_content_drop_the_body_whatever_its_shape() {
    for status in ["204", "205", "304"] {
        for shape in ["list", "gen", "write", "file"] {
            let path = format!("/no-content?status={status}&shape={shape}&length=26");
            let (resp, outcome) = get(cases(), &path);
            assert_eq!(outcome, Outcome::Complete, "{path}");
            assert_eq!(resp.status().to_string(), status, "{path}");
            assert!(resp.body.is_empty(), "{path}: {}", resp.text());
            assert!(resp.finished() && !resp.aborted(), "{path}");
            let length = resp.header("Content-Length");
            match status {
                // 204 carries no length; 205 says empty; a 304 keeps the
                // length of the 200 it stands for.
                "204" => assert_eq!(length, None, "{path}"),
                "205" => assert_eq!(length, Some("0"), "{path}"),
                _ => assert_eq!(length, Some("26"), "{path}"),
            }
            let noted = logs_with(&format!(
                "GET {path}: application sent a body with status {status}, which has none; the body is discarded"
            ));
            assert_eq!(noted.len(), 1, "{path}: {noted:#?}");
            assert!(noted[0].starts_with("INFO "), "{noted:?}");
        }
    }
    // The generator ran to its end and was closed as usual.
    let before = closed_count();
    get(cases(), "/no-content?shape=gen");
    assert_eq!(closed_count(), before + 1);
}

#[test]
fn a_repeated_content_length_is_sent_once() {
    let (resp, outcome) = get(cases(), "/same-lengths");
    assert_eq!(outcome, Outcome::Complete);
    let lengths: Vec<_> = resp
        .head
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .collect();
    assert_eq!(lengths.len(), 1, "{lengths:?}");
    assert_eq!(resp.text(), "12345");
}

#[test]
fn interim_statuses_control_characters_and_two_lengths_are_named() {
    expect_500("/interim-status", "is an interim (1xx) response");
    expect_500("/ctl-header", "control character");
    expect_500(
        "/two-lengths",
        "two different Content-Length values (5 and 7)",
    );
}

#[test]
fn latin1_headers_reach_the_sink_as_their_characters() {
    let (resp, _) = get(cases(), "/latin1");
    let head = resp.head.clone().unwrap();
    assert_eq!(head.status_line, "200 Tr\u{e8}s bien");
    assert_eq!(&*head.status_line_bytes(), b"200 Tr\xe8s bien");
    assert_eq!(resp.header("X-Test"), Some("caf\u{e9}"));
    assert_eq!(
        &*oxwsgi_core::response::latin1(resp.header("X-High").unwrap()),
        b"\xff\xa0end"
    );
}

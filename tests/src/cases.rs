//! Behaviours both servers must show, as data, so each server's tests check
//! the same table (routes of tests/apps/cases.py).

/// Apps that get WSGI wrong: each path must answer 500, and the error log
/// must carry the message.
pub const MISTAKES: &[(&str, &str)] = &[
    (
        "/str-body",
        "application returned str (body item 0), WSGI needs bytes: encode it",
    ),
    (
        "/str-return",
        "application returned str, WSGI needs bytes: encode it",
    ),
    ("/none-return", "application returned None"),
    (
        "/int-status",
        "status must be a str like \"200 OK\", got int",
    ),
    ("/tuple-headers", "response headers must be a list"),
    ("/hop-header", "is a hop-by-hop header"),
    ("/crlf-header", "CR, LF or NUL"),
    (
        "/raise-early",
        "RuntimeError: the app failed before start_response",
    ),
    (
        "/no-start",
        "application returned without calling start_response",
    ),
    ("/interim-status", "is an interim (1xx) response"),
    ("/ctl-header", "control character"),
    ("/two-lengths", "two different Content-Length values"),
];

/// Every path of `MISTAKES` under `prefix` answers 500 from `server` (on
/// `port`), and its message reaches the error log (`what`: the setup, for
/// a failure's message).
pub fn mistakes_answer_500_and_are_logged(
    server: &crate::ServerProcess,
    port: u16,
    prefix: &str,
    what: &str,
) {
    for &(path, message) in MISTAKES {
        let r = crate::http::get(port, &format!("{prefix}{path}"));
        assert_eq!(r.status, 500, "{what} {path}");
        assert!(
            server.wait_log(message),
            "{what} {path}: {message:?} not logged:\n{}",
            server.error_log()
        );
    }
}

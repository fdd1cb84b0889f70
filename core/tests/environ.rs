//! environ as an app sees it (PEP 3333 names, types and splitting).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use oxwsgi_core::Body;
use oxwsgi_core::testing::{MemoryRequest, serve};

fn env_of(app: &oxwsgi_core::App, req: MemoryRequest) -> String {
    let (resp, _) = serve(app, req);
    assert_eq!(resp.status(), 200, "{}", resp.text());
    resp.text()
}

fn has(env: &str, key: &str, value: &str) -> bool {
    env.contains(&format!("\"{key}\": \"{value}\""))
}

#[test]
fn classic_hello_example() {
    let app = app_with(repo().join("examples/hello.py").to_str().unwrap(), |_| {});
    let (resp, _) = get(&app, "/");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "<h1>Hello, web!</h1>");
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.header("Content-Length"), Some("20"));
    let (resp, _) = get(&app, "/world");
    assert_eq!(resp.text(), "<h1>Hello, world!</h1>");
}

#[test]
fn cgi_variables_are_native_strings() {
    let env = env_of(
        cases(),
        MemoryRequest::get("/env?a=1&b=%20x").header("User-Agent", "t/1"),
    );
    for (k, v) in [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/env"),
        ("QUERY_STRING", "a=1&b=%20x"),
        ("REQUEST_URI", "/env?a=1&b=%20x"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("HTTP_HOST", "localhost"),
        ("HTTP_USER_AGENT", "t/1"),
        ("wsgi.url_scheme", "http"),
    ] {
        assert!(has(&env, k, v), "{k}={v} missing in {env}");
    }
    // Every CGI value is a str (the app reports the set of value types).
    assert!(env.contains("\"_types\": [\"str\"]"), "{env}");
    assert!(env.contains("\"wsgi.version\": [1, 0]"), "{env}");
    assert!(env.contains("\"wsgi.multithread\": true"), "{env}");
    assert!(env.contains("\"wsgi.multiprocess\": true"), "{env}");
    assert!(env.contains("\"wsgi.run_once\": false"), "{env}");
    assert!(env.contains("\"wsgi.input\": \"'Input'\""), "{env}");
    assert!(env.contains("\"wsgi.errors\": \"'LogStream'\""), "{env}");
    assert!(env.contains("\"wsgi.file_wrapper\""), "{env}");
    // Sent only when the request has them.
    assert!(!env.contains("CONTENT_TYPE"), "{env}");
    assert!(!env.contains("CONTENT_LENGTH"), "{env}");
    assert!(!env.contains("\"HTTPS\""), "{env}");
    assert!(!env.contains("wsgi.input_terminated"), "{env}");
}

#[test]
fn nothing_leaks_from_the_process_environment() {
    // The test process has PATH and HOME; the app must not see them.
    assert!(std::env::var_os("PATH").is_some());
    let env = env_of(cases(), MemoryRequest::get("/env"));
    assert!(!env.contains("\"PATH\""), "{env}");
    assert!(!env.contains("\"HOME\""), "{env}");
}

#[test]
fn mount_point_splits_script_name_and_path_info() {
    let app = app_with(fixture("cases.py").to_str().unwrap(), |o| {
        o.mount = "/mnt/".into()
    });
    let env = env_of(&app, MemoryRequest::get("/mnt/env"));
    assert!(has(&env, "SCRIPT_NAME", "/mnt"), "{env}");
    assert!(has(&env, "PATH_INFO", "/env"), "{env}");
    // The mount itself, without a trailing slash, routes to an empty PATH_INFO.
    let (resp, _) = get(&app, "/mnt");
    assert_eq!(resp.status(), 404);
    assert!(resp.text().contains("no route "), "{}", resp.text());
}

#[test]
fn path_info_is_decoded_and_latin1() {
    // UTF-8 bytes of "é" on the wire become two latin-1 characters, as PEP 3333 says.
    let app = app_with(repo().join("examples/hello.py").to_str().unwrap(), |_| {});
    let (resp, _) = get(&app, "/caf%C3%A9");
    assert_eq!(resp.body, "<h1>Hello, cafÃ©!</h1>".as_bytes());
}

#[test]
fn repeated_headers_are_joined() {
    let env = env_of(
        cases(),
        MemoryRequest::get("/env")
            .header("X-Multi", "a")
            .header("x-multi", "b")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2"),
    );
    assert!(has(&env, "HTTP_X_MULTI", "a, b"), "{env}");
    assert!(has(&env, "HTTP_COOKIE", "a=1; b=2"), "{env}");
}

#[test]
fn underscore_headers_cannot_spoof_dashed_ones() {
    let env = env_of(
        cases(),
        MemoryRequest::get("/env")
            .header("X_Forwarded_For", "6.6.6.6")
            .header("X-Forwarded-For", "10.0.0.1"),
    );
    assert!(has(&env, "HTTP_X_FORWARDED_FOR", "10.0.0.1"), "{env}");
    assert!(!env.contains("6.6.6.6"), "{env}");
}

#[test]
fn header_values_are_latin1_strings() {
    let env = env_of(
        cases(),
        MemoryRequest::get("/env").raw_header(b"X-Bytes", b"caf\xe9"),
    );
    assert!(has(&env, "HTTP_X_BYTES", "caf\\u00e9"), "{env}");
}

#[test]
fn content_headers_are_cgi_variables() {
    let env = env_of(cases(), MemoryRequest::post("/env", "text/plain", b"hello"));
    assert!(has(&env, "CONTENT_TYPE", "text/plain"), "{env}");
    assert!(has(&env, "CONTENT_LENGTH", "5"), "{env}");
    assert!(!env.contains("HTTP_CONTENT_TYPE"), "{env}");
    assert!(!env.contains("HTTP_CONTENT_LENGTH"), "{env}");
    assert!(has(&env, "REQUEST_METHOD", "POST"), "{env}");
}

#[test]
fn https_requests() {
    let env = env_of(cases(), MemoryRequest::get("/env").https());
    assert!(has(&env, "HTTPS", "on"), "{env}");
    assert!(has(&env, "wsgi.url_scheme", "https"), "{env}");
    assert!(has(&env, "SERVER_PORT", "443"), "{env}");
}

#[test]
fn dechunked_input_is_terminated() {
    let env = env_of(
        cases(),
        MemoryRequest::new("POST", "/env").chunked_body(std::io::Cursor::new(b"xyz".to_vec())),
    );
    assert!(env.contains("\"wsgi.input_terminated\": true"), "{env}");
}

#[test]
fn server_variables_reach_environ() {
    let env = env_of(
        cases(),
        MemoryRequest::get("/env")
            .extra_var("REMOTE_USER", "alice")
            .extra_var("AUTH_TYPE", "Basic"),
    );
    assert!(has(&env, "REMOTE_USER", "alice"), "{env}");
    assert!(has(&env, "AUTH_TYPE", "Basic"), "{env}");
}

#[test]
fn script_filename_names_the_script() {
    let env = env_of(cases(), MemoryRequest::get("/env"));
    let path = fixture("cases.py");
    assert!(
        has(&env, "SCRIPT_FILENAME", path.to_str().unwrap()),
        "{env}"
    );
}

#[test]
fn protocol_and_method_pass_through() {
    let mut req = MemoryRequest::new("PROPFIND", "/env");
    req.protocol = b"HTTP/2.0".to_vec();
    let env = env_of(cases(), req.body(Body::Empty));
    assert!(has(&env, "REQUEST_METHOD", "PROPFIND"), "{env}");
    assert!(has(&env, "SERVER_PROTOCOL", "HTTP/2.0"), "{env}");
}

//! Request and queue timeouts end to end: the client gets 504 (or a cut
//! response) at the deadline, the error log names the request and where the
//! app was, the app sees `oxwsgi.RequestTimeout`; a request that waited too
//! long for a Python thread gets 503 with Retry-After and never reaches it.

use std::time::{Duration, Instant};

use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::nginx::{self, Config, Nginx};
use oxwsgi_e2e::{app, wait_until};

fn nginx_with(location_lines: &str, http_lines: &str) -> Nginx {
    Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_app {}; {location_lines} }}",
            app("cases.py")
        ))
        .http(http_lines),
    )
}

#[test]
fn nginx_answers_504_at_the_deadline_and_logs_the_apps_stack() {
    let n = nginx_with("wsgi_request_timeout 1s;", "");
    // Blocked in C: the exception cannot reach it, nginx answers anyway.
    let t = Instant::now();
    let r = http::get(n.port, "/sleep?ms=3000");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(n.wait_log("GET /sleep?ms=3000: request timeout after 1.0"));
    let log = n.error_log();
    assert!(log.contains("(limit 1.000 s)"), "{log}");
    assert!(
        log.contains("cases.py\", line") && log.contains("in sleep"),
        "{log}"
    );
    assert!(log.contains("time.sleep(ms / 1000.0)"), "{log}");

    // Running Python: interrupted by the exception, which the app sees.
    let t = Instant::now();
    let r = http::get(n.port, "/spin");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(n.wait_log("GET /spin: the app stopped at oxwsgi.RequestTimeout"));
    assert!(n.error_log().contains("in spin"));
    let caught = http::get(n.port, "/caught").text();
    assert!(caught.contains("\"timeouts\": 1"), "{caught}");

    // The worker serves on, with the same pid.
    let workers = n.workers();
    for _ in 0..20 {
        assert_eq!(http::get(n.port, "/sleep?ms=1").status, 200);
    }
    assert_eq!(n.workers(), workers);
}

#[test]
fn nginx_cuts_a_response_that_started_and_close_runs() {
    let n = nginx_with("wsgi_request_timeout 500ms;", "");
    let before = http::get(n.port, "/caught").text();
    let r = http::get(n.port, "/spin-late");
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a timed-out response must not look complete");
    assert_eq!(r.text(), "started\n");
    assert!(wait_until(Duration::from_secs(5), || http::get(
        n.port, "/caught"
    )
    .text()
        != before));
    let after = http::get(n.port, "/caught").text();
    assert!(
        after.contains("\"timeouts\": 0"),
        "spin-late does not catch: {after}"
    );
}

#[test]
fn a_location_without_the_timeout_is_not_limited() {
    let n = Nginx::start(Config::new(&format!(
        "wsgi_request_timeout 300ms;\n\
         location / {{ wsgi_app {a}; }}\n\
         location /free/ {{ wsgi_app {a}; wsgi_script_name /free; wsgi_request_timeout off; }}",
        a = app("cases.py")
    )));
    assert_eq!(
        http::get(n.port, "/sleep?ms=800").status,
        504,
        "inherited from server"
    );
    assert_eq!(
        http::get(n.port, "/free/sleep?ms=800").status,
        200,
        "off in the location"
    );
}

#[test]
fn nginx_refuses_a_request_that_waited_too_long_for_a_thread() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_app {}; wsgi_queue_timeout 500ms; }}\n\
             location = /status {{ wsgi_status; }}",
            app("cases.py")
        ))
        .http("wsgi_threads 1;"),
    );
    let port = n.port;
    let slow = std::thread::spawn(move || http::get(port, "/sleep?ms=2500"));
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = http::get(n.port, "/log?marker=queued-request");
    let waited = t.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Retry-After"), Some("1"));
    // Answered at the limit, not when the thread came free.
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    assert_eq!(
        slow.join().unwrap().status,
        200,
        "the running request is not touched"
    );
    assert!(n.wait_log("GET /log?marker=queued-request: waited 0.5"));
    assert!(
        !n.error_log().contains("says queued-request"),
        "the app never saw it"
    );
    // The metrics count it, refused by the event loop as it was.
    let metrics = http::get(n.port, "/status?format=prometheus").text();
    let line = format!(
        "oxwsgi_queue_timeouts_total{{app=\"{}\"}} 1",
        app("cases.py")
    );
    assert!(metrics.contains(&line), "{metrics}");
    // With the thread free again, the same request is served.
    assert_eq!(http::get(n.port, "/log?marker=later").status, 200);
}

#[test]
fn bad_timeouts_fail_nginx_t_naming_the_directive() {
    for (line, message) in [
        (
            "wsgi_request_timeout 5x;",
            "\"wsgi_request_timeout\": invalid time \"5x\"",
        ),
        (
            "wsgi_queue_timeout 0;",
            "\"wsgi_queue_timeout\": invalid time \"0\": must be more than 0",
        ),
        (
            "wsgi_request_timeout 1s; wsgi_request_timeout 2s;",
            "\"wsgi_request_timeout\" directive is duplicate",
        ),
    ] {
        let (ok, out) = nginx::check(&Config::new(&format!(
            "location / {{ wsgi_app /a.py; {line} }}"
        )));
        assert!(!ok, "nginx -t accepted {line}");
        assert!(out.contains(message), "{line}: {out}");
    }
    let (ok, out) = nginx::check(&Config::new(
        "location / { wsgi_app /a.py; wsgi_request_timeout 1m30s; wsgi_queue_timeout off; }",
    ));
    assert!(ok, "{out}");
}

/// Keeps `Request` in use for the HEAD case: a 503 for HEAD has no body.
#[test]
fn a_refused_head_request_gets_no_body() {
    let n = nginx_with("wsgi_queue_timeout 300ms;", "wsgi_threads 1;");
    let port = n.port;
    let slow = std::thread::spawn(move || http::get(port, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(200));
    let r = Request::get("/empty").method("HEAD").send(n.port);
    assert_eq!(r.status, 503);
    assert!(r.body.is_empty());
    assert_eq!(slow.join().unwrap().status, 200);
}

fn apache_with(mpm: &str, directives: &str) -> oxwsgi_e2e::apache::Apache {
    oxwsgi_e2e::apache::Apache::start(
        mpm,
        &format!("WSGIScriptAlias / {}\n{directives}", app("cases.py")),
    )
}

#[test]
fn apache_stops_a_busy_app_with_504_and_logs_its_stack() {
    for mpm in ["event", "prefork"] {
        let a = apache_with(mpm, "WSGIRequestTimeout 1s");
        let t = Instant::now();
        let r = http::get(a.port, "/spin");
        assert_eq!(r.status, 504, "{mpm}: {}", r.text());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{mpm}: {:?}",
            t.elapsed()
        );
        assert!(a.wait_log("GET /spin: request timeout after 1.0"), "{mpm}");
        let log = a.error_log();
        assert!(
            log.contains("in spin") && log.contains("while True"),
            "{mpm}: {log}"
        );
        let r = http::get(a.port, "/spin-late");
        assert_eq!(r.status, 200);
        assert!(
            !r.complete,
            "{mpm}: a timed-out response must not look complete"
        );
        // An app blocked in C answers 504 once it is back.
        let r = http::get(a.port, "/sleep?ms=1500");
        assert_eq!(r.status, 504, "{mpm}");
        for _ in 0..10 {
            assert_eq!(http::get(a.port, "/sleep?ms=1").status, 200, "{mpm}");
        }
    }
}

#[test]
fn apache_checks_the_timeout_value() {
    oxwsgi_e2e::apache::assert_refused(
        "WSGIRequestTimeout soon",
        "WSGIRequestTimeout: invalid time \"soon\"",
    );
    let (ok, out) = oxwsgi_e2e::apache::check("WSGIRequestTimeout 90");
    assert!(ok, "{out}");
}

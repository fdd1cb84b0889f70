//! Graceful recycling of a worker's Python: after N requests, past a
//! memory limit, or when a request's thread is stuck. Under load no request
//! fails or waits long, and the error log says why each recycle happened.

use std::time::{Duration, Instant};

use oxwsgi_e2e::http;
use oxwsgi_e2e::load::wrk as load;
use oxwsgi_e2e::nginx::{self, Config, Nginx};
use oxwsgi_e2e::{app, wait_until};

fn recycles(n: &Nginx) -> usize {
    n.error_log()
        .matches("recycling this worker process")
        .count()
}

#[test]
fn max_requests_recycles_under_load_without_failing_a_request() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_app {}; }}\nlocation = /status {{ wsgi_status; }}",
            oxwsgi_e2e::repo().join("examples/hello.py").display()
        ))
        .http("wsgi_max_requests 300 jitter=50;"),
    );
    let l = load(n.port, "/", 6);
    assert!(l.requests > 3000, "{}", l.output);
    assert!(!l.output.contains("Non-2xx"), "{}", l.output);
    assert!(!l.output.contains("Socket errors"), "{}", l.output);
    assert!(l.max_latency() < 1.0, "{}", l.output);
    let count = recycles(&n);
    assert!(count >= 10, "only {count} recycles\n{}", l.output);
    let log = n.error_log();
    assert!(log.contains("it served 3"), "the reason is logged: {log}");
    assert!(
        log.matches("exited with code 0").count() >= 10,
        "workers exit cleanly and the master replaces them"
    );
    assert_eq!(http::get(n.port, "/").status, 200);
    // The metrics outlive the workers: every recycle and every request of
    // every worker is counted.
    let metrics = http::get(n.port, "/status?format=prometheus").text();
    let value = |series: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("oxwsgi_recycles_total{reason=\"max_requests\"}") >= count as f64 - 1.0);
    let served = value("oxwsgi_requests_total{app=");
    let served_2xx = metrics
        .lines()
        .find(|l| l.starts_with("oxwsgi_requests_total") && l.contains("2xx"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert_eq!(served, 0.0, "no 1xx");
    assert!(
        served_2xx >= l.requests as f64,
        "{served_2xx} < {}",
        l.requests
    );
}

#[test]
fn a_stuck_thread_recycles_the_worker_and_others_are_served() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; wsgi_request_timeout 1s; }}",
        app("cases.py")
    )));
    let first = http::get(n.port, "/pid").text();
    let port = n.port;
    let stuck = std::thread::spawn(move || http::get(port, "/sleep?ms=20000"));
    // Meanwhile the worker serves others.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http::get(n.port, "/pid").text(), first);
    let t = Instant::now();
    assert_eq!(stuck.join().unwrap().status, 504);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        wait_until(Duration::from_secs(10), || n
            .error_log()
            .contains("did not come back")),
        "{}",
        n.error_log()
    );
    assert!(wait_until(Duration::from_secs(5), || {
        http::get(n.port, "/pid").text() != first
    }));
    assert_eq!(recycles(&n), 1);
    assert!(
        n.error_log()
            .contains("its thread did not come back 5 s after the request timeout")
    );
}

#[test]
fn max_rss_recycles_a_leaking_app() {
    let n = Nginx::start(
        Config::new(&format!("location / {{ wsgi_app {}; }}", app("cases.py")))
            .http("wsgi_max_rss 150m;"),
    );
    let first = http::get(n.port, "/pid").text();
    let mut pids = vec![first.clone()];
    for _ in 0..12 {
        let r = http::get(n.port, "/leak?mb=20");
        assert_eq!(r.status, 200, "{}", r.text());
        // The RSS is read at most once a second.
        std::thread::sleep(Duration::from_millis(300));
        pids.push(http::get(n.port, "/pid").text());
    }
    assert!(
        pids.iter().any(|p| *p != first),
        "{pids:?}\n{}",
        n.error_log()
    );
    assert!(
        n.error_log().contains("passed the limit of 150 MiB"),
        "{}",
        n.error_log()
    );
}

#[test]
fn bad_recycling_values_fail_nginx_t() {
    for (line, message) in [
        (
            "wsgi_max_requests 0;",
            "\"wsgi_max_requests\": invalid request count \"0\"",
        ),
        (
            "wsgi_max_requests 10 jitter;",
            "\"wsgi_max_requests\": invalid parameter \"jitter\"",
        ),
        (
            "wsgi_max_requests 10 20 30;",
            "invalid number of arguments in \"wsgi_max_requests\"",
        ),
        ("wsgi_max_rss lots;", "\"wsgi_max_rss\": invalid size"),
    ] {
        let (ok, out) = nginx::check(&Config::new("location / { wsgi_app /a.py; }").http(line));
        assert!(!ok, "nginx -t accepted {line}");
        assert!(out.contains(message), "{line}: {out}");
    }
}

#[test]
fn reloads_under_load_answer_every_request() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_app {}; }}",
            oxwsgi_e2e::repo().join("examples/hello.py").display()
        ))
        .http("wsgi_max_requests 100000;"),
    );
    let port = n.port;
    let wrk = std::thread::spawn(move || load(port, "/", 6));
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        n.signal(libc::SIGHUP);
    }
    let l = wrk.join().unwrap();
    assert!(l.requests > 1000, "{}", l.output);
    assert!(!l.output.contains("Non-2xx"), "{}", l.output);
    assert!(l.max_latency() < 1.0, "{}", l.output);
    assert!(n.error_log().matches("reconfiguring").count() >= 3);
}

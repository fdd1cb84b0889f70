//! Health checks for load balancers: `wsgi_health live|ready` answers,
//! readiness follows the apps, and a graceful stop drains first
//! (`wsgi_drain_time`): readiness turns 503 while everything is still
//! served, then the server stops; a reload drains nothing.

use std::time::{Duration, Instant};

use oxwsgi_e2e::http;
use oxwsgi_e2e::nginx::{Config, Nginx};
use oxwsgi_e2e::{ServerProcess, app, wait_until};

fn with_health(apps: &str, http_extra: &str) -> Nginx {
    Nginx::start(
        Config::new(&format!(
            "location = /live {{ wsgi_health live; }}\n\
             location = /ready {{ wsgi_health ready; }}\n{apps}"
        ))
        .http(http_extra),
    )
}

#[test]
fn readiness_follows_the_apps() {
    let n = with_health(
        &format!("location / {{ wsgi_app {}; }}", app("cases.py")),
        "",
    );
    let r = http::get(n.port, "/ready");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(http::get(n.port, "/live").text(), "live\n");
    drop(n);

    let n = with_health(
        &format!(
            "location / {{ wsgi_app {}; }}\nlocation /b {{ wsgi_app {}; }}",
            app("cases.py"),
            app("broken_import.py")
        ),
        "",
    );
    let r = http::get(n.port, "/ready");
    assert_eq!(r.status, 503);
    assert!(
        r.text().starts_with("not ready: app(s) failed to load: ")
            && r.text().contains("broken_import.py"),
        "{}",
        r.text()
    );
    assert_eq!(http::get(n.port, "/live").status, 200, "alive all the same");
    assert_eq!(
        http::get(n.port, "/cookies").status,
        200,
        "the other app serves"
    );
}

#[test]
fn a_graceful_stop_drains_first_and_a_reload_does_not() {
    let mut n = with_health(
        &format!("location / {{ wsgi_app {}; }}", app("cases.py")),
        "wsgi_drain_time 2s;",
    );
    assert_eq!(http::get(n.port, "/ready").status, 200);
    // A reload: new workers, and readiness never turns. (The workers of
    // one configuration start within a few ms of each other: a worker
    // tells a reload from a stop by workers started well after it.)
    std::thread::sleep(Duration::from_millis(300));
    let workers = n.workers();
    n.signal(libc::SIGHUP);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        let r = http::get(n.port, "/ready");
        assert_eq!(r.status, 200, "during a reload: {}", r.text());
    }
    assert!(n.workers().iter().all(|w| !workers.contains(w)), "reloaded");
    assert!(
        !n.error_log()
            .contains("graceful stop: readiness answers 503"),
        "{}",
        n.error_log()
    );

    let began = drains(
        &n,
        n.port,
        libc::SIGQUIT,
        "graceful stop: readiness answers 503 for 2s (wsgi_drain_time)",
    );
    assert!(n.quit(Duration::from_secs(10)), "stopped after the drain");
    stopped_after_the_drain(began);
}

/// A graceful stop (`signal`) with a drain of 2 s: readiness 503 at once
/// on every process (whichever takes the connection) while liveness and
/// the app still answer, and the server's log line; when it began.
fn drains(server: &ServerProcess, port: u16, signal: i32, logged: &str) -> Instant {
    let began = Instant::now();
    server.signal(signal);
    assert!(
        wait_until(Duration::from_secs(1), || http::get(port, "/ready").status
            == 503),
        "{}",
        server.error_log()
    );
    for _ in 0..8 {
        let r = http::get(port, "/ready");
        assert_eq!(
            (r.status, r.text().as_str()),
            (503, "not ready: draining: a graceful stop began\n")
        );
        assert_eq!(http::get(port, "/live").status, 200);
        assert_eq!(http::get(port, "/cookies").status, 200, "still serving");
    }
    assert!(server.wait_log(logged), "{}", server.error_log());
    began
}

/// The server went after the 2 s drain, not before, nor much later.
fn stopped_after_the_drain(began: Instant) {
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn wsgi_health_takes_live_or_ready() {
    let (ok, out) = oxwsgi_e2e::nginx::check(&Config::new("location = /h { wsgi_health alive; }"));
    assert!(!ok);
    assert!(out.contains("\"wsgi_health\": expected live"), "{out}");
    let (ok, out) = oxwsgi_e2e::nginx::check(&Config::new("").http("wsgi_drain_time forever;"));
    assert!(!ok);
    assert!(out.contains("wsgi_drain_time"), "{out}");
}

/// Apache: `SetHandler wsgi-health-ready` / `wsgi-health-live`; an app
/// that failed to load in a child makes that child not ready.
#[test]
fn apache_answers_health_checks_too() {
    use oxwsgi_e2e::apache::Apache;
    let a = Apache::start(
        "event",
        &format!(
            // One child: readiness is each child's own.
            "StartServers 1\nServerLimit 1\nThreadsPerChild 8\nMaxRequestWorkers 8\n\
             <Location /ready>\n    SetHandler wsgi-health-ready\n</Location>\n\
             <Location /live>\n    SetHandler wsgi-health-live\n</Location>\n\
             WSGIScriptAlias /b {}\nWSGIScriptAlias / {}",
            app("broken_import.py"),
            app("cases.py")
        ),
    );
    let r = http::get(a.port, "/ready");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(http::get(a.port, "/live").text(), "live\n");
    assert_eq!(http::get(a.port, "/b").status, 500);
    let r = http::get(a.port, "/ready");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("broken_import.py"), "{}", r.text());
    assert_eq!(http::get(a.port, "/live").status, 200);
}

/// Apache: `WSGIDrainTime`: a graceful stop (`apachectl graceful-stop`,
/// SIGWINCH to the parent) turns readiness 503 in every child at once while
/// they go on serving, and the stop goes on after the drain; a graceful
/// restart drains nothing. Under each MPM, with children started before and
/// after the drain's handler went in.
#[test]
fn apache_drains_before_a_graceful_stop() {
    use oxwsgi_e2e::apache::Apache;
    for mpm in ["event", "prefork"] {
        let mut a = Apache::start(
            mpm,
            &format!(
                "StartServers 2\nWSGIDrainTime 2\n\
                 <Location /ready>\n    SetHandler wsgi-health-ready\n</Location>\n\
                 <Location /live>\n    SetHandler wsgi-health-live\n</Location>\n\
                 WSGIScriptAlias / {}",
                app("cases.py")
            ),
        );
        assert_eq!(http::get(a.port, "/ready").status, 200, "{mpm}");
        let children = a.children();
        a.signal(libc::SIGUSR1);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            let r = http::get(a.port, "/ready");
            assert_eq!(
                r.status,
                200,
                "{mpm}: during a graceful restart: {}",
                r.text()
            );
        }
        assert!(
            wait_until(Duration::from_secs(5), || a
                .children()
                .iter()
                .all(|c| !children.contains(c))),
            "{mpm}: restarted"
        );

        let began = drains(
            &a,
            a.port,
            libc::SIGWINCH,
            "graceful stop: readiness answers 503 for 2s (WSGIDrainTime)",
        );
        assert!(
            a.graceful_stop(Duration::from_secs(10)),
            "{mpm}: stopped after the drain"
        );
        stopped_after_the_drain(began);
    }
    oxwsgi_e2e::apache::assert_refused("WSGIDrainTime forever", "invalid time \"forever\"");
    oxwsgi_e2e::apache::assert_refused(
        "<VirtualHost 127.0.0.1:1>\nWSGIDrainTime 5\n</VirtualHost>",
        "WSGIDrainTime belongs to the main server",
    );
}

/// A process group without a daemon up (here one whose interpreter is not
/// there) makes the server not ready, naming the group; a group that
/// serves does not.
#[test]
fn readiness_follows_the_process_groups() {
    for (python, ready) in [("auto", true), ("/nonexistent/python3", false)] {
        let n = with_health(
            &format!(
                "location / {{ wsgi_process_group site; wsgi_app {}; }}",
                app("cases.py")
            ),
            &format!("wsgi_daemon_process site python_executable={python};"),
        );
        if ready {
            assert!(
                wait_until(Duration::from_secs(10), || http::get(n.port, "/ready")
                    .status
                    == 200),
                "{}",
                n.error_log()
            );
        } else {
            std::thread::sleep(Duration::from_millis(500));
            let r = http::get(n.port, "/ready");
            assert_eq!(r.status, 503);
            assert_eq!(
                r.text(),
                "not ready: no daemon up in process group(s): site\n"
            );
        }
    }
    let a = oxwsgi_e2e::apache::Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site python-executable=/nonexistent/python3\n\
             <Location /ready>\n    SetHandler wsgi-health-ready\n</Location>\n\
             WSGIScriptAlias / {} process-group=site",
            app("cases.py")
        ),
    );
    std::thread::sleep(Duration::from_millis(500));
    let r = http::get(a.port, "/ready");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("site"), "{}", r.text());
}

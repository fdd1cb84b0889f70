//! The status page and its metrics, end to end: counters add up across
//! workers, the Prometheus text passes promtool, requests in flight show
//! (with the Python stack of slow ones), and nothing from a request reaches
//! the page unescaped or beyond what it may show.

use std::time::Duration;

use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::nginx::{Config, Nginx};
use oxwsgi_e2e::prometheus::{promtool_check, sample};
use std::process::Command;

use oxwsgi_e2e::{app, repo, wait_until};

fn nginx_with_status(workers: usize) -> Nginx {
    let mut c = Config::new(&format!(
        "location / {{ wsgi_app {}; }}\nlocation = /status {{ wsgi_status; allow 127.0.0.1; deny all; }}",
        app("cases.py")
    ));
    c.workers = workers;
    Nginx::start(c)
}

#[test]
fn counters_add_up_across_workers_and_pass_promtool() {
    let n = nginx_with_status(2);
    let app = format!("app=\"{}\"", app("cases.py"));
    for _ in 0..40 {
        assert_eq!(http::get(n.port, "/env").status, 200);
    }
    assert_eq!(http::get(n.port, "/raise-early").status, 500);
    assert_eq!(
        Request::post("/echo", "text/plain", &[b'x'; 1000])
            .send(n.port)
            .status,
        200
    );
    // A worker records a request just after its response went out: give
    // the last one a moment before reading the counters.
    let total = format!("oxwsgi_request_duration_seconds_count{{{app}}}");
    assert!(wait_until(Duration::from_secs(5), || {
        sample(
            &http::get(n.port, "/status?format=prometheus").text(),
            &total,
        ) == Some(42.0)
    }));
    let r = http::get(n.port, "/status?format=prometheus");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    promtool_check(&text);
    let get = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        get(&format!("oxwsgi_requests_total{{{app},status=\"2xx\"}}")),
        41.0
    );
    assert_eq!(
        get(&format!("oxwsgi_requests_total{{{app},status=\"5xx\"}}")),
        1.0
    );
    assert_eq!(get(&format!("oxwsgi_app_exceptions_total{{{app}}}")), 1.0);
    assert_eq!(
        get(&format!("oxwsgi_request_duration_seconds_count{{{app}}}")),
        42.0
    );
    assert_eq!(
        get(&format!("oxwsgi_request_body_bytes_total{{{app}}}")),
        1000.0
    );
    assert!(get(&format!("oxwsgi_response_body_bytes_total{{{app}}}")) > 1000.0);
    // Both workers report once their Python is up (a worker still starting
    // takes no connections, so it may have served none of the above).
    let workers = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("oxwsgi_threads{"))
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect::<std::collections::HashSet<String>>()
            .len()
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            workers(&http::get(n.port, "/status?format=prometheus").text()) == 2
        }),
        "both workers report: {text}"
    );
    // Prometheus' own Accept header gets the same format.
    let r = Request::get("/status")
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
        .send(n.port);
    assert!(r.text().starts_with("# HELP oxwsgi_info"), "{}", r.text());
    // JSON says the same.
    let json = http::get(n.port, "/status?format=json").text();
    assert!(json.contains("\"2xx\":41"), "{json}");
}

#[test]
fn requests_in_flight_show_with_the_stack_of_slow_ones_and_no_secrets() {
    let n = nginx_with_status(1);
    let port = n.port;
    let slow = std::thread::spawn(move || {
        Request::get("/sleep?ms=2500&token=s3cr3t")
            .header("Cookie", "session=c00kie")
            .header("Authorization", "Bearer t0ken")
            .send(port)
    });
    assert!(wait_until(Duration::from_secs(5), || {
        http::get(n.port, "/status?format=json")
            .text()
            .contains("time.sleep(ms / 1000.0)")
    }));
    let page = http::get(n.port, "/status").text();
    assert!(page.contains("GET /sleep"), "{page}");
    assert!(page.contains("in sleep"), "{page}");
    assert!(page.contains("127.0.0.1"));
    for secret in ["s3cr3t", "c00kie", "t0ken", "token="] {
        assert!(!page.contains(secret), "{secret} shown: {page}");
    }
    assert_eq!(slow.join().unwrap().status, 200);
    // The client has the whole response as the app's thread finishes the
    // request's bookkeeping: it leaves the page within moments.
    let mut json = String::new();
    let ended = wait_until(Duration::from_secs(2), || {
        json = http::get(n.port, "/status?format=json").text();
        json.contains("\"requests\":[]")
    });
    assert!(ended, "it ended: {json}");
}

#[test]
fn what_came_from_a_request_is_escaped() {
    let n = nginx_with_status(1);
    let port = n.port;
    let slow =
        std::thread::spawn(move || http::get(port, "/sleep/<script>alert(1)</script>?ms=1500"));
    assert!(wait_until(Duration::from_secs(5), || {
        http::get(n.port, "/status?format=json")
            .text()
            .contains("alert(1)")
    }));
    let r = http::get(n.port, "/status");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("Content-Security-Policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = r.text();
    assert!(!page.contains("<script"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    let json = http::get(n.port, "/status?format=json").text();
    assert!(!json.contains("<script"), "{json}");
    slow.join().unwrap();
}

#[test]
fn the_status_location_takes_get_and_head_only() {
    let n = nginx_with_status(1);
    assert_eq!(
        Request::post("/status", "text/plain", b"x")
            .send(n.port)
            .status,
        405
    );
    let r = Request::get("/status").method("HEAD").send(n.port);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

/// Apache: `SetHandler wsgi-status`; the counters of several prefork
/// children add up, and a graceful restart keeps them.
#[test]
fn apache_counts_across_prefork_children_and_passes_promtool() {
    let a = oxwsgi_e2e::apache::Apache::start(
        "prefork",
        &format!(
            "LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so\n\
             StartServers 3\nMinSpareServers 3\nMaxSpareServers 6\n\
             WSGIScriptAlias /app {}\n\
             <Location /server-wsgi>\n    SetHandler wsgi-status\n    Require local\n</Location>",
            app("cases.py")
        ),
    );
    assert!(wait_until(Duration::from_secs(10), || a.children().len() >= 3));
    let port = a.port;
    // Several at once, so that several children serve.
    let clients: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..5 {
                    assert_eq!(http::get(port, "/app/sleep?ms=20").status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let series = format!(
        "oxwsgi_requests_total{{app=\"{}\",status=\"2xx\"}}",
        app("cases.py")
    );
    assert!(wait_until(Duration::from_secs(5), || {
        sample(
            &http::get(a.port, "/server-wsgi?format=prometheus").text(),
            &series,
        ) == Some(30.0)
    }));
    let text = http::get(a.port, "/server-wsgi?format=prometheus").text();
    promtool_check(&text);
    let serving: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("oxwsgi_process_requests_total{"))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(serving.len() >= 2, "several children served: {text}");
    let page = http::get(a.port, "/server-wsgi").text();
    assert!(page.contains("<h2>Apps</h2>"), "{page}");
    // A graceful restart replaces the children; the counters stay.
    let old = a.children();
    // SAFETY: signalling the Apache parent this test started, by its pid.
    unsafe { libc::kill(a.pid(), libc::SIGUSR1) };
    assert!(wait_until(Duration::from_secs(15), || {
        let now = a.children();
        !now.is_empty() && now.iter().all(|p| !old.contains(p))
    }));
    let text = http::get(a.port, "/server-wsgi?format=prometheus").text();
    assert_eq!(sample(&text, &series), Some(30.0), "{text}");
    assert_eq!(
        Request::post("/server-wsgi", "text/plain", b"x")
            .send(a.port)
            .status,
        405
    );
}

/// Runs headless Chromium on `url` with `args`; its standard output.
fn chromium(args: &[&str], url: &str) -> String {
    let profile = oxwsgi_e2e::temp_dir("chromium");
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium (build/deps.sh installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The HTML page in a real browser: it renders, and markup sent in a
/// request's path stays text (no script runs, no element appears).
#[test]
fn the_page_renders_in_a_browser_and_runs_nothing_from_requests() {
    let n = nginx_with_status(1);
    let port = n.port;
    let evil = "/sleep/<script>document.title='pwned'</script><img/src=x/onerror=document.title='pwned2'>?ms=8000";
    let slow = std::thread::spawn(move || http::get(port, evil));
    assert!(wait_until(Duration::from_secs(5), || {
        http::get(n.port, "/status?format=json")
            .text()
            .contains("time.sleep")
    }));
    let url = format!("http://127.0.0.1:{}/status", n.port);
    let dom = chromium(&["--dump-dom"], &url);
    assert!(dom.contains("<title>oxwsgi status</title>"), "{dom}");
    assert!(!dom.contains("<script") && !dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(dom.contains("in sleep"), "the slow request's stack: {dom}");
    // A screenshot, kept for a human: a rendered page, not a blank one
    // (a blank 1280x900 page is about 5 KB as PNG).
    let shot = repo().join("target/oxwsgi-status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            "--window-size=1280,900",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.len() > 20_000, "{} bytes: blank?", png.len());
    assert_eq!(slow.join().unwrap().status, 200);
}

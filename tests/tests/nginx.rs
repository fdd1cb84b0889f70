//! The nginx module end to end: /usr/sbin/nginx from Debian's package loads
//! the built module and serves WSGI apps on loopback ports.

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::nginx::{self, Config, Nginx};
use oxwsgi_e2e::{app, repo, wait_until, wire};

fn cases_at_root() -> Nginx {
    Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; }}",
        app("cases.py")
    )))
}

#[test]
fn the_module_loads_into_the_packaged_nginx() {
    let (ok, out) = nginx::check(&Config::new("location / { wsgi_app /srv/app.py; }"));
    assert!(ok, "{out}");
    assert!(out.contains("test is successful"), "{out}");
}

#[test]
fn bad_directive_values_fail_nginx_t_naming_the_directive() {
    let cases = [
        (
            "location / { wsgi_app relative/app.py; }",
            "",
            "\"wsgi_app\": script path",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_gzip maybe; }",
            "",
            "\"wsgi_gzip\": invalid value \"maybe\"",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_inflate_max 10q; }",
            "",
            "\"wsgi_inflate_max\": invalid size",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_callable 1x; }",
            "",
            "\"wsgi_callable\": callable name",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_script_name app; }",
            "",
            "\"wsgi_script_name\": \"app\" must",
        ),
        (
            "",
            "wsgi_threads 0;",
            "\"wsgi_threads\": invalid thread count",
        ),
        (
            "",
            "wsgi_python_path rel/dir;",
            "\"wsgi_python_path\": path \"rel/dir\" must be absolute",
        ),
        (
            "",
            "wsgi_python_home /nonexistent/venv;",
            "\"wsgi_python_home\": python home /nonexistent/venv does not exist",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_body_buffer_size big; }",
            "",
            "\"wsgi_body_buffer_size\": invalid size",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_app /b.py; }",
            "",
            "\"wsgi_app\" directive is duplicate",
        ),
        (
            "location / { wsgi_app /a.py; wsgi_application_group \"%{RESOURCE}\"; }",
            "",
            "\"wsgi_application_group\": %{RESOURCE}: on nginx an application group is a name",
        ),
    ];
    for (server, http_lines, message) in cases {
        let (ok, out) = nginx::check(&Config::new(server).http(http_lines));
        assert!(!ok, "nginx -t accepted {server} {http_lines}");
        assert!(out.contains(message), "{server} {http_lines}: {out}");
    }
}

#[test]
fn a_venv_for_another_python_fails_nginx_t() {
    let dir = oxwsgi_e2e::temp_dir("oldvenv");
    std::fs::write(dir.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.9.2\n").unwrap();
    let (ok, out) =
        nginx::check(&Config::new("").http(&format!("wsgi_python_home {};", dir.display())));
    assert!(!ok);
    assert!(out.contains("is a virtualenv for Python 3.9"), "{out}");
    let python = format!("python{} -m venv", oxwsgi_e2e::venv::python_version());
    assert!(out.contains(&python), "{out}");
}

#[test]
fn hello_world() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; }}",
        repo().join("examples/hello.py").display()
    )));
    let r = http::get(n.port, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>Hello, web!</h1>");
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    assert_eq!(http::get(n.port, "/world").text(), "<h1>Hello, world!</h1>");
}

#[test]
fn locations_mount_apps_and_several_apps_share_one_nginx() {
    let n = Nginx::start(
        Config::new(&format!(
            "location /mnt {{ wsgi_app {cases}; }}\n\
         location ~ ^/rx/ {{ wsgi_app {cases}; }}\n\
         location ~ ^/named/ {{ wsgi_app {cases}; wsgi_script_name /named; }}\n\
         location /pkg {{ wsgi_app fixturepkg.wsgi:app; }}\n\
         location / {{ wsgi_app {hello}; }}",
            cases = app("cases.py"),
            hello = repo().join("examples/hello.py").display()
        ))
        .http(&format!(
            "wsgi_python_path {};",
            repo().join("tests/apps").display()
        )),
    );
    let env = http::get(n.port, "/mnt/env?x=1").text();
    assert!(env.contains("\"SCRIPT_NAME\": \"/mnt\""), "{env}");
    assert!(env.contains("\"PATH_INFO\": \"/env\""), "{env}");
    assert!(env.contains("\"QUERY_STRING\": \"x=1\""), "{env}");
    // A regex location has no prefix to mount at: all of the path is PATH_INFO
    // (the app routes on it, so it answers "no route" for this one) ...
    assert_eq!(http::get(n.port, "/rx/env").text(), "no route /rx/env");
    // ... unless wsgi_script_name names the mount.
    let env = http::get(n.port, "/named/env").text();
    assert!(env.contains("\"SCRIPT_NAME\": \"/named\""), "{env}");
    assert!(env.contains("\"PATH_INFO\": \"/env\""), "{env}");
    assert_eq!(http::get(n.port, "/pkg/x").text(), "module app at /pkg|/x");
    assert_eq!(http::get(n.port, "/nginx").text(), "<h1>Hello, nginx!</h1>");
}

#[test]
fn environ_values_come_from_nginx() {
    let n = cases_at_root();
    let mut s = http::connect(n.port);
    let local_port = s.local_addr().unwrap().port();
    s.write_all(
        &Request::get("/env")
            .header("X-Custom", "v")
            .to_bytes(n.port),
    )
    .unwrap();
    let r = http::read_response(&mut BufReader::new(s), false).unwrap();
    let env = r.text();
    for want in [
        "\"REMOTE_ADDR\": \"127.0.0.1\"".to_string(),
        format!("\"REMOTE_PORT\": \"{local_port}\""),
        format!("\"SERVER_PORT\": \"{}\"", n.port),
        "\"SERVER_NAME\": \"127.0.0.1\"".to_string(),
        "\"SERVER_PROTOCOL\": \"HTTP/1.1\"".to_string(),
        "\"HTTP_X_CUSTOM\": \"v\"".to_string(),
        "\"wsgi.url_scheme\": \"http\"".to_string(),
        "\"wsgi.multithread\": true".to_string(),
    ] {
        assert!(env.contains(&want), "{want} not in {env}");
    }
    let env = Request::get("/env").http10().send(n.port).text();
    assert!(env.contains("\"SERVER_PROTOCOL\": \"HTTP/1.0\""), "{env}");
}

#[test]
fn request_bodies_reach_wsgi_input() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_app {}; client_max_body_size 20m; }}",
            app("cases.py")
        ))
        .http("client_body_buffer_size 16k;"),
    );
    // Small (memory), large (nginx's temp file) and chunked bodies.
    let small = b"a=1&b=2".to_vec();
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for body in [&small, &large] {
        let r = Request::post("/echo", "application/octet-stream", body).send(n.port);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("X-Received"),
            Some(body.len().to_string().as_str())
        );
        assert!(r.body == *body, "body differs ({} bytes)", body.len());
    }
    let r = Request::post("/echo?how=lines", "text/plain", b"one\ntwo\nthree")
        .chunked()
        .send(n.port);
    assert_eq!(r.text(), "one\ntwo\nthree");
    let env = Request::post("/env", "text/plain", b"xyz")
        .chunked()
        .send(n.port)
        .text();
    assert!(env.contains("\"wsgi.input_terminated\": true"), "{env}");
}

#[test]
fn uploads_read_in_pieces_arrive_whole_whatever_the_body_buffer() {
    for buffer in ["", "wsgi_body_buffer_size 1k;", "wsgi_body_buffer_size 1m;"] {
        let n = Nginx::start(Config::new(&format!(
            "location / {{ wsgi_app {}; client_max_body_size 20m; {buffer} }}",
            app("cases.py")
        )));
        wire::uploads_in_pieces_arrive_whole(n.port, "", buffer);
    }
}

/// Uploads do not depend on nginx's `client_body_buffer_size` (many sites
/// raise it to keep bodies out of temporary files): the module reads a
/// body through its own `wsgi_body_buffer_size`. A worker's memory after
/// 32 concurrent 1 MiB uploads, read by the app in 64 KiB pieces, is the
/// same with nginx's 16k as with 2m: within 10 % embedded (it was 2.8
/// times as much, a buffer of the whole body taken from the system for
/// each upload). A group's worker holds no Python and little else: its
/// memory after the run is mostly what the bodies left in its heap, and
/// that depends on timing, not on the setting: up to 256 KiB of each body
/// waits in the worker for the daemon to ask (measured 18-28 MiB with
/// either setting, more on a loaded machine). A buffer of the whole body
/// per upload adds 32 MiB (32 uploads of 1 MiB at once), so there the
/// least of 3 runs of each setting may differ by half that, 16 MiB.
#[test]
fn uploads_do_not_depend_on_client_body_buffer_size() {
    let least_rss = |group: bool, size: &str, runs: usize| {
        (0..runs)
            .map(|_| upload_rss(group, size))
            .min()
            .unwrap_or(0)
    };
    let (small, large) = (least_rss(false, "16k", 1), least_rss(false, "2m", 1));
    assert!(
        large * 100 <= small * 110,
        "embedded: worker RSS {large} KiB with 2m against {small} KiB with 16k"
    );
    let (small, large) = (least_rss(true, "16k", 3), least_rss(true, "2m", 3));
    assert!(
        large <= small + 16 * 1024,
        "group: worker RSS {large} KiB with 2m against {small} KiB with 16k"
    );
}

/// A worker's RSS (KiB) after 32 clients sent 1 MiB uploads, 4 each, to
/// `/consume` (embedded or in a group) with nginx's `client_body_buffer_size`
/// at `size`.
fn upload_rss(group: bool, size: &str) -> u64 {
    let config = if group {
        nginx::cases_in_group("processes=1 threads=16")
    } else {
        Config::new(&format!("location / {{ wsgi_app {}; }}", app("cases.py")))
    };
    let n = Nginx::start(config.http(&format!(
        "client_body_buffer_size {size}; client_max_body_size 2m;"
    )));
    let body = std::sync::Arc::new(vec![b'u'; 1 << 20]);
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let (body, port) = (body.clone(), n.port);
            std::thread::spawn(move || {
                for _ in 0..4 {
                    let r = Request::post("/consume", "application/octet-stream", &body).send(port);
                    assert_eq!(r.text(), "1048576");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    oxwsgi_e2e::rss_kib(&n.workers())
}

#[test]
fn client_max_body_size_is_honoured() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; client_max_body_size 1k; }}",
        app("cases.py")
    )));
    let r = Request::post("/echo", "text/plain", &[b'x'; 5000]).send(n.port);
    assert_eq!(r.status, 413);
}

/// The behaviours of the shared case table as nginx users see them.
#[test]
fn wsgi_mistakes_become_500_with_a_log_line() {
    let n = cases_at_root();
    oxwsgi_e2e::cases::mistakes_answer_500_and_are_logged(&n, n.port, "", "embedded");
    // The worker kept serving.
    assert_eq!(http::get(n.port, "/cookies").status, 200);
    assert_eq!(n.workers().len(), 1);
}

#[test]
fn errors_after_the_headers_cut_the_response() {
    let n = cases_at_root();
    let r = http::get(n.port, "/raise-late");
    assert_eq!(r.status, 200);
    assert!(!r.complete, "a failed response must not look complete");
    assert_eq!(r.text(), "part one;");
    let r = http::get(n.port, "/short-body");
    assert!(!r.complete);
    assert!(n.wait_log("application promised 100 bytes in Content-Length but sent 20"));
}

#[test]
fn response_features() {
    let n = cases_at_root();
    assert_eq!(
        http::get(n.port, "/write").text(),
        "written-1;written-2;returned"
    );
    let r = http::get(n.port, "/cookies");
    assert_eq!(
        r.headers_named("Set-Cookie"),
        ["a=1; Path=/", "b=2; Path=/"]
    );
    let r = http::get(n.port, "/exc-info");
    assert_eq!((r.status, r.text().as_str()), (503, "app error page"));
    let r = http::get(n.port, "/empty");
    assert_eq!(r.status, 204);
    let r = Request::get("/big?size=1000").method("HEAD").send(n.port);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = http::get(n.port, "/big?size=100000");
    assert_eq!(r.body.len(), 100000);
    assert_eq!(r.header("Content-Length"), Some("100000"));
}

#[test]
fn file_wrapper_sends_the_file() {
    let n = cases_at_root();
    let r = http::get(n.port, "/file?size=5000000&skip=100");
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.body.len(), 4_999_900);
    assert_eq!(r.body[0], 100);
    let r = http::get(n.port, "/filelike");
    assert_eq!(r.text(), "from a file-like object ".repeat(10));
}

#[test]
fn print_and_wsgi_errors_land_in_the_error_log() {
    let n = cases_at_root();
    assert_eq!(http::get(n.port, "/log?marker=N9X").text(), "logged N9X");
    assert!(n.wait_log("stdout says N9X"), "{}", n.error_log());
    assert!(n.wait_log("stderr says N9X"));
    assert!(n.wait_log("errors says N9X"));
}

#[test]
fn a_broken_app_fails_alone() {
    let n = Nginx::start(Config::new(&format!(
        "location /broken {{ wsgi_app {}; }}\nlocation / {{ wsgi_app {}; }}",
        app("broken_syntax.py"),
        app("cases.py")
    )));
    assert!(n.wait_log("SyntaxError"), "{}", n.error_log());
    assert!(n.error_log().contains("broken_syntax.py\", line 1"));
    assert_eq!(http::get(n.port, "/broken").status, 500);
    assert_eq!(http::get(n.port, "/cookies").status, 200);
}

#[test]
fn streaming_sends_each_chunk_as_it_is_produced() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; client_max_body_size 10m; }}",
        app("cases.py")
    )));
    wire::each_chunk_leaves_at_once(n.port, "");
    wire::streaming_while_reading_and_logging(n.port, "", || n.error_log());
}

#[test]
fn python_never_blocks_the_event_loop() {
    let dir = oxwsgi_e2e::temp_dir("static");
    std::fs::write(dir.join("static.txt"), "static bytes").unwrap();
    let n = Nginx::start(
        Config::new(&format!(
            "location /static.txt {{ root {}; }}\nlocation / {{ wsgi_app {}; }}",
            dir.display(),
            app("cases.py")
        ))
        .http("wsgi_threads 2;"),
    );
    // Both Python threads sleep for 2 s ...
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let port = n.port;
            std::thread::spawn(move || http::get(port, "/sleep?ms=2000").status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // ... while the same (single) worker serves static files at once.
    for _ in 0..20 {
        let t = Instant::now();
        let r = http::get(n.port, "/static.txt");
        assert_eq!(r.text(), "static bytes");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "static file took {:?}",
            t.elapsed()
        );
    }
    for s in sleepers {
        assert_eq!(s.join().unwrap(), 200);
    }
}

fn closed_count(port: u16) -> u64 {
    http::get(port, "/closed").text().parse().unwrap()
}

#[test]
fn client_disconnect_stops_the_app_and_closes_the_iterable() {
    let n = cases_at_root();
    let before = closed_count(n.port);
    {
        let mut s = http::connect(n.port);
        s.write_all(&Request::get("/stream?n=100000&size=1000&delay=0.01").to_bytes(n.port))
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
    } // hang up mid-response
    assert!(
        wait_until(Duration::from_secs(10), || closed_count(n.port) > before),
        "close() was not called after the client left"
    );
}

#[test]
fn a_slow_reader_throttles_a_huge_response_instead_of_buffering_it() {
    let n = cases_at_root();
    let worker = n.workers()[0];
    wire::slow_reader_is_throttled(n.port, "", || oxwsgi_e2e::rss_kib(&[worker]));
}

#[test]
fn nginx_filters_still_apply() {
    let n = Nginx::start(
        Config::new(&format!("location / {{ wsgi_app {}; }}", app("cases.py")))
            .http("gzip on; gzip_types text/plain; gzip_min_length 100;"),
    );
    let r = Request::get("/big?size=50000")
        .header("Accept-Encoding", "gzip")
        .send(n.port);
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain.len(), 50000);
    let logged = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(n.dir.join("access.log"))
            .unwrap_or_default()
            .contains("GET /big?size=50000 HTTP/1.1\" 200")
    });
    assert!(logged, "the request is not in nginx's access log");
}

#[test]
fn wsgi_gzip_and_request_inflation() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; wsgi_gzip on; wsgi_inflate_request on; wsgi_inflate_max 1m; client_max_body_size 10m; }}",
        app("cases.py")
    )));
    let r = Request::get("/big?size=50000")
        .header("Accept-Encoding", "gzip")
        .send(n.port);
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain.len(), 50000);

    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let r = Request::post("/echo", "text/plain", &gz(b"inflated by oxwsgi"))
        .header("Content-Encoding", "gzip")
        .send(n.port);
    assert_eq!(r.text(), "inflated by oxwsgi");
    let bomb = gz(&vec![0u8; 8 << 20]);
    let r = Request::post("/echo", "application/octet-stream", &bomb)
        .header("Content-Encoding", "gzip")
        .send(n.port);
    assert_eq!(r.status, 413);
}

#[test]
fn graceful_quit_and_reload_finish_requests_in_flight() {
    let mut n = cases_at_root();
    let port = n.port;
    let slow = std::thread::spawn(move || http::get(port, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let old_workers = n.workers();
    n.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let w = n.workers();
            !w.is_empty() && w.iter().all(|p| !old_workers.contains(p))
        }) || n.workers().len() > 1
    );
    // New requests are served while the old worker finishes its request.
    assert_eq!(http::get(n.port, "/cookies").status, 200);
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1500 ms"));

    let slow = std::thread::spawn(move || http::get(port, "/sleep?ms=1000"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(n.quit(Duration::from_secs(20)), "nginx did not quit");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn https_and_http2_are_reflected_in_environ() {
    let dir = oxwsgi_e2e::temp_dir("tls");
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    let mut config = Config::new(&format!(
        // A client_body_buffer_size above the module's own buffer: the
        // upload below still streams through wsgi_body_buffer_size.
        "ssl_certificate {};\nssl_certificate_key {};\nlocation / {{ wsgi_app {}; client_max_body_size 10m; \
         client_body_buffer_size 2m; }}",
        cert.display(),
        key.display(),
        app("cases.py")
    ));
    config.listen = "ssl http2".into();
    let n = Nginx::start(config);
    let out = std::process::Command::new("curl")
        .args(["-sk", "--http2"])
        .arg(format!("https://127.0.0.1:{}/env", n.port))
        .output()
        .expect("curl");
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("\"HTTPS\": \"on\""), "{env}");
    assert!(env.contains("\"wsgi.url_scheme\": \"https\""), "{env}");
    assert!(env.contains("\"SERVER_PROTOCOL\": \"HTTP/2.0\""), "{env}");
    // A streamed response over HTTP/2 arrives whole.
    let out = std::process::Command::new("curl")
        .args(["-sk", "--http2"])
        .arg(format!(
            "https://127.0.0.1:{}/stream?n=50&size=1000",
            n.port
        ))
        .output()
        .expect("curl");
    assert_eq!(out.stdout.len(), 50_000);
    // An upload over HTTP/2 streams to the app too.
    let upload = dir.join("upload.bin");
    std::fs::write(&upload, vec![b'h'; 3_000_000]).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sk", "--http2", "-X", "POST", "--data-binary"])
        .arg(format!("@{}", upload.display()))
        .arg(format!("https://127.0.0.1:{}/consume", n.port))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3000000");
}

/// nginx 1.25 and later speak HTTP/3 (Debian 13's is built with it): a
/// request over QUIC reaches the app with its protocol in environ, and
/// streamed responses and uploads go through whole. Debian 12's nginx 1.22
/// has no HTTP/3; there the test checks only that it is that old.
#[test]
fn http3_requests_reach_the_app_where_nginx_speaks_it() {
    let v = std::process::Command::new(oxwsgi_e2e::nginx::NGINX)
        .arg("-V")
        .output()
        .expect("nginx -V");
    let v = String::from_utf8_lossy(&v.stderr).into_owned();
    if !v.contains("--with-http_v3_module") {
        let version = v
            .split("nginx/")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("nginx -V names the version");
        let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
        assert!(
            version.starts_with("1.") && minor < 25,
            "nginx {version} should have HTTP/3"
        );
        return;
    }
    let q = oxwsgi_e2e::free_port();
    let dir = oxwsgi_e2e::temp_dir("quic");
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    let n = Nginx::start(Config::new(&format!(
        "listen 127.0.0.1:{q} quic;\nlisten 127.0.0.1:{q} ssl;\n\
         ssl_certificate {};\nssl_certificate_key {};\n\
         location / {{ wsgi_app {}; client_max_body_size 10m; }}",
        cert.display(),
        key.display(),
        app("cases.py")
    )));
    let curl = |args: &[&str], path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sSk", "--http3-only"])
            .args(args)
            .arg(format!("https://127.0.0.1:{q}{path}"))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl --http3-only {path}: {}\n{}",
            oxwsgi_e2e::output_text(&out),
            n.error_log()
        );
        out.stdout
    };
    let env = String::from_utf8_lossy(&curl(&[], "/env")).into_owned();
    assert!(env.contains("\"SERVER_PROTOCOL\": \"HTTP/3.0\""), "{env}");
    assert!(env.contains("\"wsgi.url_scheme\": \"https\""), "{env}");
    assert_eq!(curl(&[], "/stream?n=50&size=1000").len(), 50_000);
    let upload = dir.join("upload.bin");
    std::fs::write(&upload, vec![b'q'; 3_000_000]).unwrap();
    let at = format!("@{}", upload.display());
    let got = curl(&["-X", "POST", "--data-binary", &at], "/consume");
    assert_eq!(String::from_utf8_lossy(&got), "3000000");
}

#[test]
fn large_uploads_stream_to_the_app_without_temp_files() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; client_max_body_size 200m; }}",
        app("cases.py")
    )));
    let worker = n.workers()[0];
    http::get(n.port, "/cookies");
    // 64 MiB uploaded to an app that reads it slowly: the body must not pile
    // up in the worker, nor in nginx's temporary files.
    wire::slow_upload_keeps_memory_flat(n.port, "", || oxwsgi_e2e::rss_kib(&[worker]));
    let temp_files = std::fs::read_dir(n.dir.join("body"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(temp_files, 0, "the body went through nginx's temp files");
}

#[test]
fn blocking_apps_use_every_python_thread() {
    let n = Nginx::start(
        Config::new(&format!("location / {{ wsgi_app {}; }}", app("cases.py")))
            .http("wsgi_threads 4;"),
    );
    http::get(n.port, "/cookies");
    // Four requests that each sleep 600 ms, on four threads: together they
    // take about one sleep, not four.
    let start = Instant::now();
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            let port = n.port;
            std::thread::spawn(move || http::get(port, "/sleep?ms=600").status)
        })
        .collect();
    for s in sleepers {
        assert_eq!(s.join().unwrap(), 200);
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "4 sleeping requests on 4 threads took {took:?}"
    );
}

#[test]
fn an_oversized_chunked_body_gets_413_while_it_streams() {
    let n = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; client_max_body_size 100k; }}",
        app("cases.py")
    )));
    let r = Request::post("/consume", "application/octet-stream", &vec![b'c'; 400_000])
        .chunked()
        .send(n.port);
    assert_eq!(r.status, 413);
    // The worker is fine afterwards.
    assert_eq!(http::get(n.port, "/cookies").status, 200);
}

#[test]
fn a_fast_stop_does_not_wait_for_a_client_that_stalls() {
    let mut n = cases_at_root();
    // A request whose body never finishes arriving: its Python thread waits
    // for the rest inside wsgi.input.read().
    let mut s = http::connect(n.port);
    s.write_all(b"POST /consume HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    s.write_all(&[b'p'; 300_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    n.signal(libc::SIGTERM);
    assert!(n.quit(Duration::from_secs(10)), "nginx did not stop");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        start.elapsed()
    );
    drop(s);
}

#[test]
fn responses_end_where_their_framing_says_over_http1_and_http2() {
    let h2 = oxwsgi_e2e::free_port();
    let dir = oxwsgi_e2e::temp_dir("tls");
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    let n = Nginx::start(Config::new(&format!(
        "listen 127.0.0.1:{h2} ssl http2;\n\
         ssl_certificate {};\nssl_certificate_key {};\n\
         location / {{ wsgi_app {}; }}",
        cert.display(),
        key.display(),
        app("cases.py")
    )));
    wire::no_body_leaks(n.port, "");
    wire::no_body_leaks_over_http2(&format!("https://127.0.0.1:{h2}"));
    wire::latin1_headers(n.port, "");
    wire::length_promises(n.port, "");
    wire::odd_request_lines(n.port, "", || n.error_log());
    assert!(
        n.wait_log(
            "application sent a body with status 204, which has none; the body is discarded"
        ),
        "{}",
        n.error_log()
    );
}

#[test]
fn processes_an_app_starts_keep_their_exit_statuses() {
    let n = Nginx::start(
        Config::new(&format!("location / {{ wsgi_app {}; }}", app("cases.py")))
            .http("wsgi_threads 4;"),
    );
    wire::child_exit_statuses(n.port, "");
    // Concurrently, from every Python thread.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let port = n.port;
            std::thread::spawn(move || wire::child_exit_statuses(port, ""))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // nginx's own child handling in the master is intact: a killed worker
    // is replaced and serves.
    let worker = n.workers()[0];
    // SAFETY: signalling a worker of the nginx this test started.
    unsafe { libc::kill(worker, libc::SIGKILL) };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let w = n.workers();
            w.len() == 1 && w[0] != worker
        }),
        "the master did not replace its worker"
    );
    wire::child_exit_statuses(n.port, "");
    assert!(
        !n.error_log().contains("No child processes"),
        "{}",
        n.error_log()
    );
}

/// Debug builds panic once at a named place when OXWSGI_FAILPOINT names it
/// (oxwsgi_core::guard::failpoint): each kind of entry from nginx must stop
/// the panic, log it with the entry's name, answer as the entry should, and
/// leave the worker serving.
#[test]
fn a_panic_in_any_entry_is_logged_answered_and_survived() {
    let site = format!("location / {{ wsgi_app {}; }}", app("cases.py"));
    // The content handler: that request gets 500, the next one is served.
    let n = Nginx::start(Config::new(&site).env("OXWSGI_FAILPOINT", "content_handler"));
    assert_eq!(http::get(n.port, "/cookies").status, 500);
    assert!(
        n.wait_log("internal error (panic) in the content handler: failpoint content_handler"),
        "{}",
        n.error_log()
    );
    assert_eq!(http::get(n.port, "/cookies").status, 200);
    drop(n);
    // An event callback (the Python threads' wake-up): the response still
    // arrives (the watchdog delivers it), and so do the next ones.
    let n = Nginx::start(Config::new(&site).env("OXWSGI_FAILPOINT", "notify_event"));
    for _ in 0..5 {
        assert_eq!(http::get(n.port, "/cookies").status, 200);
    }
    assert!(
        n.wait_log("internal error (panic) in the notify event: failpoint notify_event"),
        "{}",
        n.error_log()
    );
    drop(n);
    // A directive: nginx -t fails, naming it, instead of crashing.
    let (ok, out) = nginx::check(&Config::new(&site).env("OXWSGI_FAILPOINT", "wsgi_app"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("\"wsgi_app\" directive internal error (panic) in oxwsgi"),
        "{out}"
    );
}

/// At nginx's debug level a request's way through the module is in the
/// error log, step by step with times; at the default level none of it is.
#[test]
fn debug_level_traces_a_request_through_the_module() {
    let site = format!("location / {{ wsgi_app {}; }}", app("cases.py"));
    let mut config = Config::new(&site);
    config.log_level = "debug";
    let n = Nginx::start(config);
    assert_eq!(http::get(n.port, "/stream?n=2").status, 200);
    n.expect_logged(&[
        "GET /stream?n=2: calling the app",
        "/stream?n=2: picked by Python thread",
        "/stream?n=2: headers sent, status 200",
        "/stream?n=2: the last part to nginx's output filters",
        "/stream?n=2: finalised (0)",
        "GET /stream?n=2: app done, response Complete",
    ]);
    assert!(n.error_log().contains("after it was queued"));
    drop(n);
    let n = Nginx::start(Config::new(&site));
    assert_eq!(http::get(n.port, "/stream?n=2").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !n.error_log().contains("picked by Python thread"),
        "{}",
        n.error_log()
    );
}

/// `wsgi_application_group` gives a location's app an interpreter of its
/// own, in the workers and in a process group: two projects that each
/// import a `conf` module from their own directory get their own. Without
/// it, apps share the main interpreter (the first one's `conf` wins).
#[test]
fn application_groups_keep_projects_apart() {
    let g = repo().join("tests/apps/groups");
    let site = |name: &str| g.join(format!("site_{name}/wsgi.py")).display().to_string();
    let n = Nginx::start(
        Config::new(&format!(
            "location /a {{ wsgi_app {a}; wsgi_application_group project-a; }}\n\
             location /b {{ wsgi_app {b}; wsgi_application_group project-b; }}\n\
             location /ga {{ wsgi_app {a}; }}\n\
             location /gb {{ wsgi_app {b}; wsgi_application_group off; }}\n\
             location /da {{ wsgi_process_group site; wsgi_app {a}; wsgi_application_group project-a; }}\n\
             location /db {{ wsgi_process_group site; wsgi_app {b}; wsgi_application_group project-b; }}",
            a = site("a"),
            b = site("b"),
        ))
        .http("wsgi_daemon_process site processes=1 threads=2;"),
    );
    for (path, want) in [
        ("/a/", "site=a "),
        ("/b/", "site=b "),
        ("/ga/", "site=a "),
        // Preloaded after /ga in each worker: /ga's `conf` is there first.
        ("/gb/", "site=a "),
        ("/da/", "site=a "),
        ("/db/", "site=b "),
    ] {
        for _ in 0..4 {
            let r = http::get(n.port, path);
            assert_eq!(r.status, 200, "{path}: {}", n.error_log());
            assert!(r.text().starts_with(want), "{path}: {}", r.text());
        }
    }
}

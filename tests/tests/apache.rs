//! The Apache module end to end: /usr/sbin/apache2 from Debian's package
//! loads the built module and serves WSGI apps on loopback ports.

use std::time::{Duration, Instant};

use oxwsgi_e2e::apache::{self, Apache};
use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::{app, repo, wire};

fn hello_and_cases(mpm: &str) -> Apache {
    with_directives(mpm, "")
}

fn with_directives(mpm: &str, extra: &str) -> Apache {
    Apache::start(
        mpm,
        &format!(
            "WSGIScriptAlias /cases {}\nWSGIScriptAlias / {}\n{extra}",
            app("cases.py"),
            repo().join("examples/hello.py").display()
        ),
    )
}

#[test]
fn hello_world_under_every_mpm() {
    for mpm in ["event", "worker", "prefork"] {
        let a = hello_and_cases(mpm);
        let r = http::get(a.port, "/");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "<h1>Hello, web!</h1>"),
            "{mpm}"
        );
        assert_eq!(
            http::get(a.port, "/world").text(),
            "<h1>Hello, world!</h1>",
            "{mpm}"
        );
    }
}

#[test]
fn script_alias_splits_script_name_and_path_info() {
    let a = hello_and_cases("event");
    let env = http::get(a.port, "/cases/env?q=1").text();
    for want in [
        "\"SCRIPT_NAME\": \"/cases\"",
        "\"PATH_INFO\": \"/env\"",
        "\"QUERY_STRING\": \"q=1\"",
        "\"REQUEST_METHOD\": \"GET\"",
        "\"REMOTE_ADDR\": \"127.0.0.1\"",
    ] {
        assert!(env.contains(want), "{want} not in {env}");
    }
    // The root alias gets everything else, with an empty SCRIPT_NAME.
    assert_eq!(
        http::get(a.port, "/casesx").text(),
        "<h1>Hello, casesx!</h1>"
    );
}

#[test]
fn wsgi_mistakes_become_500_with_a_log_line() {
    let a = hello_and_cases("event");
    oxwsgi_e2e::cases::mistakes_answer_500_and_are_logged(&a, a.port, "/cases", "event");
    assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
}

#[test]
fn bodies_streaming_and_aborts() {
    let a = with_directives("event", "WSGIChunkedRequest On");
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let r = Request::post("/cases/echo", "application/octet-stream", &body).send(a.port);
    assert!(r.body == body, "echoed body differs");
    let r = Request::post("/cases/echo?how=lines", "text/plain", b"a\nb\nc")
        .chunked()
        .send(a.port);
    assert_eq!(r.text(), "a\nb\nc");
    let start = Instant::now();
    let r = http::get(a.port, "/cases/stream?n=3&size=8&delay=0.3");
    assert_eq!(r.text(), "0:......1:......2:......");
    assert!(start.elapsed() >= Duration::from_millis(600));
    let r = http::get(a.port, "/cases/raise-late");
    assert!(!r.complete, "a failed response must not look complete");
    assert_eq!(
        http::get(a.port, "/cases/write").text(),
        "written-1;written-2;returned"
    );
}

#[test]
fn unsupported_mod_wsgi_directives_fail_the_config_test() {
    // Daemon mode's options: those not implemented yet are refused by name
    // (tests/tests/apache_daemon.rs has the rest).
    apache::assert_refused(
        "WSGIDaemonProcess site threads=5 chroot=/srv/jail",
        "option chroot is not supported by oxwsgi yet",
    );
    apache::assert_refused("WSGIProcessGroup %{SERVER}", "not supported by oxwsgi yet");
    apache::assert_refused(
        "WSGIPythonHome /nonexistent/venv",
        "WSGIPythonHome: python home /nonexistent/venv does not exist",
    );
    apache::assert_refused("WSGIScriptAlias app /srv/app.py", "must start with \"/\"");
}

#[test]
fn chunked_bodies_need_wsgi_chunked_request() {
    let a = hello_and_cases("event");
    let r = Request::post("/cases/echo", "text/plain", b"abc")
        .chunked()
        .send(a.port);
    assert_eq!(r.status, 411);
}

#[test]
fn authorization_and_server_variables() {
    let env_of = |a: &Apache| {
        Request::get("/cases/env")
            .header("Authorization", "Basic dTpw")
            .send(a.port)
            .text()
    };
    let a = with_directives("event", "SetEnv SITE_MODE staging");
    let env = env_of(&a);
    assert!(!env.contains("HTTP_AUTHORIZATION"), "{env}");
    assert!(env.contains("\"SITE_MODE\": \"staging\""), "{env}");
    assert!(env.contains("\"wsgi.multithread\": true"), "{env}");
    drop(a);
    let a = with_directives("prefork", "WSGIPassAuthorization On");
    let env = env_of(&a);
    assert!(
        env.contains("\"HTTP_AUTHORIZATION\": \"Basic dTpw\""),
        "{env}"
    );
    assert!(env.contains("\"wsgi.multithread\": false"), "{env}");
    assert!(env.contains("\"wsgi.multiprocess\": true"), "{env}");
}

#[test]
fn script_alias_match_set_handler_and_import_script() {
    let dir = oxwsgi_e2e::temp_dir("wsgi-dir");
    let hello = std::fs::read_to_string(repo().join("examples/hello.py")).unwrap();
    std::fs::write(dir.join("one.wsgi"), hello.replace("Hello", "One")).unwrap();
    std::fs::write(dir.join("two.wsgi"), hello.replace("Hello", "Two")).unwrap();
    let a = Apache::start(
        "event",
        &format!(
            "WSGIScriptAliasMatch ^/apps/([a-z]+) {dir}/$1.wsgi\n\
             Alias /files {dir}\n\
             <Directory {dir}>\n    SetHandler wsgi-script\n    Options +ExecCGI\n    Require all granted\n</Directory>\n\
             WSGIImportScript {cases} process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}",
            dir = dir.display(),
            cases = app("cases.py"),
        ),
    );
    // The regex picks the script; SCRIPT_NAME is what it matched.
    assert_eq!(http::get(a.port, "/apps/one/x").text(), "<h1>One, x!</h1>");
    assert_eq!(http::get(a.port, "/apps/two").text(), "<h1>Two, web!</h1>");
    // A .wsgi file in a SetHandler directory is an app; PATH_INFO follows it.
    assert_eq!(
        http::get(a.port, "/files/two.wsgi/y").text(),
        "<h1>Two, y!</h1>"
    );
    // The imported script was loaded when the children started.
    assert!(a.wait_log("cases.py: loaded"), "{}", a.error_log());
}

/// A typical mod_wsgi site, used unchanged by Debian's mod_wsgi and by
/// oxwsgi: only the LoadModule line differs.
const MOD_WSGI_SITE: &str = "\
<VirtualHost 127.0.0.1:{port}>
    ServerName site.test
    WSGIScriptAlias /app CASES
    WSGIApplicationGroup %{GLOBAL}
    WSGIPassAuthorization On
    <Directory APPS>
        Require all granted
    </Directory>
</VirtualHost>
";

#[test]
fn a_mod_wsgi_site_answers_the_same_under_oxwsgi() {
    let site = MOD_WSGI_SITE
        .replace("CASES", &app("cases.py"))
        .replace("APPS", &repo().join("tests/apps").display().to_string());
    let ours = Apache::start_with(
        "event",
        &format!("LoadModule wsgi_module {}", apache::module().display()),
        &site,
    );
    let theirs = Apache::start_with("event", &apache::mod_wsgi(), &site);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let exchanges = |port: u16| {
        let mut out = Vec::new();
        for path in [
            "/app/cookies",
            "/app/write",
            "/app/stream?n=3&size=8",
            "/app/exc-info",
            "/app/nowhere",
        ] {
            let r = http::get(port, path);
            out.push((
                path.to_string(),
                r.status,
                r.body.clone(),
                r.headers_named("Set-Cookie").join("|"),
            ));
        }
        let r = Request::post("/app/echo", "application/octet-stream", &body).send(port);
        out.push((
            "POST /app/echo".into(),
            r.status,
            r.body.clone(),
            String::new(),
        ));
        for &(path, _) in oxwsgi_e2e::cases::MISTAKES {
            // Deliberate differences, where mod_wsgi sends what the app
            // gave: a hop-by-hop header like Connection (PEP 3333 forbids
            // it); an interim status as the final one (the client then
            // waits for a response that never comes); two different
            // Content-Lengths (the client cannot know where the body ends).
            if ["/hop-header", "/interim-status", "/two-lengths"].contains(&path) {
                continue;
            }
            let r = http::get(port, &format!("/app{path}"));
            out.push((path.to_string(), r.status, Vec::new(), String::new()));
        }
        let env = Request::get("/app/env?x=1")
            .header("Authorization", "Basic dTpw")
            .send(port)
            .text();
        for key in [
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "HTTP_AUTHORIZATION",
            "REQUEST_METHOD",
        ] {
            let value = env
                .split(&format!("\"{key}\": "))
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .unwrap_or("missing")
                .to_string();
            out.push((key.to_string(), 0, value.into_bytes(), String::new()));
        }
        out
    };
    let (a, b) = (exchanges(ours.port), exchanges(theirs.port));
    let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    assert!(differ.is_empty(), "oxwsgi and mod_wsgi differ: {differ:#?}");
}

#[test]
fn graceful_restart_finishes_requests_in_flight() {
    let a = hello_and_cases("event");
    let port = a.port;
    let slow = std::thread::spawn(move || http::get(port, "/cases/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let pid: i32 = std::fs::read_to_string(a.dir.join("httpd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling the apache2 parent this test started (graceful restart).
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1500 ms"));
    assert!(oxwsgi_e2e::wait_until(
        Duration::from_secs(10),
        || http::get(a.port, "/").status == 200
    ));
}

#[test]
fn aliases_belong_to_their_virtual_host() {
    let hello = repo().join("examples/hello.py").display().to_string();
    let a = Apache::start_with(
        "event",
        &format!("LoadModule wsgi_module {}", apache::module().display()),
        &format!(
            "WSGIScriptAlias /main {hello}\n\
             <VirtualHost 127.0.0.1:{{port}}>\n    ServerName a.test\n    WSGIScriptAlias /a {cases}\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:{{port}}>\n    ServerName b.test\n</VirtualHost>",
            cases = app("cases.py"),
        ),
    );
    let get = |host: &str, path: &str| Request::get(path).header("Host", host).send(a.port);
    assert_eq!(get("a.test", "/a/cookies").status, 200);
    // a.test has aliases of its own: the main server's do not apply there.
    assert_eq!(get("a.test", "/main").status, 404);
    // b.test has none: it inherits the main server's.
    assert_eq!(get("b.test", "/main/b").text(), "<h1>Hello, b!</h1>");
    assert_eq!(get("b.test", "/a/cookies").status, 404);
}

#[test]
fn python_output_is_logged_with_the_request() {
    let a = hello_and_cases("event");
    assert_eq!(
        http::get(a.port, "/cases/log?marker=AP7").text(),
        "logged AP7"
    );
    for said in ["stdout says AP7", "stderr says AP7", "errors says AP7"] {
        assert!(a.wait_log(said), "{said} not logged:\n{}", a.error_log());
        let log = a.error_log();
        let line = log.lines().find(|l| l.contains(said)).unwrap();
        assert!(
            line.contains("[client 127.0.0.1:"),
            "no request context: {line}"
        );
    }
}

#[test]
fn client_disconnect_stops_the_app_and_closes_the_iterable() {
    use std::io::{Read, Write};
    let a = hello_and_cases("event");
    let closed = || -> u64 { http::get(a.port, "/cases/closed").text().parse().unwrap() };
    // Every child has its own count: keep asking until a child that served
    // the hang-up answers with a higher one.
    let before: u64 = (0..10).map(|_| closed()).max().unwrap();
    {
        let mut s = http::connect(a.port);
        s.write_all(&Request::get("/cases/stream?n=100000&size=1000&delay=0.01").to_bytes(a.port))
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
    }
    let grew = oxwsgi_e2e::wait_until(Duration::from_secs(15), || {
        (0..10).any(|_| closed() > before)
    });
    assert!(grew, "close() was not called after the client left");
}

#[test]
fn output_filters_and_ssl_apply() {
    use std::io::Read;
    let dir = oxwsgi_e2e::temp_dir("apache-tls");
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    let mods = "/usr/lib/apache2/modules";
    let a = Apache::start(
        "event",
        &format!(
            "LoadModule filter_module {mods}/mod_filter.so\n\
             LoadModule deflate_module {mods}/mod_deflate.so\n\
             LoadModule socache_shmcb_module {mods}/mod_socache_shmcb.so\n\
             LoadModule ssl_module {mods}/mod_ssl.so\n\
             AddOutputFilterByType DEFLATE text/plain\n\
             SSLEngine on\n\
             SSLCertificateFile {cert}\n\
             SSLCertificateKeyFile {key}\n\
             SSLOptions +StdEnvVars\n\
             WSGIScriptAlias /cases {cases}",
            cert = cert.display(),
            key = key.display(),
            cases = app("cases.py"),
        ),
    );
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .arg("-sk")
            .args(args)
            .output()
            .expect("curl");
        out.stdout
    };
    // mod_ssl's variables reach environ.
    let env =
        String::from_utf8(curl(&[&format!("https://127.0.0.1:{}/cases/env", a.port)])).unwrap();
    assert!(env.contains("\"HTTPS\": \"on\""), "{env}");
    assert!(env.contains("\"wsgi.url_scheme\": \"https\""), "{env}");
    // SSLOptions +StdEnvVars adds the SSL_* variables, as mod_wsgi passes them.
    assert!(env.contains("\"SSL_PROTOCOL\": \"TLSv1."), "{env}");
    assert!(
        env.contains("\"SSL_SERVER_S_DN_CN\": \"127.0.0.1\""),
        "{env}"
    );
    // mod_deflate compresses what the app streams through the filters.
    let gz = curl(&[
        "-H",
        "Accept-Encoding: gzip",
        &format!("https://127.0.0.1:{}/cases/big?size=50000&stream=1", a.port),
    ]);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain.len(), 50000);
    assert!(gz.len() < 10000, "not compressed: {} bytes", gz.len());
}

#[test]
fn basic_auth_sets_remote_user_and_auth_type() {
    let dir = oxwsgi_e2e::temp_dir("apache-auth");
    let users = dir.join("users");
    let made = std::process::Command::new("htpasswd")
        .args(["-cbB"])
        .arg(&users)
        .args(["alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(made.status.success(), "{made:?}");
    let a = with_directives(
        "event",
        &format!(
            "LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so\n\
             LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so\n\
             LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so\n\
             LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so\n\
             <Location /cases/env>\n\
                 AuthType Basic\n    AuthName private\n    AuthUserFile {}\n    Require valid-user\n\
             </Location>",
            users.display()
        ),
    );
    let env = |auth: Option<&str>| {
        let mut r = Request::get("/cases/env");
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send(a.port)
    };
    // alice:s3cret, alice:wrong
    assert_eq!(env(None).status, 401);
    assert_eq!(env(Some("Basic YWxpY2U6d3Jvbmc=")).status, 401);
    let r = env(Some("Basic YWxpY2U6czNjcmV0"));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("\"REMOTE_USER\": \"alice\""), "{text}");
    assert!(text.contains("\"AUTH_TYPE\": \"Basic\""), "{text}");
    // Apache checked the password; the app does not see it unless
    // WSGIPassAuthorization is on.
    assert!(!text.contains("HTTP_AUTHORIZATION"), "{text}");
    // Other URLs need no password.
    assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wsgi_callable_object_applies_per_directory_and_location() {
    let dir = oxwsgi_e2e::temp_dir("apache-callable");
    let (one, two) = (dir.join("one"), dir.join("two"));
    let script = "def answer(text):\n\
                  \x20   def app(environ, start_response):\n\
                  \x20       start_response('200 OK', [('Content-Type', 'text/plain')])\n\
                  \x20       return [text]\n\
                  \x20   return app\n\
                  application = answer(b'application')\n\
                  other = answer(b'other')\n\
                  third = answer(b'third')\n";
    for d in [&one, &two] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("site.wsgi"), script).unwrap();
    }
    let a = Apache::start(
        "event",
        &format!(
            "WSGIScriptAlias /one {one}/site.wsgi\n\
             WSGIScriptAlias /two {two}/site.wsgi\n\
             WSGIScriptAlias /three {one}/site.wsgi\n\
             <Directory {dir}>\n    Require all granted\n</Directory>\n\
             <Directory {two}>\n    WSGICallableObject other\n</Directory>\n\
             <Location /three>\n    WSGICallableObject third\n</Location>",
            one = one.display(),
            two = two.display(),
            dir = dir.display(),
        ),
    );
    assert_eq!(http::get(a.port, "/one").text(), "application");
    assert_eq!(http::get(a.port, "/two").text(), "other");
    assert_eq!(http::get(a.port, "/three/x").text(), "third");
    // The same script under its default callable is unaffected afterwards.
    assert_eq!(http::get(a.port, "/one/y").text(), "application");
    // A callable that does not exist: 500 and a log line naming it.
    drop(a);
    let a = Apache::start(
        "event",
        &format!(
            "WSGIScriptAlias /one {one}/site.wsgi\n\
             <Directory {one}>\n    Require all granted\n    WSGICallableObject missing\n</Directory>",
            one = one.display(),
        ),
    );
    assert_eq!(http::get(a.port, "/one").status, 500);
    assert!(a.wait_log("missing"), "{}", a.error_log());
    drop(a);
    // In a virtual host, and at server level for the hosts that set none.
    let a = Apache::start(
        "event",
        &format!(
            "WSGICallableObject third\n\
             <Directory {dir}>\n    Require all granted\n</Directory>\n\
             <VirtualHost 127.0.0.1:{{port}}>\n    ServerName a.test\n\
             \x20   WSGIScriptAlias /x {one}/site.wsgi\n    WSGICallableObject other\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:{{port}}>\n    ServerName b.test\n\
             \x20   WSGIScriptAlias /x {one}/site.wsgi\n</VirtualHost>",
            one = one.display(),
            dir = dir.display(),
        ),
    );
    let get = |host: &str| Request::get("/x").header("Host", host).send(a.port).text();
    assert_eq!(get("a.test"), "other");
    assert_eq!(get("b.test"), "third");
    drop(a);
    // .htaccess, where AllowOverride FileInfo lets it.
    std::fs::write(two.join(".htaccess"), "WSGICallableObject third\n").unwrap();
    let a = Apache::start(
        "event",
        &format!(
            "Alias /files {two}
             <Directory {two}>
    Require all granted
    AllowOverride FileInfo
    Options +ExecCGI
                 SetHandler wsgi-script
</Directory>",
            two = two.display(),
        ),
    );
    assert_eq!(http::get(a.port, "/files/site.wsgi").text(), "third");
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn responses_end_where_their_framing_says_under_every_mpm() {
    let dir = oxwsgi_e2e::temp_dir("apache-h2");
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    let mods = "/usr/lib/apache2/modules";
    for mpm in ["event", "worker", "prefork"] {
        // HTTP/2 over TLS on a second port (mod_http2 needs a threaded MPM).
        let h2_port = oxwsgi_e2e::free_port();
        let h2 = if mpm == "prefork" {
            String::new()
        } else {
            format!(
                "LoadModule http2_module {mods}/mod_http2.so\n\
                 LoadModule socache_shmcb_module {mods}/mod_socache_shmcb.so\n\
                 LoadModule ssl_module {mods}/mod_ssl.so\n\
                 Listen 127.0.0.1:{h2_port}\n\
                 <VirtualHost 127.0.0.1:{h2_port}>\n\
                 Protocols h2 http/1.1\n\
                 SSLEngine on\n\
                 SSLCertificateFile {}\n\
                 SSLCertificateKeyFile {}\n\
                 </VirtualHost>",
                cert.display(),
                key.display()
            )
        };
        let a = with_directives(mpm, &h2);
        wire::no_body_leaks(a.port, "/cases");
        if !h2.is_empty() {
            wire::no_body_leaks_over_http2(&format!("https://127.0.0.1:{h2_port}/cases"));
        }
        wire::latin1_headers(a.port, "/cases");
        wire::length_promises(a.port, "/cases");
        wire::odd_request_lines(a.port, "/cases", || a.error_log());
        wire::child_exit_statuses(a.port, "/cases");
        wire::each_chunk_leaves_at_once(a.port, "/cases");
        wire::streaming_while_reading_and_logging(a.port, "/cases", || a.error_log());
    }
}

#[test]
fn a_slow_reader_throttles_a_huge_stream_under_every_mpm() {
    for mpm in ["event", "worker", "prefork"] {
        let a = hello_and_cases(mpm);
        wire::slow_reader_is_throttled(a.port, "/cases", || oxwsgi_e2e::rss_kib(&a.children()));
    }
}

/// As for nginx (see oxwsgi_core::guard::failpoint): a panic in the handler
/// is logged with its name and answered 500, and the child goes on; a panic
/// in a directive is a configuration error, not a crash.
#[test]
fn a_panic_in_an_entry_is_logged_answered_and_survived() {
    let load = format!("LoadModule wsgi_module {}", apache::module().display());
    // One child, so the failpoint fires once for the whole server.
    let body = format!(
        "StartServers 1\nServerLimit 1\nMaxRequestWorkers 25\nWSGIScriptAlias /cases {}",
        app("cases.py")
    );
    let a = Apache::start_env("event", &load, &body, &[("OXWSGI_FAILPOINT", "handler")]);
    assert_eq!(http::get(a.port, "/cases/cookies").status, 500);
    assert!(
        a.wait_log("internal error (panic) in the handler: failpoint handler"),
        "{}",
        a.error_log()
    );
    for _ in 0..5 {
        assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
    }
    let (ok, out) = apache::check_env(&body, &[("OXWSGI_FAILPOINT", "WSGIScriptAlias")]);
    assert!(!ok, "{out}");
    assert!(out.contains("internal error (panic) in oxwsgi"), "{out}");
}

/// `LogLevel wsgi:debug` traces a request through the module, with the
/// request's context; at the default level none of it is logged.
#[test]
fn debug_level_traces_a_request_through_the_module() {
    let a = with_directives("event", "LogLevel info wsgi:debug");
    assert_eq!(http::get(a.port, "/cases/stream?n=2").status, 200);
    a.expect_logged(&[
        "GET /cases/stream?n=2: calling the app",
        "the writer sends",
        "GET /cases/stream?n=2: app done, response Complete",
        "handler done: Complete",
    ]);
    drop(a);
    let a = hello_and_cases("event");
    assert_eq!(http::get(a.port, "/cases/stream?n=2").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !a.error_log().contains("calling the app"),
        "{}",
        a.error_log()
    );
}

/// mod_wsgi's names, where Apache looks a module up: a configuration's
/// `<IfModule mod_wsgi.c>` and `<IfModule wsgi_module>` blocks apply, as
/// under Debian's mod_wsgi (side by side), and their negations do not.
#[test]
fn ifmodule_blocks_written_for_mod_wsgi_apply() {
    let body = format!(
        "<IfModule mod_wsgi.c>\nWSGIScriptAlias /a {cases}\n</IfModule>\n\
         <IfModule wsgi_module>\nWSGIScriptAlias /b {cases}\n</IfModule>\n\
         <IfModule !mod_wsgi.c>\nWSGIScriptAlias /c {cases}\n</IfModule>",
        cases = app("cases.py")
    );
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        for path in ["/a/pid", "/b/pid"] {
            assert_eq!(http::get(a.port, path).status, 200, "{load}: {path}");
        }
        assert_eq!(http::get(a.port, "/c/pid").status, 404, "{load}");
    }
}

/// WSGIScriptAlias's `pass-authorization=On` passes credentials to that
/// script only, as under mod_wsgi (side by side).
#[test]
fn an_aliases_pass_authorization_option_applies_to_it_alone() {
    let body = format!(
        "WSGIScriptAlias /with {cases} pass-authorization=On\n\
         WSGIScriptAlias /without {cases}",
        cases = app("cases.py")
    );
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let env = |path: &str| {
            Request::get(path)
                .header("Authorization", "Basic dTpw")
                .send(a.port)
                .text()
        };
        assert!(
            env("/with/env").contains("\"HTTP_AUTHORIZATION\": \"Basic dTpw\""),
            "{load}"
        );
        let without = env("/without/env");
        assert!(without.contains("\"PATH_INFO\""), "{load}: {without}");
        assert!(!without.contains("HTTP_AUTHORIZATION"), "{load}: {without}");
    }
}

/// Apache authenticates against a Python script, as with mod_wsgi (and
/// Django's "authentication with Apache" recipe): `AuthBasicProvider wsgi`
/// asks the WSGIAuthUserScript's check_password(), `Require wsgi-group` the
/// WSGIAuthGroupScript's groups_for_user(); an exception in the script is
/// logged and denies; with `application-group=` the script runs in that
/// interpreter. The same answers under both modules, side by side.
#[test]
fn the_auth_providers_ask_the_auth_scripts() {
    let modules = "/usr/lib/apache2/modules";
    let body = format!(
        "LoadModule auth_basic_module {modules}/mod_auth_basic.so\n\
         LoadModule authn_core_module {modules}/mod_authn_core.so\n\
         LoadModule authz_user_module {modules}/mod_authz_user.so\n\
         WSGIScriptAlias /members {cases}\n\
         WSGIScriptAlias /staff {cases}\n\
         <Location /members>\nAuthType Basic\nAuthName members\nAuthBasicProvider wsgi\n\
         WSGIAuthUserScript {auth}\nRequire valid-user\n</Location>\n\
         <Location /staff>\nAuthType Basic\nAuthName staff\nAuthBasicProvider wsgi\n\
         WSGIAuthUserScript {auth}\nWSGIAuthGroupScript {auth}\nRequire wsgi-group staff\n</Location>\n\
         WSGIScriptAlias /grouped {cases}\n\
         <Location /grouped>\nAuthType Basic\nAuthName grouped\nAuthBasicProvider wsgi\n\
         WSGIAuthUserScript {auth} application-group=%{{SERVER}}\nRequire valid-user\n</Location>",
        cases = app("cases.py"),
        auth = app("auth_script.py"),
    );
    let mut answers = Vec::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let get = |path: &str, credentials: Option<&str>| {
            let mut req = Request::get(path);
            if let Some(c) = credentials {
                req = req.header("Authorization", &format!("Basic {}", base64(c)));
            }
            req.send(a.port).status
        };
        let statuses = vec![
            get("/members/pid", None),
            get("/members/pid", Some("ann:pw")),
            get("/members/pid", Some("ann:wrong")),
            get("/members/pid", Some("zed:pw")),
            get("/members/boom", Some("ann:pw")),
            get("/staff/pid", Some("ann:pw")),
            get("/staff/pid", Some("bob:pw2")),
            get("/grouped/pid", Some("where:x")),
            get("/members/pid", Some("where:x")),
        ];
        assert_eq!(
            statuses,
            [401, 200, 401, 401, 500, 200, 401, 200, 401],
            "{load}"
        );
        let env = Request::get("/members/env")
            .header("Authorization", &format!("Basic {}", base64("ann:pw")))
            .send(a.port)
            .text();
        assert!(env.contains("\"REMOTE_USER\": \"ann\""), "{load}: {env}");
        assert!(
            a.wait_log("the user database is down"),
            "{load}: {}",
            a.error_log()
        );
        answers.push(statuses);
    }
    assert_eq!(answers[0], answers[1]);
}

/// Base64 of `text`, for a Basic Authorization header.
fn base64(text: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// WSGIAccessScript: allow_access(environ, host) lets a client in (True),
/// keeps it out (False: 403), or leaves it to the other rules (None); an
/// answer of another kind is logged and denies. As mod_wsgi, side by side.
#[test]
fn the_access_script_lets_clients_in_or_not() {
    let body = format!(
        "WSGIScriptAlias / {cases}\n\
         <Location />\nWSGIAccessScript {auth}\n</Location>",
        cases = app("cases.py"),
        auth = app("auth_script.py"),
    );
    let mut answers = Vec::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let statuses: Vec<u16> = ["/open/x", "/closed/x", "/other/x", "/odd/x"]
            .iter()
            .map(|p| http::get(a.port, p).status)
            .collect();
        // The app answers 404 to these paths: it was let in.
        assert_eq!(statuses, [404, 403, 404, 403], "{load}: {}", a.error_log());
        answers.push(statuses);
    }
    assert_eq!(answers[0], answers[1]);
}

/// `AuthDigestProvider wsgi`: the WSGIAuthUserScript's get_realm_hash()
/// gives the realm hash Digest authentication checks, as with mod_wsgi
/// (side by side, with curl's Digest client).
#[test]
fn digest_authentication_asks_get_realm_hash() {
    let modules = "/usr/lib/apache2/modules";
    let body = format!(
        "LoadModule auth_digest_module {modules}/mod_auth_digest.so\n\
         LoadModule authn_core_module {modules}/mod_authn_core.so\n\
         LoadModule authz_user_module {modules}/mod_authz_user.so\n\
         WSGIScriptAlias /digest {cases}\n\
         <Location /digest>\nAuthType Digest\nAuthName members\nAuthDigestProvider wsgi\n\
         WSGIAuthUserScript {auth}\nWSGIGroupAuthoritative Off\nRequire valid-user\n</Location>",
        cases = app("cases.py"),
        auth = app("auth_script.py"),
    );
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let status = |credentials: &str| {
            let out = std::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--digest",
                    "-u",
                    credentials,
                ])
                .arg(format!("http://127.0.0.1:{}/digest/pid", a.port))
                .output()
                .expect("curl");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        assert_eq!(status("ann:pw"), "200", "{load}: {}", a.error_log());
        assert_eq!(status("ann:wrong"), "401", "{load}");
        assert_eq!(status("zed:pw"), "401", "{load}");
    }
}

/// Application groups as mod_wsgi's, side by side: two projects that each
/// import a module named `conf` from their own directory get their own by
/// default (`%{RESOURCE}`: one interpreter per virtual host and script), in
/// Apache's children and in a daemon group; `%{GLOBAL}` shares the main
/// interpreter (the first project's `conf` wins); WSGIApplicationGroup
/// names a group, or takes it from a variable; environ and `mod_wsgi` say
/// which. (The sockets go under each server's root: mod_wsgi's own
/// directory, /var/run/apache2, exists only once the system's Apache ran.)
#[test]
fn application_groups_keep_projects_apart_as_mod_wsgi() {
    let groups = repo().join("tests/apps/groups");
    let body = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess projects processes=1 threads=4\n\
         WSGIDaemonProcess together processes=1 threads=4\n\
         WSGIScriptAlias /a {g}/site_a/wsgi.py\n\
         WSGIScriptAlias /b {g}/site_b/wsgi.py\n\
         WSGIScriptAlias /da {g}/site_a/wsgi.py process-group=projects\n\
         WSGIScriptAlias /db {g}/site_b/wsgi.py process-group=projects\n\
         WSGIScriptAlias /ga {g}/site_a/wsgi.py process-group=together application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /gb {g}/site_b/wsgi.py process-group=together application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /named {g}/site_b/wsgi.py\n\
         WSGIScriptAlias /fromenv {g}/site_a/wsgi.py\n\
         <Location /named>\nWSGIApplicationGroup projects-b\n</Location>\n\
         <Location /fromenv>\nSetEnv SITE_GROUP from-env\nWSGIApplicationGroup %{{ENV:SITE_GROUP}}\n</Location>\n\
         <Directory {g}>\nRequire all granted\n</Directory>",
        g = groups.display()
    );
    let paths = [
        "/a/",
        "/b/",
        "/da/",
        "/db/",
        "/ga/",
        "/gb/",
        "/named/",
        "/fromenv/",
    ];
    let mut answers = Vec::new();
    let mut ours_log = String::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let seen: Vec<String> = paths
            .iter()
            .map(|p| {
                let text = a.text_of(p);
                // Request counts and threads differ between processes.
                let text = text.split(" hits=").next().unwrap_or("").to_string();
                text.replace(&a.port.to_string(), "PORT")
            })
            .collect();
        if ours_log.is_empty() {
            ours_log = a.error_log();
        }
        answers.push((load, seen));
    }
    let (_, ours) = &answers[0];
    // Each script loaded only in the interpreters its requests ran in:
    // in the main one only in group `together` (one daemon), never ahead
    // in Apache's children as well.
    for site in ["site_a", "site_b"] {
        let in_main = ours_log
            .lines()
            .filter(|l| l.contains(&format!("{site}/wsgi.py: loaded")))
            .filter(|l| !l.contains("in application group"))
            .count();
        assert_eq!(in_main, 1, "{site}: {ours_log}");
    }
    let expected = [
        "site=a environ='127.0.0.1:PORT|/a' module='127.0.0.1:PORT|/a'",
        "site=b environ='127.0.0.1:PORT|/b' module='127.0.0.1:PORT|/b'",
        "site=a environ='127.0.0.1:PORT|/da' module='127.0.0.1:PORT|/da'",
        "site=b environ='127.0.0.1:PORT|/db' module='127.0.0.1:PORT|/db'",
        "site=a environ='' module=''",
        "site=a environ='' module=''",
        "site=b environ='projects-b' module='projects-b'",
        "site=a environ='from-env' module='from-env'",
    ];
    for ((path, got), want) in paths.iter().zip(ours).zip(expected) {
        assert_eq!(got, want, "{path} under oxwsgi");
    }
    assert_eq!(answers[0].1, answers[1].1, "oxwsgi and mod_wsgi differ");
}

/// `WSGIImportScript ... application-group=NAME` loads into the interpreter
/// the group's requests run in (what it imported is there for them); a
/// group that depends on the request cannot be preloaded and is refused.
#[test]
fn an_import_script_loads_into_its_application_group() {
    let groups = repo().join("tests/apps/groups");
    let body = format!(
        "WSGIDaemonProcess warm processes=1 threads=2\n\
         WSGIImportScript {g}/site_b/wsgi.py process-group=warm application-group=shared\n\
         WSGIScriptAlias /a {g}/site_a/wsgi.py process-group=warm application-group=shared\n\
         <Directory {g}>\nRequire all granted\n</Directory>",
        g = groups.display()
    );
    let a = Apache::start("event", &body);
    // site_b's import put its `conf` in the group's interpreter first.
    let text = a.text_of("/a/");
    assert!(text.starts_with("site=b environ='shared'"), "{text}");
    apache::assert_refused(
        &format!(
            "WSGIDaemonProcess warm\n\
             WSGIImportScript {g}/site_b/wsgi.py process-group=warm application-group=%{{RESOURCE}}",
            g = groups.display()
        ),
        "its group is a name or %{GLOBAL}",
    );
}

/// WSGIRestrictStdin, WSGIRestrictStdout and WSGIRestrictSignal as under
/// mod_wsgi, side by side, in Apache's children and in a daemon group: by
/// default stdin reads (nothing) and stdout goes to the log, and
/// signal.signal() is ignored; restricted, the streams raise OSError on any
/// use, and unrestricted, signal.signal() is Python's own (which refuses
/// request threads).
#[test]
fn the_restrict_switches_behave_as_mod_wsgi() {
    let script = app("restrict.py");
    let aliases = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess d processes=1 threads=2\n\
         WSGIScriptAlias /e {script}\n\
         WSGIScriptAlias /d {script} process-group=d"
    );
    let restricted =
        format!("WSGIRestrictStdin On\nWSGIRestrictStdout On\nWSGIRestrictSignal Off\n{aliases}");
    let default = "stdin=ok stdout=ok signal=ok\n";
    let switched = "stdin=OSError:sys.stdin access restricted by mod_wsgi \
                    stdout=OSError:sys.stdout access restricted by mod_wsgi \
                    signal=ValueError:signal only works in main thread of the main interpreter\n";
    for load in apache::both_loads() {
        for (body, want) in [(&aliases, default), (&restricted, switched)] {
            let a = Apache::start_with("event", &load, body);
            for path in ["/e", "/d"] {
                assert_eq!(a.text_of(path), want, "{load}: {path}: {body}");
            }
        }
    }
    apache::assert_refused(
        "WSGIRestrictStdin maybe",
        "WSGIRestrictStdin must be one of: Off | On",
    );
}

/// WSGITrustedProxyHeaders and WSGITrustedProxies as under mod_wsgi, side
/// by side: from any client when no proxy is listed, only from a listed
/// proxy otherwise (an unlisted client's headers of those kinds are
/// removed, so it cannot pose as another), the client before the trusted
/// proxies at the end of X-Forwarded-For; in embedded and daemon mode.
#[test]
fn trusted_proxy_headers_behave_as_mod_wsgi() {
    let body = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess d processes=1 threads=2\n\
         WSGIScriptAlias /any {p}\n\
         WSGIScriptAlias /listed {p}\n\
         WSGIScriptAlias /local {p} process-group=d\n\
         <Location /any>\nWSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto\n\
         WSGITrustedProxyHeaders X-Forwarded-Host X-Forwarded-Port X-Script-Name\n</Location>\n\
         <Location /listed>\nWSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host\n\
         WSGITrustedProxies 10.0.0.0/8 192.0.2.1\n</Location>\n\
         <Location /local>\nWSGITrustedProxyHeaders X-Real-IP X-Forwarded-For X-Forwarded-SSL\n\
         WSGITrustedProxies 127.0.0.0/8\n</Location>",
        p = app("proxied.py")
    );
    let headers = [
        ("X-Forwarded-For", "198.51.100.7, 10.0.0.2, 127.0.0.1"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Client-IP", "7.7.7.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-SSL", "on"),
        ("X-Forwarded-Host", "www.example.com"),
        ("X-Host", "evil.example"),
        ("X-Forwarded-Port", "8443"),
        ("X-Script-Name", "/mounted"),
    ];
    let mut answers = Vec::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let seen: Vec<String> = ["/any", "/listed", "/local"]
            .iter()
            .map(|path| {
                let mut req = Request::get(path);
                for (n, v) in headers {
                    req = req.header(n, v);
                }
                let r = req.send(a.port);
                assert_eq!(r.status, 200, "{load}: {path}: {}", a.error_log());
                r.text().replace(&a.port.to_string(), "PORT")
            })
            .collect();
        answers.push(seen);
    }
    let ours = &answers[0];
    // Anyone trusted: the first address, the proxy's host, port, scheme and
    // mount; the client headers not named are gone.
    assert!(
        ours[0].contains("REMOTE_ADDR=198.51.100.7\n"),
        "{}",
        ours[0]
    );
    assert!(ours[0].contains("wsgi.url_scheme=https\n"), "{}", ours[0]);
    assert!(
        ours[0].contains("HTTP_HOST=www.example.com\n"),
        "{}",
        ours[0]
    );
    assert!(ours[0].contains("SCRIPT_NAME=/mounted\n"), "{}", ours[0]);
    assert!(ours[0].contains("HTTP_X_REAL_IP=-\n"), "{}", ours[0]);
    assert!(ours[0].contains("HTTP_X_HOST=-\n"), "{}", ours[0]);
    // 127.0.0.1 is not listed: nothing changes, the named kinds are gone.
    assert!(ours[1].contains("REMOTE_ADDR=127.0.0.1\n"), "{}", ours[1]);
    assert!(ours[1].contains("wsgi.url_scheme=http\n"), "{}", ours[1]);
    assert!(ours[1].contains("HTTP_X_FORWARDED_FOR=-\n"), "{}", ours[1]);
    assert!(ours[1].contains("HTTP_X_FORWARDED_HOST=-\n"), "{}", ours[1]);
    // Listed (the daemon gets it as rewritten): of the client headers
    // named, the last with a value wins (X-Forwarded-For), which names the
    // address before the trusted proxies at its end; X-Real-IP is gone.
    assert!(ours[2].contains("REMOTE_ADDR=10.0.0.2\n"), "{}", ours[2]);
    assert!(
        ours[2].contains("HTTP_X_FORWARDED_FOR=10.0.0.2, 127.0.0.1\n"),
        "{}",
        ours[2]
    );
    assert!(ours[2].contains("HTTP_X_REAL_IP=-\n"), "{}", ours[2]);
    assert!(ours[2].contains("wsgi.url_scheme=https\n"), "{}", ours[2]);
    // The one difference: behind a proxy that says https, oxwsgi's environ
    // has HTTPS=on as behind mod_ssl; mod_wsgi leaves HTTPS out (both say
    // wsgi.url_scheme=https).
    for (o, m) in ours.iter().zip(&answers[1]) {
        let https = o.contains("wsgi.url_scheme=https\n");
        assert_eq!(o.contains("HTTPS=on\n"), https, "{o}");
        assert_eq!(
            &o.replace("HTTPS=on\n", "HTTPS=-\n"),
            m,
            "oxwsgi and mod_wsgi differ"
        );
    }
    apache::assert_refused(
        "WSGITrustedProxies example.com",
        "Unable to parse trusted proxy IP address/subnet of \"example.com\".",
    );
}

/// mod_wsgi's remaining directives: those whose choice is how oxwsgi
/// always works are accepted where mod_wsgi takes them (both modules run
/// the same configuration, side by side); WSGICaseSensitivity Off names
/// %{RESOURCE} groups by the mount in lower case under both; those that
/// cannot apply are refused, naming the reason.
#[test]
fn the_remaining_mod_wsgi_directives_are_taken_or_refused_by_name() {
    let groups = repo().join("tests/apps/groups");
    let body = format!(
        "WSGIAcceptMutex default\nWSGILazyInitialization On\nWSGIDestroyInterpreter On\n\
         WSGISocketRotation Off\nWSGIVerboseDebugging Off\nWSGIServerMetrics On\n\
         WSGICaseSensitivity Off\nWSGIPassApacheRequest Off\n\
         WSGIScriptAlias /Mixed {g}/site_a/wsgi.py\n\
         <Location /Mixed>\nWSGIEnableSendfile On\nWSGIIgnoreActivity On\n</Location>\n\
         <Directory {g}>\nRequire all granted\n</Directory>",
        g = groups.display()
    );
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let text = a.text_of("/Mixed/");
        let want = format!("site=a environ='127.0.0.1:{}|/mixed'", a.port);
        assert!(text.starts_with(&want), "{load}: {text}");
    }
    for (line, reason) in [
        ("WSGIPassApacheRequest On", "no Apache request object"),
        ("WSGIPythonEggs /tmp/eggs", "PYTHON_EGG_CACHE"),
        (
            "WSGINewRelicConfigFile /etc/newrelic.ini",
            "initialise it in the WSGI script",
        ),
        ("WSGINewRelicEnvironment production", "New Relic"),
        // mod_wsgi 6's (not in Debian's mod_wsgi).
        (
            "WSGIPerInterpreterGIL On",
            "application groups share the GIL",
        ),
        (
            "<WSGIInterpreterOptions application-group=a>\n</WSGIInterpreterOptions>",
            "application groups share the GIL",
        ),
        ("WSGIFreeThreading On", "built with the GIL"),
        ("WSGITelemetryService /run/telemetry.sock", "telemetry"),
        ("WSGISlowRequests 5", "telemetry"),
        (
            "WSGISwitchInterval 0",
            "expected a positive number of seconds",
        ),
    ] {
        apache::assert_refused(line, reason);
    }
    let (ok, out) =
        apache::check("WSGIPerInterpreterGIL Off\nWSGIFreeThreading Off\nWSGISwitchInterval 0.002");
    assert!(ok, "{out}");
}

/// WSGIDispatchScript as under mod_wsgi, side by side: its
/// `process_group(environ)`, `application_group(environ)` and
/// `callable_object(environ)` choose where each request runs (`None`
/// leaves the configuration's choice), an exception is logged and answers
/// 500; WSGIRestrictProcess keeps a location to the groups it lists,
/// whoever chose the group.
#[test]
fn the_dispatch_script_chooses_where_requests_run_as_mod_wsgi() {
    let routing = app("routing.py");
    let body = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess d processes=1 threads=2\n\
         WSGIDaemonProcess e processes=1 threads=2\n\
         WSGIScriptAlias /app {routing}\n\
         WSGIDispatchScript {routing}\n\
         <Location /app/limited>\nWSGIRestrictProcess %{{GLOBAL}} d\n</Location>\n\
         <Location /app/daemons>\nWSGIProcessGroup e\nWSGIRestrictProcess d e\n</Location>"
    );
    let paths = [
        "/app/x",
        "/app/x?pg=d",
        "/app/x?ag=shared",
        "/app/x?ag=%25%7BSERVER%7D",
        "/app/x?callable=other",
        "/app/x?pg=e&ag=%25%7BGLOBAL%7D&callable=other",
        "/app/x?fail=1",
        "/app/limited/x",
        "/app/limited/x?pg=d",
        "/app/limited/x?pg=e",
        "/app/daemons/x",
        "/app/daemons/x?pg=%25%7BGLOBAL%7D",
    ];
    let mut answers = Vec::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let seen: Vec<String> = paths
            .iter()
            .map(|p| {
                let r = http::get(a.port, p);
                let text = r.text().replace(&a.port.to_string(), "PORT");
                format!(
                    "{} {}",
                    r.status,
                    if r.status == 200 { text } else { String::new() }
                )
            })
            .collect();
        assert!(
            a.wait_log("the dispatch script failed on purpose"),
            "{load}: {}",
            a.error_log()
        );
        assert!(
            a.wait_log(
                "cannot be accessed by this WSGI application as not a member of allowed groups"
            ),
            "{load}: {}",
            a.error_log()
        );
        answers.push((load, seen));
    }
    let ours = &answers[0].1;
    assert_eq!(
        ours[..2],
        [
            "200 application pg= ag=127.0.0.1:PORT|/app method=GET file=routing.py\n",
            "200 application pg=d ag=127.0.0.1:PORT|/app method=GET file=routing.py\n",
        ],
        "{answers:#?}"
    );
    assert_eq!(ours[6], "500 ", "{answers:#?}");
    assert_eq!(ours[9], "500 ", "{answers:#?}");
    assert_eq!(answers[0].1, answers[1].1, "{answers:#?}");
    apache::assert_refused(
        &format!("WSGIDispatchScript {routing} process-group=d"),
        "Invalid option to WSGI dispatch script definition.",
    );
    apache::assert_refused(
        "WSGIDispatchScript routing.py",
        "routing.py: the dispatch script's absolute path is needed",
    );
}

/// WSGIHandlerScript as under mod_wsgi, side by side: a handler name the
/// configuration defines (here by SetHandler) is served by the script's
/// `handle_request`, with SCRIPT_FILENAME the file asked for, in the
/// groups its options name.
#[test]
fn a_handler_script_serves_the_files_of_its_handler_as_mod_wsgi() {
    let routing = app("routing.py");
    let pages = repo().join("tests/apps/handled");
    let body = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess d processes=1 threads=2\n\
         WSGIHandlerScript show {routing}\n\
         WSGIHandlerScript show-in-d {routing} process-group=d application-group=pages\n\
         Alias /files {pages}\n\
         Alias /daemon {pages}\n\
         <Location /files>\nSetHandler show\n</Location>\n\
         <Location /daemon>\nSetHandler show-in-d\n</Location>",
        pages = pages.display()
    );
    let mut answers = Vec::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let seen: Vec<String> = ["/files/page.txt", "/daemon/page.txt"]
            .iter()
            .map(|p| a.text_of(p).replace(&a.port.to_string(), "PORT"))
            .collect();
        answers.push((load, seen));
    }
    assert_eq!(
        answers[0].1,
        [
            "handler pg= ag=127.0.0.1:PORT|/files/page.txt method=GET file=page.txt\nthe page itself\n",
            "handler pg=d ag=pages method=GET file=page.txt\nthe page itself\n",
        ],
        "{answers:#?}"
    );
    assert_eq!(answers[0].1, answers[1].1, "{answers:#?}");
    apache::assert_refused(
        &format!("WSGIHandlerScript show {routing} callable-object=x"),
        "Invalid option to WSGI handler script definition.",
    );
}

/// WSGIMapHEADToGET as under mod_wsgi, side by side: with Auto an app sees
/// GET for a HEAD only where an output filter that may change the body
/// runs (here DEFLATE), with On always, with Off never. Unset, mod_wsgi
/// maps nothing (its documentation says Auto, its code starts at Off), and
/// neither does oxwsgi.
#[test]
fn head_is_mapped_to_get_as_mod_wsgi() {
    let routing = app("routing.py");
    let body = format!(
        "LoadModule deflate_module /usr/lib/apache2/modules/mod_deflate.so\n\
         LoadModule filter_module /usr/lib/apache2/modules/mod_filter.so\n\
         WSGIScriptAlias /auto {routing}\n\
         WSGIScriptAlias /filtered {routing}\n\
         WSGIScriptAlias /on {routing}\n\
         WSGIScriptAlias /off {routing}\n\
         WSGIScriptAlias /auto-plain {routing}\n\
         WSGIScriptAlias /auto-filtered {routing}\n\
         <Location /filtered>\nSetOutputFilter DEFLATE\n</Location>\n\
         <Location /auto-plain>\nWSGIMapHEADToGET Auto\n</Location>\n\
         <Location /auto-filtered>\nSetOutputFilter DEFLATE\nWSGIMapHEADToGET auto\n</Location>\n\
         <Location /on>\nWSGIMapHEADToGET On\n</Location>\n\
         <Location /off>\nSetOutputFilter DEFLATE\nWSGIMapHEADToGET Off\n</Location>"
    );
    let mut answers = Vec::new();
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let seen: Vec<String> = [
            "/auto",
            "/filtered",
            "/on",
            "/off",
            "/auto-plain",
            "/auto-filtered",
        ]
        .iter()
        .map(|p| {
            let r = Request::get(p).method("HEAD").send(a.port);
            assert_eq!(r.status, 200, "{load}: {p}: {}", a.error_log());
            r.header("X-Method").unwrap_or_default().to_string()
        })
        .collect();
        answers.push((load, seen));
    }
    assert_eq!(
        answers[0].1,
        ["HEAD", "HEAD", "GET", "HEAD", "HEAD", "GET"],
        "{answers:#?}"
    );
    assert_eq!(answers[0].1, answers[1].1, "{answers:#?}");
    apache::assert_refused(
        "WSGIMapHEADToGET sometimes",
        "WSGIMapHEADToGET must be one of: Off | On | Auto",
    );
}

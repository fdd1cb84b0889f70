//! Process groups as a trust boundary, tried as an attacker on the same
//! machine would (issue #22): a process running as the server's worker
//! user, or as another user, that talks to a group's socket itself; a user
//! who puts a socket of their own where a group listens; a configuration
//! that would run a group as root; a client's `Proxy:` header (httpoxy).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxwsgi_e2e::apache::{self, Apache};
use oxwsgi_e2e::attack::{self, Reply};
use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::nginx::{self, Config, Nginx};
use oxwsgi_e2e::{ServerProcess, app, set_mode, temp_dir, wait_until};

/// Sends forged heads to the group listening at `socket`: as `server_user`
/// (who may connect) without a token and with a made-up one, and as a user
/// of nobody's (kept out by the socket's mode, then, with the mode opened,
/// by the daemon). Nothing of them may run; the server must log each.
fn forged_requests_run_nothing(server: &ServerProcess, socket: &Path, server_user: &str) {
    let dir = temp_dir("attacker");
    let marker = dir.join("ran");
    let script = attack::marker_script(&dir, &marker);
    let forged = attack::forged_head(&script);
    let guessed = [attack::hello(&[0x5a; 32]), forged.clone()].concat();
    for (what, bytes) in [("no token", &forged), ("a guessed token", &guessed)] {
        let reply = attack::send_as(server_user, socket, bytes);
        // Taken (the server's user may connect), then closed unanswered.
        assert_eq!(
            reply,
            Reply::Closed(attack::accepted()),
            "as {server_user}, {what}: {}",
            server.error_log()
        );
    }
    assert!(
        server.wait_log("did not introduce itself with the group's token"),
        "{}",
        server.error_log()
    );
    // Another user: the socket (0600, the workers') keeps them out...
    let reply = attack::send_as("4242", socket, &forged);
    assert!(matches!(reply, Reply::Refused(_)), "{reply:?}");
    // ...and where it would not (a socket opened up by hand), the daemon
    // does, by the peer's credentials.
    set_mode(socket, 0o666);
    let reply = attack::send_as("4242", socket, &guessed);
    set_mode(socket, 0o600);
    assert_eq!(reply, Reply::Closed(Vec::new()), "not even taken");
    assert!(
        server.wait_log("running as uid 4242 (not one of the server's users)"),
        "{}",
        server.error_log()
    );
    assert!(
        !marker.exists(),
        "the attacker's script ran: {:?}",
        std::fs::read_to_string(&marker)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn nginx_group(extra: &str) -> Nginx {
    Nginx::start(nginx::cases_in_group(&format!(
        "processes=1 threads=2 user=www-data {extra}"
    )))
}

#[test]
fn nginx_groups_serve_only_nginx() {
    let n = nginx_group("");
    let me = http::get(n.port, "/whoami");
    assert_eq!(me.status, 200);
    // Workers run as nobody (nginx's default user, the master being root).
    let socket = n.dir.join("nginx-oxwsgi/site.sock");
    forged_requests_run_nothing(&n, &socket, "nobody");
    assert_eq!(http::get(n.port, "/whoami").status, 200, "still serving");
}

/// The socket directory is the server's, and whoever holds the socket
/// must be the server: a socket another user put at the group's path gets
/// nothing (not a request, not a cookie), and requests get 503.
#[test]
fn nginx_sends_nothing_to_a_socket_it_did_not_make() {
    let n = nginx_group("connect_timeout=2s");
    // No request before: a worker's pooled connection to the real daemon
    // would still be used.
    n.expect_logged(&["daemon process"]);
    let sockets = n.dir.join("nginx-oxwsgi");
    let meta = std::fs::symlink_metadata(&sockets).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o755));
    // A misconfigured directory lets another user in: they replace the
    // socket with theirs, and record what arrives.
    set_mode(&sockets, 0o777);
    let socket = sockets.join("site.sock");
    std::fs::remove_file(&socket).unwrap();
    let got = n.dir.join("squatter-got");
    let mut squatter = attack::as_user("4242", "/usr/bin/python3")
        .arg("-c")
        .arg(
            "import os, socket, sys\n\
             s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n\
             os.chmod(sys.argv[1], 0o777)\n\
             out = open(sys.argv[2], 'ab', buffering=0)\n\
             while True:\n\
             \x20   c, _ = s.accept(); c.settimeout(1)\n\
             \x20   try:\n\
             \x20       while (b := c.recv(65536)): out.write(b)\n\
             \x20   except OSError: pass\n",
        )
        .arg(&socket)
        .arg(&got)
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || socket.exists()));
    let t = Instant::now();
    let resp = Request::get("/whoami")
        .header("Cookie", "session=secret")
        .send(n.port);
    let took = t.elapsed();
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert_eq!(resp.status, 503, "{}", n.error_log());
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(
        std::fs::read(&got).unwrap_or_default().is_empty(),
        "the squatter received the request"
    );
    n.expect_logged(&["running as uid 4242, not by the server"]);
}

fn apache_group() -> Apache {
    Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site processes=1 threads=2 user=nobody\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /cases {}",
            app("cases.py")
        ),
    )
}

/// The socket of Apache's group `name`: in the server's own directory
/// under its runtime directory.
fn apache_socket(a: &Apache, name: &str) -> PathBuf {
    let dir = a.dir.join("oxwsgi");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(&format!(".{name}.sock")))
        .unwrap_or_else(|| panic!("no socket of group {name} in {}", dir.display()))
}

#[test]
fn apache_groups_serve_only_apache() {
    let a = apache_group();
    assert_eq!(http::get(a.port, "/cases/whoami").status, 200);
    let socket = apache_socket(&a, "site");
    forged_requests_run_nothing(&a, &socket, "www-data");
    assert_eq!(http::get(a.port, "/cases/whoami").status, 200);
}

/// mod_wsgi refuses a daemon that would run as root; so do both servers,
/// when the configuration is checked.
#[test]
fn no_group_runs_as_root() {
    for user in ["root", "#0"] {
        let (ok, out) = nginx::check(
            &Config::new("location / { return 200; }")
                .http(&format!("wsgi_daemon_process site user={user};")),
        );
        assert!(!ok && out.contains("never run as root"), "{out}");
        apache::assert_refused(
            &format!("WSGIDaemonProcess site user={user}"),
            "never run as root",
        );
    }
}

/// httpoxy (CVE-2016-5385): a client's `Proxy:` header never becomes
/// `HTTP_PROXY`, embedded or in a group, on either server. Proxy
/// credentials follow the Authorization rules: Apache passes neither
/// without WSGIPassAuthorization On; nginx passes both (it has no such
/// switch; README).
#[test]
fn the_proxy_header_never_reaches_the_app() {
    let env_of = |port: u16, path: &str| {
        Request::get(path)
            .header("Proxy", "http://attacker.example:8080")
            .header("Proxy-Authorization", "Basic c2VjcmV0")
            .header("Authorization", "Basic b3RoZXI=")
            .send(port)
            .text()
    };
    let embedded = Nginx::start(Config::new(&format!(
        "location / {{ wsgi_app {}; }}",
        app("cases.py")
    )));
    let group = nginx_group("");
    for (what, env) in [
        ("nginx embedded", env_of(embedded.port, "/env")),
        ("nginx group", env_of(group.port, "/env")),
    ] {
        assert!(!env.contains("HTTP_PROXY\""), "{what}: {env}");
        assert!(!env.contains("attacker"), "{what}: {env}");
        assert!(
            env.contains("\"HTTP_PROXY_AUTHORIZATION\": \"Basic c2VjcmV0\""),
            "{what}: {env}"
        );
        assert!(env.contains("\"HTTP_AUTHORIZATION\""), "{what}: {env}");
    }
    let apache_embedded = Apache::start(
        "event",
        &format!("WSGIScriptAlias /cases {}", app("cases.py")),
    );
    let apache_daemon = apache_group();
    for (what, env) in [
        (
            "Apache embedded",
            env_of(apache_embedded.port, "/cases/env"),
        ),
        ("Apache daemon", env_of(apache_daemon.port, "/cases/env")),
    ] {
        assert!(env.contains("\"PATH_INFO\": \"/env\""), "{what}: {env}");
        for key in [
            "HTTP_PROXY\"",
            "HTTP_PROXY_AUTHORIZATION",
            "HTTP_AUTHORIZATION",
        ] {
            assert!(!env.contains(key), "{what}: {key} in {env}");
        }
    }
}

/// The bytes of an RSA key's first prime as OpenSSL keeps them in memory
/// (little-endian words) and as the key file has them (big-endian): 24
/// bytes of each end, enough to be found nowhere by chance.
fn key_needles(key: &Path) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-text", "-in"])
        .arg(key)
        .output()
        .expect("openssl rsa");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex: String = text
        .split("prime1:")
        .nth(1)
        .expect("a prime in the key")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .flat_map(|l| l.trim().split(':'))
        .collect();
    let mut be: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    while be.first() == Some(&0) {
        be.remove(0);
    }
    let le: Vec<u8> = be.iter().rev().copied().collect();
    vec![be[..24].to_vec(), le[..24].to_vec()]
}

/// Whether any of `needles` is in the memory of process `pid` (read as
/// root through /proc).
fn memory_holds(pid: i32, needles: &[Vec<u8>]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, perms) = (f.next().unwrap(), f.next().unwrap());
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if needles
            .iter()
            .any(|n| buf.windows(n.len()).any(|w| w == n.as_slice()))
        {
            return true;
        }
    }
    false
}

/// A group that runs as a user of its own never holds the server's TLS
/// key: its daemons are a freshly executed interpreter, not a copy of
/// nginx's master. The scan is shown to work on the master and on a group
/// that runs as nginx's own user on the embedded Python (a fork); a group
/// of its own user is refused that mode by `nginx -t`.
#[test]
fn a_group_of_its_own_user_never_holds_the_servers_tls_key() {
    let dir = temp_dir("tls-key");
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    let needles = key_needles(&key);
    let mut config = Config::new(&format!(
        "ssl_certificate {};\nssl_certificate_key {};\n\
         location /own {{ wsgi_process_group own; wsgi_app {app}; }}\n\
         location /forked {{ wsgi_process_group forked; wsgi_app {app}; }}",
        cert.display(),
        key.display(),
        app = app("cases.py")
    ))
    .http(
        "wsgi_daemon_process own processes=1 threads=1 user=www-data;\n\
         wsgi_daemon_process forked processes=1 threads=1 python_executable=off;",
    );
    config.listen = "ssl".into();
    let n = Nginx::start(config);
    assert!(wait_until(Duration::from_secs(10), || {
        n.group_daemons("own").len() == 1 && n.group_daemons("forked").len() == 1
    }));
    n.expect_logged(&["group own: daemon process", "group forked: daemon process"]);
    assert!(
        memory_holds(n.master_pid(), &needles),
        "the scan does not find the key in nginx's master"
    );
    let forked = n.group_daemons("forked")[0];
    assert!(
        memory_holds(forked, &needles),
        "the scan does not find the key in a forked daemon"
    );
    let own = n.group_daemons("own")[0];
    assert!(
        !memory_holds(own, &needles),
        "the daemon of a group with its own user holds the TLS key"
    );
    drop(n);
    let (ok, out) = nginx::check(
        &Config::new("location / { return 200; }")
            .http("wsgi_daemon_process own user=www-data python_executable=off;"),
    );
    assert!(!ok && out.contains("never a copy of the server"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The frames an app writes itself on its daemon's connection (app code
/// of another user can) are checked by the server: a split header, a
/// hop-by-hop header, a bad status or error page, an unknown frame: 502
/// and a line naming the group; a body short of its Content-Length: a cut
/// response. The server serves on. Each kind on a fresh server, so the
/// app's one connection is its request's.
fn garbage_is_refused<S: std::ops::Deref<Target = ServerProcess>>(
    start: impl Fn() -> (S, u16),
    prefix: &str,
) {
    for (kind, logged) in [
        ("split", "header injection"),
        ("hop", "is a hop-by-hop header"),
        ("status", "got \"0 OK\""),
        ("error0", "an error page of status 0"),
        ("unknown", "unknown frame kind 99"),
    ] {
        let (server, port) = start();
        let r = http::get(port, &format!("{prefix}?{kind}"));
        assert_eq!(r.status, 502, "{kind}: {}", server.error_log());
        assert!(r.header("Set-Cookie").is_none(), "{kind}");
        assert!(r.header("X-A").is_none(), "{kind}");
        server.expect_logged(&["group site: the daemon's connection failed: ", logged]);
        assert_eq!(
            http::get(port, &format!("{prefix}?fine")).text(),
            "fine",
            "{kind}"
        );
    }
    let (server, port) = start();
    let raw = Request::get(&format!("{prefix}?short")).to_bytes(port);
    let cut = http::send(port, &raw, false);
    assert!(
        cut.as_ref().map_or(true, |r| !r.complete),
        "a short body must not look complete: {cut:?}"
    );
    server.expect_logged(&["the response ended 90 bytes short of its Content-Length of 100"]);
}

#[test]
fn a_daemon_answering_garbage_gets_502_on_both_servers() {
    garbage_is_refused(
        || {
            let n = Nginx::start(
                Config::new(&format!(
                    "location / {{ wsgi_process_group site; wsgi_app {}; }}",
                    app("hostile_daemon.py")
                ))
                .http("wsgi_daemon_process site processes=1 threads=1;"),
            );
            let port = n.port;
            (n, port)
        },
        "/",
    );
    garbage_is_refused(
        || {
            let a = Apache::start(
                "event",
                &format!(
                    "WSGIDaemonProcess site processes=1 threads=1\n\
                     WSGIProcessGroup site\n\
                     WSGIScriptAlias /h {}",
                    app("hostile_daemon.py")
                ),
            );
            let port = a.port;
            (a, port)
        },
        "/h",
    );
}

/// The LoadModule lines of oxwsgi and of Debian's mod_wsgi, by name: the
/// same test runs under both.
fn both_modules() -> [(&'static str, String); 2] {
    let [oxwsgi, mod_wsgi] = apache::both_loads();
    [("oxwsgi", oxwsgi), ("mod_wsgi", mod_wsgi)]
}

/// Two virtual hosts on one Apache, as a hosting setup has them: `a.test`
/// runs its site in its own group (`siteA`, as nobody); `b.test` is a
/// tenant's, whose directory allows `.htaccess` files with FileInfo (what
/// mod_rewrite needs). `tenant_dir` extra lines go into the tenant's
/// `<Directory>` (the operator's), `b_lines` into its virtual host.
fn hosting(load: &str, tenant: &Path, tenant_dir: &str, b_lines: &str) -> Apache {
    Apache::start_with(
        "event",
        load,
        &format!(
            "LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so\n\
             TypesConfig /etc/mime.types\n\
             WSGISocketPrefix wsgi\n\
             <VirtualHost 127.0.0.1:{{port}}>\n\
                 ServerName a.test\n\
                 WSGIDaemonProcess siteA processes=1 threads=2 user=nobody home=/tmp\n\
                 WSGIScriptAlias /site {cases} process-group=siteA\n\
             </VirtualHost>\n\
             <VirtualHost 127.0.0.1:{{port}}>\n\
                 ServerName b.test\n\
                 DocumentRoot {tenant}\n\
                 {b_lines}\n\
                 <Directory {tenant}>\n\
                     AllowOverride FileInfo AuthConfig\n\
                     Require all granted\n\
                     {tenant_dir}\n\
                 </Directory>\n\
             </VirtualHost>",
            cases = app("cases.py"),
            tenant = tenant.display(),
        ),
    )
}

fn get_host(port: u16, host: &str, path: &str) -> http::Response {
    Request::get(path).header("Host", host).send(port)
}

/// A tenant's directory with the attacker's script and `htaccess`.
fn tenant_dir(htaccess: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir("tenant");
    let marker = dir.join("ran");
    attack::marker_script(&dir, &marker);
    std::fs::write(dir.join(".htaccess"), htaccess).unwrap();
    (dir, marker)
}

/// A tenant's `.htaccess` cannot move its scripts into another site's
/// group: WSGIProcessGroup is not a directive for `.htaccess` (as in
/// mod_wsgi, side by side), and a group defined in another virtual host
/// does not serve this one even when the server's own configuration names
/// it there (mod_wsgi's rule and wording).
#[test]
fn a_tenant_stays_out_of_another_sites_group() {
    for (name, load) in both_modules() {
        let (dir, marker) = tenant_dir("AddHandler wsgi-script .py\nWSGIProcessGroup siteA\n");
        let a = hosting(&load, &dir, "Options +ExecCGI", "");
        assert_eq!(
            get_host(a.port, "a.test", "/site/whoami").status,
            200,
            "{name}"
        );
        let r = get_host(a.port, "b.test", "/attacker.py");
        assert_eq!(r.status, 500, "{name}: {}", a.error_log());
        a.expect_logged(&["WSGIProcessGroup not allowed here"]);
        assert!(!marker.exists(), "{name}: the tenant's script ran");
        drop(a);
        // The operator names the group in the tenant's <Directory>.
        std::fs::write(dir.join(".htaccess"), "AddHandler wsgi-script .py\n").unwrap();
        let a = hosting(&load, &dir, "Options +ExecCGI\nWSGIProcessGroup siteA", "");
        let r = get_host(a.port, "b.test", "/attacker.py");
        assert_eq!(r.status, 500, "{name}: {}", a.error_log());
        a.expect_logged(&[
            "Daemon process called 'siteA' cannot be accessed by this WSGI application",
        ]);
        assert!(!marker.exists(), "{name}: the tenant's script ran in siteA");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A handler-mapped script (AddHandler in `.htaccess`) runs only where the
/// server's configuration has `Options ExecCGI`, as with mod_wsgi.
#[test]
fn a_handler_mapped_script_needs_execcgi() {
    for (name, load) in both_modules() {
        let (dir, marker) = tenant_dir("AddHandler wsgi-script .py\n");
        let a = hosting(&load, &dir, "Options -ExecCGI", "");
        let r = get_host(a.port, "b.test", "/attacker.py");
        assert_eq!(r.status, 403, "{name}: {}", a.error_log());
        a.expect_logged(&["Options ExecCGI is off in this directory"]);
        assert!(!marker.exists(), "{name}");
        drop(a);
        let a = hosting(&load, &dir, "Options +ExecCGI", "");
        let r = get_host(a.port, "b.test", "/attacker.py");
        assert_eq!((r.status, r.text()), (200, "pwned".into()), "{name}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// What mod_wsgi lets a tenant set in `.htaccess` (FileInfo) applies to
/// that directory only: WSGIPassAuthorization On there passes credentials
/// to the tenant's app, and not to the other site's.
#[test]
fn pass_authorization_from_htaccess_stays_in_its_directory() {
    for (name, load) in both_modules() {
        let dir = temp_dir("tenant-auth");
        std::fs::copy(app("cases.py"), dir.join("cases.py")).unwrap();
        std::fs::write(
            dir.join(".htaccess"),
            "AddHandler wsgi-script .py\nWSGIPassAuthorization On\n",
        )
        .unwrap();
        let a = hosting(&load, &dir, "Options +ExecCGI", "");
        let env = |host: &str, path: &str| {
            Request::get(path)
                .header("Host", host)
                .header("Authorization", "Basic dGVuYW50OnB3")
                .send(a.port)
                .text()
        };
        let tenant = env("b.test", "/cases.py/env");
        assert!(tenant.contains("HTTP_AUTHORIZATION"), "{name}: {tenant}");
        let site = env("a.test", "/site/env");
        assert!(site.contains("\"PATH_INFO\""), "{name}: {site}");
        assert!(!site.contains("HTTP_AUTHORIZATION"), "{name}: {site}");
        drop(a);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The status page lists every group's requests in flight: a tenant's
/// `.htaccess` cannot put it in its directory.
#[test]
fn a_tenant_cannot_serve_the_status_page() {
    let (dir, _) = tenant_dir("SetHandler wsgi-status\n");
    let [(_, oxwsgi), _] = both_modules();
    let a = hosting(&oxwsgi, &dir, "", "");
    let r = get_host(a.port, "b.test", "/anything");
    assert_eq!(r.status, 403, "{}", a.error_log());
    a.expect_logged(&["wsgi-status is not served where .htaccess files may set handlers"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A group's daemons map only their own group's metrics: one group's
/// requests in flight (their paths, clients, stacks) are not in another
/// group's memory, while the status page, in nginx's worker, shows both.
#[test]
fn a_group_cannot_see_another_groups_requests_in_flight() {
    let n = Nginx::start(
        Config::new(&format!(
            "location /a/ {{ wsgi_process_group a; wsgi_app {app}; wsgi_script_name /a; }}\n\
             location /b-Zq8xJpW3/ {{ wsgi_process_group b; wsgi_app {app}; wsgi_script_name /b-Zq8xJpW3; }}\n\
             location = /status {{ wsgi_status; allow 127.0.0.1; deny all; }}",
            app = app("cases.py")
        ))
        .http(
            "wsgi_daemon_process a processes=1 threads=2 user=www-data;\n\
             wsgi_daemon_process b processes=1 threads=2 user=www-data;",
        ),
    );
    assert_eq!(http::get(n.port, "/a/whoami").status, 200);
    let secret = "/b-Zq8xJpW3/sleep?ms=3000";
    let port = n.port;
    let slow = std::thread::spawn(move || http::get(port, secret).status);
    let needle = vec![b"/b-Zq8xJpW3/sleep".to_vec()];
    assert!(
        wait_until(Duration::from_secs(2), || http::get(
            n.port,
            "/status?format=json"
        )
        .text()
        .contains("Zq8xJpW3")),
        "the status page shows group b's request"
    );
    let worker = oxwsgi_e2e::children_of(n.master_pid())
        .into_iter()
        .find(|p| {
            !std::fs::read_to_string(format!("/proc/{p}/comm"))
                .unwrap_or_default()
                .contains("oxwsgi")
        })
        .unwrap();
    assert!(
        memory_holds(worker, &needle),
        "the scan finds it in nginx's worker"
    );
    let a = n.group_daemons("a");
    assert_eq!(a.len(), 1);
    assert!(
        !memory_holds(a[0], &needle),
        "group a's daemon can read group b's request in flight"
    );
    assert_eq!(slow.join().unwrap(), 200);
}

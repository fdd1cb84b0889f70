//! Apache's daemon mode (WSGIDaemonProcess / WSGIProcessGroup) end to end:
//! the apps run in the group's processes (not Apache's children), as
//! Apache's User, under the group's name in `ps`; the shared behaviour and
//! mistake tables give what embedded mode gives; a killed daemon is
//! replaced; stopping Apache leaves no daemon behind.

use std::time::{Duration, Instant};

use oxwsgi_e2e::apache::{self, Apache};
use oxwsgi_e2e::http;
use oxwsgi_e2e::{app, wait_until, wire};

fn daemon_site(mpm: &str) -> Apache {
    Apache::start(
        mpm,
        &format!(
            "WSGIDaemonProcess site processes=2 threads=4 display-name=%{{GROUP}}\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /cases {}",
            app("cases.py")
        ),
    )
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn daemons(a: &Apache) -> Vec<i32> {
    oxwsgi_e2e::children_of(a.pid())
        .into_iter()
        .filter(|p| comm(*p) == "(wsgi:site)")
        .collect()
}

fn served_by(a: &Apache) -> i32 {
    http::get(a.port, "/cases/pid").text().parse().unwrap()
}

#[test]
fn apps_run_in_the_groups_processes_under_every_mpm() {
    for mpm in ["event", "prefork"] {
        let a = daemon_site(mpm);
        let pid = served_by(&a);
        assert!(
            daemons(&a).contains(&pid),
            "{mpm}: {pid} is not a daemon of the group"
        );
        assert!(
            !a.children()
                .iter()
                .any(|c| *c == pid && comm(*c) != "(wsgi:site)")
        );
        // The other daemon may still be starting its Python (an exec'd
        // one takes its name once its interpreter runs): wait for it.
        assert!(
            wait_until(Duration::from_secs(10), || daemons(&a).len() == 2),
            "{mpm}: processes=2, found {:?}",
            daemons(&a)
        );
        let www_data = uid_of(
            a.children()
                .into_iter()
                .find(|c| comm(*c) != "(wsgi:site)")
                .unwrap(),
        );
        assert_eq!(
            uid_of(pid),
            www_data,
            "{mpm}: the daemons run as Apache's User"
        );
        // The project's shared behaviour table, through the daemons.
        wire::no_body_leaks(a.port, "/cases");
        wire::latin1_headers(a.port, "/cases");
        wire::length_promises(a.port, "/cases");
        wire::each_chunk_leaves_at_once(a.port, "/cases");
        wire::streaming_while_reading_and_logging(a.port, "/cases", || a.error_log());
        oxwsgi_e2e::cases::mistakes_answer_500_and_are_logged(&a, a.port, "/cases", mpm);
    }
}

#[test]
fn a_killed_daemon_is_replaced_and_stopping_apache_leaves_none() {
    let a = daemon_site("event");
    let victim = served_by(&a);
    // SAFETY: signalling a daemon of the Apache this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let t = Instant::now();
    assert!(wait_until(Duration::from_secs(5), || {
        let d = daemons(&a);
        d.len() == 2 && !d.contains(&victim)
    }));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    for _ in 0..20 {
        assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
    }
    assert!(a.wait_log("was killed by signal 9; starting another"));
    let all = daemons(&a);
    // SAFETY: signalling the Apache parent this test started.
    unsafe { libc::kill(a.pid(), libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(15), || all
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())),
        "a daemon outlived Apache"
    );
}

#[test]
fn daemon_options_are_taken_or_refused_by_name() {
    let (ok, out) = apache::check(
        "WSGIDaemonProcess site processes=2 threads=15 user=www-data group=www-data display-name=%{GROUP} umask=0007",
    );
    assert!(ok, "{out}");
    let (ok, out) = apache::check(
        "WSGIDaemonProcess site processes=2 threads=4 maximum-requests=1000 \
         request-timeout=60 queue-timeout=45 inactivity-timeout=300 restart-interval=3600 \
         graceful-timeout=15 eviction-timeout=5 shutdown-timeout=5 deadlock-timeout=60 \
         connect-timeout=15 socket-timeout=60 listen-backlog=100 cpu-time-limit=600 \
         memory-limit=1073741824 virtual-memory-limit=4g stack-size=524288 cpu-priority=5 \
         header-buffer-size=32768 response-buffer-size=65536 send-buffer-size=65536 \
         receive-buffer-size=65536 supplementary-groups=www-data python-eggs=/tmp \
         socket-user=www-data server-metrics=On startup-timeout=10 script-user=www-data \
         response-socket-timeout=30 switch-interval=0.002 interrupt-timeout=2 \
         response-flush-delay=5",
    );
    assert!(ok, "{out}");
    apache::assert_refused(
        "WSGIDaemonProcess site newrelic-config-file=/etc/newrelic.ini",
        "newrelic-config-file: refused: oxwsgi does not start the New Relic agent",
    );
    apache::assert_refused(
        "WSGIDaemonProcess site switch-interval=soon",
        "switch-interval=soon: expected a positive number of seconds",
    );
    apache::assert_refused(
        "WSGIDaemonProcess site chroot=/srv/jail",
        "option chroot is not supported by oxwsgi yet",
    );
    apache::assert_refused(
        "WSGIDaemonProcess site header-buffer-size=10",
        "header-buffer-size=10: must be 8192 bytes or more",
    );
    apache::assert_refused(
        "WSGIDaemonProcess site colour=blue",
        "unknown option colour",
    );
    apache::assert_refused(
        "WSGIDaemonProcess a\nWSGIDaemonProcess a",
        "process group a is defined twice",
    );
}

/// A graceful restart replaces the group; requests arriving meanwhile wait
/// for the new one instead of failing.
#[test]
fn graceful_restarts_under_load_fail_no_request() {
    let a = daemon_site("event");
    let port = a.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match http::send(
                        port,
                        &http::Request::get("/cases/sleep?ms=2").to_bytes(port),
                        false,
                    ) {
                        Ok(r) if r.status == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.push(e.to_string()),
                    }
                    if failed.len() > 3 {
                        break;
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let first = daemons(&a);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: signalling the Apache parent this test started.
        unsafe { libc::kill(a.pid(), libc::SIGUSR1) };
    }
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        match c.join() {
            Ok((o, f)) => {
                ok += o;
                failed.extend(f);
            }
            Err(_) => failed.push("a client could not connect".into()),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}\n{}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)],
        a.error_log()
    );
    assert!(ok > 100, "{ok}");
    let now = daemons(&a);
    assert_eq!(now.len(), 2);
    assert!(
        now.iter().all(|p| !first.contains(p)),
        "the group was replaced"
    );
}

fn hello_group(options: &str) -> Apache {
    Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site display-name=%{{GROUP}} {options}\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /hello {}\n\
             WSGIScriptAlias /cases {}",
            oxwsgi_e2e::repo().join("examples/hello.py").display(),
            app("cases.py")
        ),
    )
}

/// maximum-requests: daemons recycle over and over under load, and no
/// request fails.
#[test]
fn under_load_maximum_requests_recycles_without_failing_a_request() {
    let a = hello_group("processes=2 threads=4 maximum-requests=400");
    let l = oxwsgi_e2e::load::wrk(a.port, "/hello", 6);
    assert!(l.requests > 4000, "{}", l.output);
    assert!(l.all_2xx(), "{}", l.output);
    // A replacement starts as soon as the old daemon exits (Apache's
    // parent wakes for it), and the first generation recycles apart.
    assert!(l.max_latency() < 1.0, "{}", l.output);
    let log = a.error_log();
    let recycles = log
        .matches("recycling: it served 400 requests (maximum-requests)")
        .count();
    assert!(recycles >= 10, "only {recycles} recycles\n{}", l.output);
    assert!(
        log.contains("exited with status 0; starting another"),
        "{log}"
    );
    assert!(
        wait_until(Duration::from_secs(3), || daemons(&a).len() == 2),
        "{:?}\n{}",
        daemons(&a),
        a.error_log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A daemon killed with SIGKILL under load is back within a second; only
/// requests it was running could fail (GETs it had not answered are
/// retried). SIGUSR1 recycles a daemon gracefully, as in mod_wsgi.
#[test]
fn under_load_a_killed_daemon_costs_at_most_its_requests() {
    let a = hello_group("processes=2 threads=4");
    oxwsgi_e2e::load::a_killed_process_costs_at_most(a.port, "/hello", 4, 2, || daemons(&a));

    let evicted = daemons(&a)[0];
    // SAFETY: as above.
    unsafe { libc::kill(evicted, libc::SIGUSR1) };
    assert!(wait_until(Duration::from_secs(5), || {
        let d = daemons(&a);
        d.len() == 2 && !d.contains(&evicted)
    }));
    assert!(a.wait_log("recycling: it was sent SIGUSR1"));
}

/// request-timeout in a group: 504 at the deadline with the app's stack in
/// the log, though the app sleeps on; the daemon keeps serving.
#[test]
fn a_daemons_request_timeout_answers_504_with_the_stack() {
    let a = hello_group("processes=1 threads=2 request-timeout=1");
    let t = Instant::now();
    let r = http::get(a.port, "/cases/sleep?ms=3000");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert!(a.wait_log("request timeout after 1.0"));
    assert!(a.wait_log("in sleep"), "the stack: {}", a.error_log());
    assert_eq!(http::get(a.port, "/hello").status, 200);
}

/// mod_wsgi 6's interrupt-timeout: a request thread stuck outside Python
/// past its request timeout has that long to come back before its daemon
/// is replaced (5 s without it); the group serves on.
#[test]
fn interrupt_timeout_bounds_how_long_a_stuck_thread_may_take() {
    let a = hello_group("processes=1 threads=2 request-timeout=1 interrupt-timeout=1");
    let pid = http::get(a.port, "/cases/pid").text();
    let t = Instant::now();
    assert_eq!(http::get(a.port, "/cases/sleep?ms=8000").status, 504);
    assert!(
        a.wait_log("did not come back 1 s after the request timeout"),
        "{}",
        a.error_log()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    while http::get(a.port, "/cases/pid").text() == pid {
        assert!(Instant::now() < deadline, "not replaced: {}", a.error_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http::get(a.port, "/hello").status, 200);
}

/// WSGISwitchInterval for Apache's children and a group's switch-interval=
/// for its daemons (mod_wsgi 6): each Python runs with its own.
#[test]
fn switch_intervals_apply_where_they_are_set() {
    let a = Apache::start(
        "event",
        &format!(
            "WSGISwitchInterval 0.003
             WSGIDaemonProcess site switch-interval=0.002
             WSGIDaemonProcess plain
             WSGIScriptAlias /embedded {cases}
             WSGIScriptAlias /daemon {cases} process-group=site
             WSGIScriptAlias /plain {cases} process-group=plain",
            cases = app("cases.py")
        ),
    );
    let seen: Vec<String> = ["/embedded", "/daemon", "/plain"]
        .iter()
        .map(|p| a.text_of(&format!("{p}/switch-interval")))
        .collect();
    assert_eq!(seen, ["0.003", "0.002", "0.005"]);
}

/// Two projects in one Apache, each in its own group, virtualenv and user:
/// each app sees its own `sys.prefix` and uid. Group one's daemons run
/// their virtualenv's interpreter (the default), group two's Apache's
/// embedded Python (`python-executable=off`), and both log in Apache's
/// format.
#[test]
fn two_groups_run_as_their_own_users_in_their_own_venvs() {
    let dir = oxwsgi_e2e::temp_dir("venvs");
    let venv = |name: &str| {
        let path = dir.join(name);
        let ok = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv {name}");
        path
    };
    let (one, two) = (venv("one"), venv("two"));
    let a = Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess one user=nobody group=nogroup python-home={}\n\
             WSGIDaemonProcess two user=www-data python-home={} python-executable=off\n\
             WSGIScriptAlias /one {cases}\n\
             WSGIScriptAlias /two {cases}\n\
             <Location /one>\nWSGIProcessGroup one\n</Location>\n\
             <Location /two>\nWSGIProcessGroup two\n</Location>",
            one.display(),
            two.display(),
            cases = app("cases.py")
        ),
    );
    let who = |path: &str| -> (u32, String, i32) {
        let r = http::get(a.port, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let text = r.text();
        let field = |k: &str| {
            let at = text.find(&format!("\"{k}\": ")).unwrap() + k.len() + 4;
            text[at..]
                .split([',', '}'])
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string()
        };
        (
            field("uid").parse().unwrap(),
            field("prefix"),
            field("pid").parse().unwrap(),
        )
    };
    let (uid_one, prefix_one, pid_one) = who("/one/whoami");
    let (uid_two, prefix_two, pid_two) = who("/two/whoami");
    assert_eq!(uid_one, 65534, "nobody");
    assert_eq!(
        uid_two, 33,
        "www-data: Apache's User, the only one a copy of Apache may run as"
    );
    assert_eq!(std::path::Path::new(&prefix_one), one.as_path());
    assert_eq!(std::path::Path::new(&prefix_two), two.as_path());
    let exe = |pid: i32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let venv_python = std::fs::canonicalize(one.join("bin/python3")).unwrap();
    assert_eq!(exe(pid_one), venv_python);
    assert_eq!(exe(pid_two), std::path::Path::new("/usr/sbin/apache2"));
    assert!(
        a.wait_log(&format!(
            "[pid {pid_one}:tid {pid_one}] oxwsgi: group one: daemon process {pid_one} serving ({})",
            venv_python.display()
        )),
        "{}",
        a.error_log()
    );
    assert!(a.wait_log(&format!(
        "[pid {pid_two}:tid {pid_two}] oxwsgi: group two: daemon process {pid_two} serving (the server's embedded Python)"
    )));
    // A group of a user of its own is never a copy of Apache.
    apache::assert_refused(
        &format!(
            "WSGIDaemonProcess two user=nobody python-home={} python-executable=off",
            two.display()
        ),
        "never a copy of the server",
    );
}

/// WSGIScriptAlias's inline options, as mod_wsgi: `process-group=` runs the
/// script in a group (over WSGIProcessGroup; `%{GLOBAL}` embedded), with
/// `application-group=` too the group loads it when it starts;
/// `callable-object=` names the callable. Quoted option values work.
#[test]
fn inline_alias_options_choose_the_group() {
    let a = Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site processes=1 threads=2 \"display-name=(wsgi) my site\"\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /in {cases} process-group=site application-group=%{{GLOBAL}}\n\
             WSGIScriptAlias /out {cases} process-group=%{{GLOBAL}}\n\
             WSGIScriptAlias /dflt {cases}\n\
             WSGIScriptAliasMatch ^/m(atch)?/ {cases} process-group=%{{GLOBAL}} callable-object=whoami",
            cases = app("cases.py")
        ),
    );
    let group = || -> Vec<i32> {
        oxwsgi_e2e::children_of(a.pid())
            .into_iter()
            .filter(|p| comm(*p) == "(wsgi) my site")
            .collect()
    };
    // The daemon names itself just after it is forked.
    wait_until(Duration::from_secs(5), || group().len() == 1);
    let group = group();
    assert_eq!(
        group.len(),
        1,
        "the quoted display-name: {:?}\n{}",
        oxwsgi_e2e::children_of(a.pid())
            .into_iter()
            .map(comm)
            .collect::<Vec<_>>(),
        a.error_log()
    );
    let daemon = group[0];
    // Loaded when the daemon started, before any request.
    assert!(
        a.wait_log(&format!(
            "[pid {daemon}:tid {daemon}] oxwsgi: app {}: loaded",
            app("cases.py")
        )),
        "{}",
        a.error_log()
    );
    let pid = |path: &str| -> i32 {
        let r = http::get(a.port, path);
        assert_eq!(r.status, 200, "{path}");
        r.text().parse().unwrap()
    };
    assert_eq!(pid("/in/pid"), daemon);
    assert_eq!(pid("/dflt/pid"), daemon, "WSGIProcessGroup");
    assert!(a.children().contains(&pid("/out/pid")), "embedded");
    assert_ne!(pid("/out/pid"), daemon);
    let r = http::get(a.port, "/match/anything");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("\"uid\""),
        "callable-object=whoami: {}",
        r.text()
    );

    for (line, message) in [
        (
            "WSGIScriptAlias /x /srv/x.wsgi process-group=nosuch",
            "process-group=nosuch: no WSGIDaemonProcess of that name",
        ),
        (
            "WSGIScriptAlias /x /srv/x.wsgi pass-authorization=sometimes",
            "pass-authorization",
        ),
        (
            "WSGIScriptAlias /x /srv/x.wsgi colour=blue",
            "unknown option colour",
        ),
        (
            "WSGIScriptAlias /x",
            "a URL path and a WSGI script are needed",
        ),
        (
            "WSGIScriptAliasMatch ^/x /srv/x.wsgi process-group=%{RESOURCE}",
            "other %{...} forms are not supported",
        ),
    ] {
        apache::assert_refused(line, message);
    }
}

/// Touching a group's WSGI script restarts its daemons (each at its next
/// request, as mod_wsgi): the request that notices is sent again to a
/// fresh daemon, which loads the new script; nothing fails.
#[test]
fn touching_the_script_restarts_the_group() {
    let script = oxwsgi_e2e::script_copy("touch", "site.wsgi");
    let a = Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site processes=2 threads=2 display-name=%{{GROUP}}\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /site {}",
            script.display()
        ),
    );
    assert!(wait_until(Duration::from_secs(5), || daemons(&a).len() == 2));
    // Every request is answered, and by the new script: a daemon that had
    // loaded the old one restarts when it notices.
    let old_script =
        oxwsgi_e2e::change_script_under_requests(a.port, "/site/pid", &script, || a.error_log());
    assert!(a.wait_log("changed; "), "{}", a.error_log());
    // Those that ran the old script were replaced.
    assert!(wait_until(Duration::from_secs(5), || {
        let now = daemons(&a);
        now.len() == 2 && now.iter().all(|p| !old_script.contains(p))
    }));
}

/// `WSGIScriptReloading Off` holds in daemon mode too, as in mod_wsgi: a
/// changed script neither restarts the daemons nor reaches the app.
#[test]
fn script_reloading_off_keeps_the_daemons_running_the_old_script() {
    let script = oxwsgi_e2e::script_copy("touch-off", "site.wsgi");
    let a = Apache::start(
        "event",
        &format!(
            "WSGIScriptReloading Off\n\
             WSGIDaemonProcess site processes=1 threads=2 display-name=%{{GROUP}}\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /site {}",
            script.display()
        ),
    );
    let r = http::get(a.port, "/site/pid");
    assert_eq!(r.status, 200);
    let pid = r.text().parse::<i32>().unwrap();
    oxwsgi_e2e::change_script(&script);
    for _ in 0..10 {
        let r = http::get(a.port, "/site/pid");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), pid.to_string(), "{}", a.error_log());
    }
    assert_eq!(daemons(&a), vec![pid]);
    assert!(!a.error_log().contains("changed; "), "{}", a.error_log());
}

/// The typical daemon-mode Django site of mod_wsgi's and Django's guides
/// answers the same under oxwsgi as under Debian's mod_wsgi, with only the
/// LoadModule line swapped; `ps` shows the daemons by their display name
/// under both, and both put the daemons' sockets where a relative
/// WSGISocketPrefix says: under the ServerRoot.
#[test]
fn a_daemon_mode_django_site_answers_as_under_mod_wsgi() {
    let venv = oxwsgi_e2e::venv::sites_venv();
    let site_dir = oxwsgi_e2e::repo().join("examples/django_site");
    let site = format!(
        "WSGISocketPrefix wsgi\n\
         <VirtualHost 127.0.0.1:{{port}}>\n\
         ServerName site.test\n\
         WSGIDaemonProcess site processes=2 threads=15 user=www-data python-home={venv} python-path={site} display-name=%{{GROUP}}\n\
         WSGIProcessGroup site\n\
         WSGIApplicationGroup %{{GLOBAL}}\n\
         WSGIScriptAlias / {site}/mysite/wsgi.py\n\
         <Directory {site}/mysite>\n<Files wsgi.py>\nRequire all granted\n</Files>\n</Directory>\n\
         </VirtualHost>",
        venv = venv.display(),
        site = site_dir.display(),
    );
    let ours = Apache::start_with(
        "event",
        &format!("LoadModule wsgi_module {}", apache::module().display()),
        &site,
    );
    let theirs = Apache::start_with("event", &apache::mod_wsgi(), &site);
    for server in [&ours, &theirs] {
        // Apache listens before its second configuration pass starts the
        // daemons: wait for their sockets.
        let sockets = || {
            std::fs::read_dir(&server.dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("wsgi.") && n.ends_with(".sock"))
                .count()
        };
        assert!(
            wait_until(Duration::from_secs(5), || sockets() >= 1),
            "no wsgi.*.sock in {}",
            server.dir.display()
        );
    }
    let upload = {
        let mut b =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
                      Content-Type: application/octet-stream\r\n\r\n"
                .to_vec();
        b.extend((0..300_000u32).map(|i| (i % 253) as u8));
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        b
    };
    let exchanges = |port: u16| {
        let mut out = Vec::new();
        for path in ["/", "/info", "/info/?x=1", "/nowhere"] {
            let r = http::get(port, path);
            out.push((path.to_string(), r.status, r.body.clone(), String::new()));
        }
        let r = http::Request::post("/name", "application/x-www-form-urlencoded", b"name=Ann")
            .send(port);
        let cookie = r
            .headers_named("Set-Cookie")
            .iter()
            .map(|c| c.split(';').next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("; ");
        out.push((
            "POST /name".into(),
            r.status,
            Vec::new(),
            r.header("Location").unwrap_or("").to_string(),
        ));
        let r = http::Request::get("/").header("Cookie", &cookie).send(port);
        out.push((
            "/ with the session".into(),
            r.status,
            r.body.clone(),
            String::new(),
        ));
        let r =
            http::Request::post("/upload", "multipart/form-data; boundary=XyZ", &upload).send(port);
        out.push((
            "POST /upload".into(),
            r.status,
            r.body.clone(),
            String::new(),
        ));
        out
    };
    let (a, b) = (exchanges(ours.port), exchanges(theirs.port));
    assert!(
        String::from_utf8_lossy(&a[5].2).contains("Hello, Ann!"),
        "{:?}",
        String::from_utf8_lossy(&a[5].2)
    );
    let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    assert!(differ.is_empty(), "oxwsgi and mod_wsgi differ: {differ:#?}");
    // ps -f / ps aux show the daemons as "(wsgi:site)" under both.
    for server in [&ours, &theirs] {
        let shown: Vec<String> = oxwsgi_e2e::children_of(server.pid())
            .into_iter()
            .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
            .map(|c| {
                String::from_utf8_lossy(c.split(|b| *b == 0).next().unwrap_or(&[]))
                    .trim()
                    .to_string()
            })
            .filter(|c| c == "(wsgi:site)")
            .collect();
        assert_eq!(
            shown.len(),
            2,
            "two daemons named in ps: {:?}",
            oxwsgi_e2e::children_of(server.pid())
                .into_iter()
                .map(|p| std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default())
                .map(|c| String::from_utf8_lossy(&c).into_owned())
                .collect::<Vec<_>>()
        );
    }
}

/// Each process's resident memory, by pid.
fn rss_each(pids: &[i32]) -> Vec<(i32, u64)> {
    pids.iter()
        .map(|p| (*p, oxwsgi_e2e::rss_kib(&[*p])))
        .collect()
}

/// Runs `step` every 20 ms for 3 s; the largest growth of one process's
/// RSS (KiB) over its size before.
fn peak_growth(a: &Apache, mut step: impl FnMut()) -> u64 {
    let before = rss_each(&a.children());
    let mut peak = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        step();
        std::thread::sleep(Duration::from_millis(20));
        for (pid, now) in rss_each(&a.children()) {
            let was = before.iter().find(|(p, _)| *p == pid).map_or(now, |b| b.1);
            peak = peak.max(now.saturating_sub(was));
        }
    }
    peak
}

/// A 1 GiB response to a slow reader, a 1 GiB upload to an app that reads
/// slowly, and a slow uploader: no process (Apache's children, the daemon)
/// grows by more than 16 MiB; the bytes wait in the sockets, not in memory.
#[test]
fn huge_bodies_to_slow_peers_stay_out_of_memory() {
    use std::io::{Read, Write};
    let a = hello_group("processes=1 threads=4");
    for _ in 0..20 {
        http::get(a.port, "/cases/cookies");
    }
    let limit = 16 * 1024;

    let mut s = http::connect(a.port);
    s.write_all(&http::Request::get("/cases/stream?n=16384&size=65536").to_bytes(a.port))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let growth = peak_growth(&a, || got += s.read(&mut buf).unwrap());
    assert!(
        got > 0 && got < 512 << 20,
        "read {got} bytes: not slow enough to test"
    );
    assert!(
        growth < limit,
        "a slow reader grew a process by {growth} KiB"
    );
    drop(s);

    let mut s = http::connect(a.port);
    s.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    s.write_all(
        format!(
            "POST /cases/consume?delay=0.05 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            1u64 << 30
        )
        .as_bytes(),
    )
    .unwrap();
    let chunk = vec![b'u'; 1 << 20];
    let mut sent = 0;
    let growth = peak_growth(&a, || {
        // As fast as the server takes it (a write that would wait times out).
        if let Ok(n) = s.write(&chunk) {
            sent += n;
        }
    });
    assert!(
        sent > 0 && sent < 512 << 20,
        "sent {sent} bytes: not slow enough to test"
    );
    assert!(
        growth < limit,
        "a slow-reading app grew a process by {growth} KiB"
    );
    drop(s);

    let mut s = http::connect(a.port);
    s.write_all(
        format!(
            "POST /cases/consume HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            1u64 << 30
        )
        .as_bytes(),
    )
    .unwrap();
    let piece = vec![b's'; 64 << 10];
    let growth = peak_growth(&a, || s.write_all(&piece).unwrap());
    assert!(
        growth < limit,
        "a slow uploader grew a process by {growth} KiB"
    );
    drop(s);
    assert_eq!(http::get(a.port, "/hello").status, 200);
}

/// WSGIProcessGroup %{ENV:VAR} (the group a request's environment names:
/// SetEnv, SetEnvIf, mod_rewrite) and WSGIProcessGroup in .htaccess
/// (AllowOverride FileInfo), as mod_wsgi.
#[test]
fn the_group_may_come_from_the_environment_or_a_directory_never_htaccess() {
    let dir = oxwsgi_e2e::temp_dir("htaccess");
    let script = dir.join("site.wsgi");
    std::fs::copy(app("cases.py"), &script).unwrap();
    std::fs::write(dir.join(".htaccess"), "WSGIProcessGroup site\n").unwrap();
    let conf_dir = oxwsgi_e2e::temp_dir("dir-group");
    std::fs::copy(app("cases.py"), conf_dir.join("site.wsgi")).unwrap();
    let a = Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site processes=1 threads=2 display-name=%{{GROUP}}\n\
             WSGIProcessGroup %{{ENV:GROUP_NAME}}\n\
             WSGIScriptAlias /env {cases}\n\
             WSGIScriptAlias /plain {cases}\n\
             <Location /env>\nSetEnv GROUP_NAME site\n</Location>\n\
             Alias /ht {dir}\n\
             <Directory {dir}>\nAllowOverride FileInfo\nOptions +ExecCGI\nRequire all granted\n\
             <Files site.wsgi>\nSetHandler wsgi-script\n</Files>\n</Directory>\n\
             Alias /conf {conf_dir}\n\
             <Directory {conf_dir}>\nWSGIProcessGroup site\nOptions +ExecCGI\nRequire all granted\n\
             <Files site.wsgi>\nSetHandler wsgi-script\n</Files>\n</Directory>",
            cases = app("cases.py"),
            dir = dir.display(),
            conf_dir = conf_dir.display()
        ),
    );
    assert!(wait_until(Duration::from_secs(5), || daemons(&a).len() == 1));
    let daemon = daemons(&a)[0];
    let pid = |path: &str| -> i32 {
        let r = http::get(a.port, path);
        assert_eq!(r.status, 200, "{path}: {}", a.error_log());
        r.text().parse().unwrap()
    };
    assert_eq!(
        pid("/env/pid"),
        daemon,
        "%{{ENV:GROUP_NAME}} names the group"
    );
    assert_ne!(pid("/plain/pid"), daemon, "unset: embedded");
    assert_eq!(
        pid("/conf/site.wsgi/pid"),
        daemon,
        "the server's <Directory> names the group"
    );
    // As in mod_wsgi, not a tenant's .htaccess (a tenant would pick any
    // group): Apache refuses the file.
    assert_eq!(http::get(a.port, "/ht/site.wsgi/pid").status, 500);
    a.expect_logged(&["WSGIProcessGroup not allowed here"]);
    // As mod_wsgi, environ says which.
    let env = http::get(a.port, "/env/env").text();
    assert!(
        env.contains("\"mod_wsgi.process_group\": \"site\""),
        "{env}"
    );
    let env = http::get(a.port, "/plain/env").text();
    assert!(env.contains("\"mod_wsgi.process_group\": \"\""), "{env}");
}

/// script-user: a group runs only scripts of that owner (403 otherwise);
/// startup-timeout: a daemon whose app still fails to load after it is
/// replaced by a fresh one.
#[test]
fn script_owner_and_startup_timeout() {
    let dir = oxwsgi_e2e::temp_dir("owner");
    let script = dir.join("site.wsgi");
    std::fs::copy(app("cases.py"), &script).unwrap();
    std::os::unix::fs::chown(&script, Some(65534), Some(65534)).unwrap();
    let a = Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess owned processes=1 threads=2 script-user=www-data\n\
             WSGIDaemonProcess broken processes=1 threads=2 startup-timeout=1 display-name=%{{GROUP}}\n\
             WSGIScriptAlias /own {script} process-group=owned\n\
             WSGIScriptAlias /broken {broken} process-group=broken\n\
             <Directory {dir}>\nRequire all granted\n</Directory>",
            script = script.display(),
            broken = app("broken_import.py"),
            dir = dir.display()
        ),
    );
    assert_eq!(http::get(a.port, "/own/pid").status, 403);
    assert!(
        a.wait_log("is not owned by the group's script-user"),
        "{}",
        a.error_log()
    );
    std::os::unix::fs::chown(&script, Some(33), Some(33)).unwrap();
    assert_eq!(http::get(a.port, "/own/pid").status, 200);

    let broken = || -> Vec<i32> {
        oxwsgi_e2e::children_of(a.pid())
            .into_iter()
            .filter(|p| comm(*p) == "(wsgi:broken)")
            .collect()
    };
    assert!(wait_until(Duration::from_secs(5), || broken().len() == 1));
    let first = broken()[0];
    assert_eq!(http::get(a.port, "/broken/").status, 500);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(http::get(a.port, "/broken/").status, 500);
    assert!(
        a.wait_log("its app did not load within 1 s (startup-timeout)"),
        "{}",
        a.error_log()
    );
    assert!(wait_until(Duration::from_secs(5), || {
        let now = broken();
        now.len() == 1 && now[0] != first
    }));
}

/// The status page counts what the daemons serve: each daemon is a process
/// of its own there, with its requests and its group, and maximum-requests
/// recycles are counted as the group's, by reason.
#[test]
fn the_status_page_shows_the_daemons() {
    let a = Apache::start(
        "prefork",
        &format!(
            "WSGIDaemonProcess site processes=1 threads=2 maximum-requests=15 display-name=%{{GROUP}}\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /cases {}\n\
             <Location /status>\nSetHandler wsgi-status\n</Location>",
            app("cases.py")
        ),
    );
    for _ in 0..10 {
        assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
    }
    let daemon = served_by(&a);
    let metrics = http::get(a.port, "/status?format=prometheus").text();
    let line = format!("oxwsgi_process_requests_total{{pid=\"{daemon}\",group=\"site\"}} ");
    let served: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line}in\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(served >= 1, "{metrics}");
    // A daemon counts a request once its answer went out: the last one may
    // be counted a moment after the client has it.
    let total = || {
        http::get(a.port, "/status?format=prometheus")
            .text()
            .lines()
            .filter(|l| {
                l.starts_with("oxwsgi_requests_total{")
                    && l.contains("cases.py")
                    && l.contains("2xx")
            })
            .find_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || total() >= 11),
        "every request the daemons served: {}",
        total()
    );
    for _ in 0..10 {
        assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
    }
    assert!(wait_until(Duration::from_secs(5), || {
        http::get(a.port, "/status?format=prometheus")
            .text()
            .contains("oxwsgi_group_recycles_total{group=\"site\",reason=\"max_requests\"} 1")
    }));
}

/// `import mod_wsgi` gives an app what mod_wsgi's module gives it, embedded
/// and in a daemon group: the same answer under both modules, side by side.
#[test]
fn import_mod_wsgi_answers_as_mod_wsgi() {
    let body = format!(
        "WSGIDaemonProcess site processes=2 threads=3\n\
         WSGIApplicationGroup %{{GLOBAL}}\n\
         WSGIScriptAlias /embedded {info}\n\
         WSGIScriptAlias /daemon {info} process-group=site\n\
         WSGISocketPrefix wsgi\n\
         ThreadsPerChild 5\nServerLimit 3\nMaxRequestWorkers 15",
        info = app("mod_wsgi_info.py")
    );
    let answers: Vec<(String, String)> = apache::both_loads()
        .into_iter()
        .map(|load| {
            let a = Apache::start_with("event", &load, &body);
            let get = |path: &str| a.text_of(path);
            // mod_wsgi counts an embedded child's maximum_processes when it
            // sets Python up (1 here, before the children forked); oxwsgi the
            // slots used when the child starts (up to ServerLimit): an
            // estimate either way, left out of the comparison.
            let embedded = get("/embedded");
            let at = embedded.find("\"maximum_processes\": ").unwrap() + 21;
            let n: usize = embedded[at..].split(',').next().unwrap().parse().unwrap();
            assert!((1..=3).contains(&n), "{load}: {embedded}");
            (
                embedded.replace(&format!("\"maximum_processes\": {n},"), ""),
                get("/daemon"),
            )
        })
        .collect();
    assert_eq!(answers[0], answers[1], "oxwsgi, then mod_wsgi");
    assert!(
        answers[0].1.contains("\"process_group\": \"site\""),
        "{:?}",
        answers[0]
    );
    assert!(
        answers[0].1.contains("\"threads_per_process\": 3"),
        "{:?}",
        answers[0]
    );
}

/// A service script, as mod_wsgi-express's `--service-script` writes it: a
/// group of no threads loads it when its daemon starts, runs it as the
/// group's user, and replaces the daemon when it dies; under both modules.
/// WSGIImportScript takes mod_wsgi's options, and its errors.
#[test]
fn a_service_script_runs_in_a_group_without_threads() {
    for load in apache::both_loads() {
        let dir = oxwsgi_e2e::temp_dir("service");
        std::fs::copy(app("service.py"), dir.join("service.py")).unwrap();
        let out = dir.join("service.out");
        let a = Apache::start_with(
            "event",
            &load,
            &format!(
                "WSGISocketPrefix wsgi\n\
                 WSGIDaemonProcess svc threads=0 display-name=%{{GROUP}}\n\
                 WSGIImportScript {}/service.py process-group=svc application-group=%{{GLOBAL}}",
                dir.display()
            ),
        );
        // What ps shows (mod_wsgi's display-name sets the command line,
        // not the process's short name).
        let title = |pid: i32| {
            let line = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            line.split('\0').next().unwrap_or("").trim().to_string()
        };
        let running = || -> Option<(i32, u32)> {
            let text = std::fs::read_to_string(&out).ok()?;
            let (pid, uid) = text.split_once(' ')?;
            Some((pid.parse().ok()?, uid.parse().ok()?))
        };
        assert!(
            wait_until(Duration::from_secs(10), || running().is_some()),
            "{load}: the service script did not run\n{}",
            a.error_log()
        );
        let (pid, uid) = running().unwrap();
        assert_eq!(title(pid), "(wsgi:svc)", "{load}");
        assert_eq!(uid, 33, "{load}: as Apache's User");
        // SAFETY: signalling a daemon of the Apache this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert!(
            wait_until(Duration::from_secs(10), || running()
                .is_some_and(|(p, _)| p != pid && title(p) == "(wsgi:svc)")),
            "{load}: no daemon ran the service script again\n{}",
            a.error_log()
        );
    }
    for (options, message) in [
        ("", "Name of WSGI application group required."),
        (
            "application-group=%{GLOBAL}",
            "Name of WSGI process group required.",
        ),
        (
            "process-group=%{GLOBAL} callable-object=x",
            "Invalid option to WSGI import script definition.",
        ),
        (
            "process-group=nowhere application-group=%{GLOBAL}",
            "WSGI process group not yet configured.",
        ),
    ] {
        apache::assert_refused(
            &format!("WSGIImportScript {} {options}", app("service.py")),
            message,
        );
    }
}

/// The WSGIPython* interpreter settings reach every Python of the server,
/// Apache's children and the daemons (a group's own interpreter too), as
/// under mod_wsgi: the same answers, side by side; at the top level only.
#[test]
fn python_settings_reach_children_and_daemons_as_under_mod_wsgi() {
    let body = format!(
        "WSGIPythonOptimize 1\n\
         WSGIDontWriteBytecode On\n\
         WSGIPythonHashSeed 12345\n\
         WSGIPythonWarnings ignore::DeprecationWarning\n\
         WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess site processes=1 threads=2\n\
         WSGIApplicationGroup %{{GLOBAL}}\n\
         WSGIScriptAlias /embedded {app}\n\
         WSGIScriptAlias /daemon {app} process-group=site",
        app = app("python_settings.py")
    );
    let answers: Vec<(String, String)> = apache::both_loads()
        .into_iter()
        .map(|load| {
            let a = Apache::start_with("event", &load, &body);
            let get = |path: &str| a.text_of(path);
            (get("/embedded"), get("/daemon"))
        })
        .collect();
    assert_eq!(answers[0], answers[1], "oxwsgi, then mod_wsgi");
    let (embedded, daemon) = &answers[0];
    assert_eq!(embedded, daemon);
    assert!(embedded.contains("\"optimize\": 1"), "{embedded}");
    assert!(
        embedded.contains("\"dont_write_bytecode\": true"),
        "{embedded}"
    );
    assert!(
        embedded.contains("\"warnoptions\": [\"ignore::DeprecationWarning\"]"),
        "{embedded}"
    );
    apache::assert_refused(
        "<VirtualHost 127.0.0.1:80>\nWSGIPythonOptimize 1\n</VirtualHost>",
        "WSGIPythonOptimize cannot occur within <VirtualHost> section",
    );
    apache::assert_refused(
        "WSGIPythonHashSeed often",
        "WSGIPythonHashSeed must be either 'random'",
    );
}

/// WSGIErrorOverride On: in daemon mode an app's error status gets Apache's
/// ErrorDocument instead of the app's body, as under mod_wsgi (side by
/// side); without it, the app's own body.
#[test]
fn error_override_gives_apaches_error_page_in_daemon_mode() {
    let body = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess site processes=1 threads=2\n\
         WSGIProcessGroup site\n\
         ErrorDocument 404 \"the server's own page\"\n\
         WSGIScriptAlias /plain {cases}\n\
         WSGIScriptAlias /over {cases}\n\
         <Location /over>\nWSGIErrorOverride On\n</Location>",
        cases = app("cases.py")
    );
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        let plain = http::get(a.port, "/plain/nowhere");
        assert_eq!(
            (plain.status, plain.text()),
            (404, "no route /nowhere".into()),
            "{load}"
        );
        let over = http::get(a.port, "/over/nowhere");
        assert_eq!(over.status, 404, "{load}");
        assert_eq!(over.text(), "the server's own page", "{load}");
        assert_eq!(
            http::get(a.port, "/over/pid").status,
            200,
            "{load}: serves on"
        );
    }
}

/// WSGIIgnoreActivity as under mod_wsgi, side by side: requests where it is
/// On do not count as the daemon's activity, so once the daemon served a
/// request that counts, its inactivity-timeout replaces it while those go
/// on; the same requests elsewhere keep their daemon.
#[test]
fn ignored_activity_lets_a_busy_daemon_go_idle_as_mod_wsgi() {
    let body = format!(
        "WSGISocketPrefix wsgi\n\
         WSGIDaemonProcess quiet processes=1 threads=2 inactivity-timeout=2\n\
         WSGIDaemonProcess loud processes=1 threads=2 inactivity-timeout=2\n\
         WSGIScriptAlias /quiet {cases} process-group=quiet\n\
         WSGIScriptAlias /counted {cases} process-group=quiet\n\
         WSGIScriptAlias /loud {cases} process-group=loud\n\
         <Location /quiet>\nWSGIIgnoreActivity On\n</Location>",
        cases = app("cases.py")
    );
    for load in apache::both_loads() {
        let a = Apache::start_with("event", &load, &body);
        assert_eq!(http::get(a.port, "/counted/pid").status, 200);
        let (mut loud, mut quiet) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        let until = Instant::now() + Duration::from_millis(5500);
        while Instant::now() < until {
            for (path, seen) in [("/loud/pid", &mut loud), ("/quiet/pid", &mut quiet)] {
                let r = http::get(a.port, path);
                if r.status == 200 {
                    seen.insert(r.text());
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(loud.len(), 1, "{load}: {}", a.error_log());
        assert!(quiet.len() > 1, "{load}: {}", a.error_log());
    }
}

/// `apache2ctl -t` checks, as the group's user (Apache's `User` here), what
/// its daemons will open: an interpreter it may not reach or a script it
/// may not read fails the check naming the path.
#[test]
fn apache2ctl_t_checks_what_the_groups_user_can_reach() {
    let (python, script) = oxwsgi_e2e::unreachable_files();
    let hello = oxwsgi_e2e::repo().join("examples/hello.py");
    let (ok, out) = apache::check(&format!(
        "WSGIDaemonProcess site python-executable={}\nWSGIScriptAlias / {} process-group=site",
        python.display(),
        hello.display()
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("WSGIDaemonProcess site") && out.contains("may not enter"),
        "{out}"
    );
    let (ok, out) = apache::check(&format!(
        "WSGIDaemonProcess site\nWSGIScriptAlias / {} process-group=site",
        script.display()
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("user=www-data cannot read"), "{out}");
}

/// A group whose daemons cannot start (an interpreter that is not there):
/// a request waits for a daemon to take it up to the group's
/// connect-timeout, then gets 503, and Apache goes on serving its other
/// apps.
#[test]
fn a_group_whose_daemons_cannot_start_answers_503_after_its_connect_timeout() {
    let a = Apache::start(
        "event",
        &format!(
            "WSGIDaemonProcess site connect-timeout=2 socket-timeout=30 \
             python-executable=/nonexistent/python3\n\
             WSGIScriptAlias /cases {cases} process-group=site\n\
             WSGIScriptAlias /e {cases}",
            cases = app("cases.py")
        ),
    );
    assert!(a.wait_log("python-executable=/nonexistent/python3: no such file"));
    let t = Instant::now();
    let r = http::Request::post("/cases/echo", "text/plain", b"once").send(a.port);
    let waited = t.elapsed();
    assert_eq!(r.status, 503, "{}", a.error_log());
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert!(a.wait_log("group site: no daemon took the request within the connect timeout"));
    assert_eq!(http::get(a.port, "/e/cookies").status, 200);
}

//! Requests served by nginx's process groups (`wsgi_process_group`): the apps run in
//! the group's daemons, never in the workers (which then run no Python at
//! all), and what embedded apps get holds there too: the shared behaviour
//! and mistake tables, uploads and responses that stream both ways with
//! backpressure, a client that leaves stops the app, nginx's filters apply.

use std::io::{Read, Write};
use std::time::Duration;

use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::nginx::{Config, Nginx};
use oxwsgi_e2e::{app, wait_until, wire};

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Group site's daemons (children of the master's manager).
fn daemons(n: &Nginx) -> Vec<i32> {
    n.group_daemons("site")
}

/// The program process `pid` runs.
fn exe(pid: i32) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

/// nginx's workers (the master's children that are not the manager).
fn workers(n: &Nginx) -> Vec<i32> {
    oxwsgi_e2e::children_of(n.master_pid())
        .into_iter()
        .filter(|p| comm(*p) != "oxwsgi: groups")
        .collect()
}

fn group_site(location: &str) -> Nginx {
    Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; client_max_body_size 200m; {location} }}",
            app("cases.py")
        ))
        .http("wsgi_daemon_process site processes=2 threads=4;"),
    )
}

/// The /proc directories of `pid`'s threads whose name starts with
/// `prefix`.
fn threads_named(pid: i32, prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.path())
        .filter(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.starts_with(prefix)))
        .collect()
}

/// Whether `pid` has Python threads (the module links libpython, so its
/// mapping says nothing; an embedded worker starts `oxwsgi-N` threads).
fn runs_python(pid: i32) -> bool {
    !threads_named(pid, "oxwsgi-").is_empty()
}

#[test]
fn apps_run_in_the_group_and_behave_as_embedded() {
    let n = group_site("");
    let pid: i32 = http::get(n.port, "/pid").text().parse().unwrap();
    assert!(wait_until(Duration::from_secs(10), || daemons(&n).len() == 2));
    assert!(
        daemons(&n).contains(&pid),
        "{pid} is no daemon of the group"
    );
    for w in workers(&n) {
        assert!(!runs_python(w), "worker {w} started Python");
    }
    let env = http::get(n.port, "/env").text();
    assert!(env.contains("\"SCRIPT_NAME\": \"\""), "{env}");
    assert!(env.contains("\"wsgi.multiprocess\": true"), "{env}");
    assert!(
        env.contains("\"mod_wsgi.process_group\": \"site\""),
        "{env}"
    );
    wire::no_body_leaks(n.port, "");
    wire::latin1_headers(n.port, "");
    wire::length_promises(n.port, "");
    wire::each_chunk_leaves_at_once(n.port, "");
    wire::streaming_while_reading_and_logging(n.port, "", || n.error_log());
    oxwsgi_e2e::cases::mistakes_answer_500_and_are_logged(&n, n.port, "", "a group");
    // Keep-alive connections reuse the daemons' connections.
    let mut c = http::Conn::open(n.port);
    for _ in 0..50 {
        assert_eq!(c.send(Request::get("/cookies")).unwrap().status, 200);
    }
}

#[test]
fn uploads_stream_to_the_daemon_at_the_apps_pace() {
    let n = group_site("");
    wire::uploads_in_pieces_arrive_whole(n.port, "", "a group");
    // 64 MiB to an app that reads slowly: nothing piles up in the worker.
    let worker = workers(&n)[0];
    wire::slow_upload_keeps_memory_flat(n.port, "", || oxwsgi_e2e::rss_kib(&[worker]));
}

#[test]
fn a_slow_client_throttles_the_daemon_and_one_that_leaves_stops_the_app() {
    let n = group_site("");
    let worker = workers(&n)[0];
    wire::slow_reader_is_throttled(n.port, "", || oxwsgi_e2e::rss_kib(&[worker]));

    // The closes are counted per daemon: a group of one, so that every
    // request reads the same count.
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; }}",
            app("cases.py")
        ))
        .http("wsgi_daemon_process site processes=1 threads=4;"),
    );
    let closed = || -> u64 { http::get(n.port, "/closed").text().parse().unwrap() };
    let before = closed();
    {
        let mut s = http::connect(n.port);
        s.write_all(&Request::get("/stream?n=100000&size=1000&delay=0.01").to_bytes(n.port))
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || closed() > before),
        "close() was not called after the client left"
    );
}

#[test]
fn nginx_filters_apply_to_group_responses() {
    let n =
        group_site("gzip on; gzip_types text/plain; gzip_min_length 1; add_header X-Filter yes;");
    let r = Request::get("/big?size=100000")
        .header("Accept-Encoding", "gzip")
        .send(n.port);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(r.header("X-Filter"), Some("yes"));
    // nginx logs a request once it has sent the response.
    let logged = || std::fs::read_to_string(n.dir.join("access.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), || logged()
            .contains("GET /big?size=100000")),
        "{}",
        logged()
    );
}

#[test]
fn a_group_that_is_not_there_is_a_503_after_its_connect_timeout() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; }}",
            app("cases.py")
        ))
        .http("wsgi_daemon_process site processes=1 connect_timeout=1;"),
    );
    let pid: i32 = http::get(n.port, "/pid").text().parse().unwrap();
    // Nobody can reach the daemons any more: the socket's name is gone, and
    // the daemon that the worker's pooled connection leads to dies.
    std::fs::remove_file(n.dir.join("nginx-oxwsgi/site.sock")).unwrap();
    // SAFETY: signalling a daemon of the nginx this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(5), || {
        let d = daemons(&n);
        d.len() == 1 && d[0] != pid
    }));
    let t = std::time::Instant::now();
    let r = http::get(n.port, "/cookies");
    let waited = t.elapsed();
    assert_eq!(r.status, 503);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(n.wait_log("group site: cannot reach its daemons"));
}

#[test]
fn nginx_t_checks_wsgi_group() {
    for (server, message) in [
        (
            "location / { wsgi_process_group nosuch; wsgi_app /srv/a.py; }",
            "no wsgi_daemon_process defines \"nosuch\"",
        ),
        (
            "location / { wsgi_process_group site; wsgi_request_timeout 5s; wsgi_app /srv/a.py; }",
            "\"wsgi_request_timeout\" applies to apps in nginx's workers, not to those of group \"site\"",
        ),
    ] {
        let (ok, out) =
            oxwsgi_e2e::nginx::check(&Config::new(server).http("wsgi_daemon_process site;"));
        assert!(!ok, "{server}");
        assert!(out.contains(message), "{server}: {out}");
    }
    let (ok, out) = oxwsgi_e2e::nginx::check(
        &Config::new("wsgi_process_group site; location / { wsgi_app /srv/a.py; } location /e { wsgi_process_group off; wsgi_app /srv/b.py; }")
            .http("wsgi_daemon_process site;"),
    );
    assert!(ok, "{out}");
}

/// The multi-project server: two sites in one nginx, each in its own group,
/// virtualenv (two Flask versions) and user; each sees only its own
/// packages. The first group's daemons run their virtualenv's interpreter
/// (the default, `python_executable=auto`), the second's nginx's embedded
/// Python (`python_executable=off`): the same answers either way.
#[test]
fn two_projects_each_with_its_own_venv_flask_and_user() {
    let one = oxwsgi_e2e::venv::sites_venv();
    let two = oxwsgi_e2e::venv::with_requirements("flask2", "flask==2.3.3\n");
    let dir = oxwsgi_e2e::temp_dir("projects");
    let script = "import os, sys\n\
                  import flask\n\
                  app = flask.Flask(__name__)\n\
                  @app.route('/')\n\
                  def index():\n\
                  \x20   try:\n\
                  \x20       import django\n\
                  \x20       other = 'django'\n\
                  \x20   except ImportError:\n\
                  \x20       other = 'no-django'\n\
                  \x20   from importlib.metadata import version\n\
                  \x20   return ' '.join([version('flask'), str(os.getuid()), sys.prefix, other])\n\
                  application = app\n";
    for name in ["one", "two"] {
        let path = dir.join(format!("{name}.py"));
        std::fs::write(&path, script).unwrap();
        oxwsgi_e2e::set_mode(&path, 0o644);
    }
    let n = Nginx::start(
        Config::new(&format!(
            "location /one/ {{ wsgi_process_group one; wsgi_app {d}/one.py; }}\n\
             location /two/ {{ wsgi_process_group two; wsgi_app {d}/two.py; }}",
            d = dir.display()
        ))
        .http(&format!(
            "wsgi_daemon_process one processes=1 threads=2 user=www-data python_home={};\n\
             wsgi_daemon_process two processes=1 threads=2 user=nobody group=nogroup python_home={} \
             python_executable=off;",
            one.display(),
            two.display()
        )),
    );
    let answer = |path: &str| -> Vec<String> {
        let r = http::get(n.port, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.text().split(' ').map(str::to_string).collect()
    };
    let a = answer("/one/");
    let b = answer("/two/");
    assert_eq!(a[0], "3.1.3", "{a:?}");
    assert_eq!(b[0], "2.3.3", "{b:?}");
    assert_eq!(
        (a[1].as_str(), b[1].as_str()),
        ("33", "65534"),
        "www-data, nobody"
    );
    assert_eq!(std::path::Path::new(&a[2]), one.as_path());
    assert_eq!(std::path::Path::new(&b[2]), two.as_path());
    assert_eq!((a[3].as_str(), b[3].as_str()), ("django", "no-django"));
    let (d1, d2) = (n.group_daemons("one"), n.group_daemons("two"));
    assert_eq!((d1.len(), d2.len()), (1, 1));
    let venv_python = std::fs::canonicalize(one.join("bin/python3")).unwrap();
    assert_eq!(exe(d1[0]), venv_python, "group one runs its venv's Python");
    assert_eq!(exe(d2[0]), std::path::Path::new(oxwsgi_e2e::nginx::NGINX));
    assert!(
        n.wait_log(&format!(
            "group one: daemon process {} serving ({})",
            d1[0],
            venv_python.display()
        )),
        "{}",
        n.error_log()
    );
    assert!(n.wait_log(&format!(
        "group two: daemon process {} serving (the server's embedded Python)",
        d2[0]
    )));
}

/// An interpreter that is not there: the daemon says so in the error log
/// and waits before it exits (no fork loop); a request waits for a daemon
/// to take it up to the group's connect timeout, then gets 503 (not the
/// socket timeout's 504: nothing of it was sent), and nginx goes on
/// serving its other locations.
#[test]
fn a_group_whose_daemons_cannot_start_answers_503_after_its_connect_timeout() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; }}\nlocation /e/ {{ wsgi_app {}; }}",
            app("cases.py"),
            app("cases.py")
        ))
        .http(
            "wsgi_daemon_process site connect_timeout=2 socket_timeout=30 \
             python_executable=/nonexistent/python3;",
        ),
    );
    assert!(n.wait_log(
        "group site: python-executable=/nonexistent/python3: no such file; \
         this daemon exits in 5 s and another is started"
    ));
    let t = std::time::Instant::now();
    let r = http::Request::post("/echo", "text/plain", b"once").send(n.port);
    let waited = t.elapsed();
    assert_eq!(r.status, 503, "{}", n.error_log());
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert!(n.wait_log(
        "group site: no daemon took the request within connect_timeout (2s); answering 503"
    ));
    assert_eq!(http::get(n.port, "/e/cookies").status, 200);
    let starts = || n.error_log().matches("no such file").count();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(starts(), 1, "no daemon started again within 5 s");
}

fn hello_group(options: &str) -> Nginx {
    Nginx::start(oxwsgi_e2e::nginx::cases_in_group(&format!(
        "processes=2 threads=4 {options}"
    )))
}

/// The scheduling policy of each of `pid`'s request threads
/// (`oxwsgi-group-N`), from /proc (field 41 of a task's stat).
fn request_thread_policies(pid: i32) -> Vec<u32> {
    threads_named(pid, "oxwsgi-group-")
        .into_iter()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.join("stat")).ok()?;
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(38)?
                .parse()
                .ok()
        })
        .collect()
}

/// Writing a group's script restarts its daemons, as Apache's daemon mode
/// does: every request is answered, and by the new script. Their request
/// threads run as batch threads (so that a daemon handed a request does not
/// take the CPU from the nginx worker handing it over).
#[test]
fn a_changed_script_restarts_the_group() {
    let script = oxwsgi_e2e::script_copy("group-script", "site.py");
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; }}",
            script.display()
        ))
        .http("wsgi_daemon_process site processes=2 threads=2;"),
    );
    assert!(wait_until(Duration::from_secs(10), || daemons(&n).len() == 2));
    // A daemon names its threads as it starts them, and each sets its
    // policy first thing.
    let batch = vec![libc::SCHED_BATCH as u32; 2];
    for pid in daemons(&n) {
        assert!(
            wait_until(Duration::from_secs(10), || request_thread_policies(pid)
                == batch),
            "{:?}",
            request_thread_policies(pid)
        );
    }
    // The daemons that ran the old script.
    let ran_old =
        oxwsgi_e2e::change_script_under_requests(n.port, "/pid", &script, || n.error_log());
    assert!(wait_until(Duration::from_secs(10), || {
        let now = daemons(&n);
        now.len() == 2 && now.iter().all(|p| !ran_old.contains(p))
    }));
}

#[test]
fn under_load_a_killed_daemon_costs_at_most_its_requests() {
    let n = hello_group("");
    oxwsgi_e2e::load::a_killed_process_costs_at_most(n.port, "/cookies", 4, 2, || daemons(&n));
}

/// nginx closes the old workers' idle kept-alive connections when it
/// reloads, and a client that sent a request on one just then sees it
/// closed (HTTP lets a server do so; browsers send such a request again,
/// wrk counts an error): that is nginx's, with any content. What a reload
/// must not lose is a request it took, so the load here opens a
/// connection per request.
#[test]
fn reloads_under_load_fail_no_request() {
    let n = hello_group("");
    assert!(wait_until(Duration::from_secs(10), || daemons(&n).len() == 2));
    let port = n.port;
    let wrk = std::thread::spawn(move || {
        oxwsgi_e2e::load::wrk_with(port, "/cookies", 6, &["Connection: close"])
    });
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2000));
        n.signal(libc::SIGHUP);
    }
    let l = wrk.join().unwrap();
    assert_eq!(l.failures(), 0, "{}", l.output);
    assert!(l.requests > 1000, "{}", l.output);
    assert!(
        n.error_log().matches("the group is stopping").count() >= 4,
        "both reloads retired the old daemons\n{}",
        n.error_log()
    );
}

#[test]
fn a_leaking_app_is_recycled_by_max_rss_without_failing_a_request() {
    let n = hello_group("max_rss=96m graceful_timeout=5");
    let stop = std::time::Instant::now() + Duration::from_secs(5);
    let mut c = http::Conn::open(n.port);
    let (mut served, mut failed) = (0, Vec::new());
    while std::time::Instant::now() < stop {
        match c.send(Request::get("/leak?mb=2")) {
            Ok(r) if r.status == 200 => served += 1,
            Ok(r) => failed.push(r.status.to_string()),
            Err(e) => {
                failed.push(e.to_string());
                c = http::Conn::open(n.port);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(failed.is_empty(), "{failed:?}");
    assert!(served > 100, "{served}");
    let recycles = n.error_log().matches("(max-rss)").count();
    assert!(recycles >= 2, "{recycles} recycles\n{}", n.error_log());
}

/// The status page shows the groups: each daemon with its group, the
/// group's live processes and recycles; the text passes promtool.
#[test]
fn the_status_page_shows_the_groups_and_their_processes() {
    let n = Nginx::start(
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; }}\nlocation = /status {{ wsgi_status; }}",
            app("cases.py")
        ))
        .http("wsgi_daemon_process site processes=2 threads=3 max_requests=5;"),
    );
    for _ in 0..20 {
        assert_eq!(http::get(n.port, "/cookies").status, 200);
    }
    let metrics = || http::get(n.port, "/status?format=prometheus").text();
    let sample = |text: &str, series: &str| oxwsgi_e2e::prometheus::sample(text, series);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = metrics();
            sample(&m, "oxwsgi_group_processes{group=\"site\"}") == Some(2.0)
                && sample(
                    &m,
                    "oxwsgi_group_recycles_total{group=\"site\",reason=\"max_requests\"}",
                )
                .is_some_and(|n| n >= 2.0)
        }),
        "{}",
        metrics()
    );
    // Every daemon shows with its group (one that replaced a recycled one
    // a moment ago attaches once its Python runs).
    let all_shown = |m: &str| {
        let d = daemons(&n);
        d.len() == 2
            && d.iter().all(|pid| {
                let series =
                    format!("oxwsgi_threads{{pid=\"{pid}\",group=\"site\",state=\"idle\"}}");
                sample(m, &series).is_some()
            })
    };
    assert!(
        wait_until(Duration::from_secs(10), || all_shown(&metrics())),
        "daemons {:?} in\n{}",
        daemons(&n),
        metrics()
    );
    let m = metrics();
    oxwsgi_e2e::prometheus::promtool_check(&m);
    // A daemon recycled a moment ago may not have attached yet.
    let json = || http::get(n.port, "/status?format=json").text();
    assert!(
        wait_until(Duration::from_secs(10), || json()
            .contains("\"groups\":[{\"name\":\"site\",\"processes\":2")),
        "{}",
        json()
    );
    let page = http::get(n.port, "/status").text();
    assert!(page.contains("<h2>Process groups</h2>"), "{page}");
}

/// Killing the groups' manager under load (`kill -9`, as an operator or
/// the OOM killer might): its warden starts another on the same sockets
/// within a second; the old daemons finish what they had begun and the new
/// ones take what waits, so at most the requests in flight could fail.
/// Killing the warden: the manager starts another.
#[test]
fn under_load_a_killed_manager_or_warden_is_replaced() {
    let n = hello_group("");
    assert!(wait_until(Duration::from_secs(10), || daemons(&n).len() == 2));
    let children_named = |pid: i32, name: &str| -> Vec<i32> {
        oxwsgi_e2e::children_of(pid)
            .into_iter()
            .filter(|p| comm(*p) == name)
            .collect()
    };
    let first = children_named(n.master_pid(), "oxwsgi: groups")[0];
    assert!(wait_until(Duration::from_secs(2), || children_named(
        first,
        "oxwsgi: warden"
    )
    .len()
        == 1));
    let warden = children_named(first, "oxwsgi: warden")[0];
    // The manager wherever it is: the master's child until it is killed,
    // then the warden's.
    let managers = move || {
        let mut now = children_named(warden, "oxwsgi: groups");
        if std::fs::read_to_string(format!("/proc/{first}/stat")).is_ok_and(|s| !s.contains(") Z "))
        {
            now.push(first);
        }
        now
    };
    oxwsgi_e2e::load::a_killed_process_costs_at_most(n.port, "/cookies", 4, 1, managers);
    let second = managers()[0];
    assert!(
        wait_until(Duration::from_secs(5), || children_named(
            second,
            "(wsgi:site)"
        )
        .len()
            == 2),
        "{}",
        n.error_log()
    );
    assert!(
        n.error_log()
            .contains("the process groups' manager (process")
    );
    assert_eq!(http::get(n.port, "/cookies").status, 200);
    // The warden killed: the manager starts another, and it watches.
    oxwsgi_e2e::load::a_killed_process_costs_at_most(n.port, "/cookies", 0, 1, || {
        children_named(second, "oxwsgi: warden")
            .into_iter()
            .chain(
                std::iter::once(warden).filter(|w| oxwsgi_e2e::children_of(*w).contains(&second)),
            )
            .collect()
    });
    assert!(
        n.error_log()
            .contains("the process groups' warden (process")
    );
}

/// The directive pair as Apache spells it: `wsgi_daemon_process` defines a
/// group, `wsgi_process_group` chooses one (in the http, server or location
/// block, inherited; `off` runs embedded). The former spellings still work
/// as they did, with a warning at `nginx -t`: `wsgi_group` chose a group,
/// and `wsgi_process_group` defined one (with options, or a lone name in
/// the http block that no `wsgi_daemon_process` defines).
#[test]
fn the_directive_pair_is_apaches_and_the_former_spellings_still_work() {
    let dir = oxwsgi_e2e::temp_dir("group-names");
    let info = dir.join("where.py");
    std::fs::write(
        &info,
        "def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [repr(environ.get('mod_wsgi.process_group')).encode()]\n",
    )
    .unwrap();
    let info = info.display();
    // Where a request ran: 'site' in the group's daemon, None embedded.
    let group_of = |n: &Nginx, path: &str| http::get(n.port, path).text();
    let locations = format!(
        "location / {{ wsgi_app {info}; }}\n\
         location /own {{ wsgi_process_group off; wsgi_app {info}; }}"
    );
    // New: chosen for the whole http block, off where a location says so.
    let now = Config::new(&locations)
        .http("wsgi_daemon_process site processes=1 threads=2;\nwsgi_process_group site;");
    let (ok, out) = oxwsgi_e2e::nginx::check(&now);
    assert!(ok && !out.contains("deprecated"), "{out}");
    let n = Nginx::start(now);
    assert!(
        wait_until(Duration::from_secs(15), || group_of(&n, "/") == "'site'"),
        "{}",
        n.error_log()
    );
    assert_eq!(group_of(&n, "/own"), "None", "off: embedded");
    drop(n);

    // Before: the definition had the chooser's name, the chooser another.
    let before = |define: &str| {
        Config::new(&format!(
            "location / {{ wsgi_group site; wsgi_app {info}; }}\n\
             location /own {{ wsgi_app {info}; }}"
        ))
        .http(define)
    };
    for define in [
        "wsgi_process_group site processes=1 threads=2;",
        "wsgi_process_group site;",
    ] {
        let (ok, out) = oxwsgi_e2e::nginx::check(&before(define));
        assert!(ok, "{define}: {out}");
        assert!(
            out.contains("\"wsgi_group\" is deprecated: write \"wsgi_process_group\"")
                && out.contains("defining a process group is deprecated: write \"wsgi_daemon_process NAME OPTIONS\""),
            "{define}: {out}"
        );
        let n = Nginx::start(before(define));
        assert!(
            wait_until(Duration::from_secs(15), || group_of(&n, "/") == "'site'"),
            "{define}: {}",
            n.error_log()
        );
        assert_eq!(group_of(&n, "/own"), "None", "{define}: chose nothing");
    }

    // Options define a group only in the http block.
    let (ok, out) = oxwsgi_e2e::nginx::check(&Config::new(&format!(
        "location / {{ wsgi_process_group site processes=2; wsgi_app {info}; }}"
    )));
    assert!(!ok);
    assert!(
        out.contains("\"wsgi_process_group\" takes one group name here"),
        "{out}"
    );
    let (ok, out) = oxwsgi_e2e::nginx::check(&Config::new(&format!(
        "location / {{ wsgi_process_group nowhere; wsgi_app {info}; }}"
    )));
    assert!(!ok);
    assert!(
        out.contains("no wsgi_daemon_process defines \"nowhere\""),
        "{out}"
    );
}

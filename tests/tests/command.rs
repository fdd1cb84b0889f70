//! The `oxwsgi` command end to end, as a user who is not root (`nobody`)
//! runs it: each form of APP, the options, every mistake with its one
//! line, `--reload-on-changes`, `--setup-only` run with its own scripts,
//! `oxwsgi check`, and nothing left behind after a signal, a kill of the
//! command or a crash of the app. The packaged command is run by
//! tests/tests/packages.rs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxwsgi_e2e::{attack, built_file, free_port, http, repo, temp_dir, wait_until};

/// The user the command runs as.
const USER: &str = "nobody";

fn oxwsgi() -> PathBuf {
    built_file(
        Some("OXWSGI_COMMAND"),
        "target/debug/oxwsgi",
        "build it with `cargo build -p oxwsgi-cli` (make test does)",
    )
}

/// `oxwsgi ARGS` as the user, in `dir`.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = attack::as_user(USER, oxwsgi().to_str().unwrap());
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("USER", USER)
        .stdin(Stdio::null());
    c
}

/// Runs the command to its end: (exit code, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = command(dir, args).output().expect("run oxwsgi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `oxwsgi serve`.
struct Served {
    child: Child,
    err: PathBuf,
    port: u16,
    /// Every process it started, seen while it served.
    tree: HashSet<i32>,
    /// Its server's directory.
    root: PathBuf,
}

impl Served {
    /// Starts `oxwsgi serve ARGS --port P` in `dir` and waits until it says
    /// it serves.
    fn start(dir: &Path, args: &[&str]) -> Served {
        Served::start_env(dir, args, &[])
    }

    /// As `start`, with `env` in the command's environment.
    fn start_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let err = dir.join(format!("stderr-{port}"));
        let port_s = port.to_string();
        let mut all = vec!["serve", "--port", &port_s];
        all.extend(args);
        let child = command(dir, &all)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            // Appended to, as a terminal is: the server may write into it
            // too (--log-to-terminal).
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&err)
                    .unwrap(),
            )
            .spawn()
            .expect("start oxwsgi serve");
        let mut s = Served {
            child,
            err,
            port,
            tree: HashSet::new(),
            root: PathBuf::new(),
        };
        let up = wait_until(Duration::from_secs(30), || {
            s.stderr().contains("oxwsgi: serving ") || s.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            up && s.stderr().contains("oxwsgi: serving "),
            "{}",
            s.stderr()
        );
        s.root = s
            .stderr()
            .lines()
            .find_map(|l| l.strip_prefix("oxwsgi: starting "))
            .and_then(|l| l.rsplit_once(" in "))
            .map(|(_, d)| PathBuf::from(d))
            .expect("the command names its directory");
        s.see_tree();
        s
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn get(&self, path: &str) -> http::Response {
        http::get(self.port, path)
    }

    /// Records the processes under the command now.
    fn see_tree(&mut self) {
        let mut todo = vec![self.child.id() as i32];
        while let Some(p) = todo.pop() {
            for c in oxwsgi_e2e::children_of(p) {
                if self.tree.insert(c) {
                    todo.push(c);
                }
            }
        }
    }

    /// Sends `signal` and waits for the command to end; its exit code.
    fn stop(&mut self, signal: i32) -> i32 {
        self.see_tree();
        // SAFETY: signalling the command this test started, by its PID.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the command did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Nothing it started is left: no process, no directory.
    fn assert_nothing_left(&self) {
        let left: Vec<i32> = self
            .tree
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        assert!(left.is_empty(), "left running: {left:?}\n{}", self.stderr());
        assert!(!self.root.exists(), "{} is left", self.root.display());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A directory the user owns, with `files` in it.
fn project(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = temp_dir(tag);
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    let _ = Command::new("chown")
        .args(["-R", &format!("{USER}:nogroup")])
        .arg(&dir)
        .status();
    dir
}

const HELLO: &str = "def application(environ, start_response):\n\
    \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
    \x20   return [b'hello ' + environ['PATH_INFO'][1:].encode()]\n";

/// What the options app answers at /info: its pid, cwd, whether the server
/// runs several processes, and a value from a module on the python path.
const INFO: &str = "import os, time\n\
def application(environ, start_response):\n\
    \x20   p = environ['PATH_INFO']\n\
    \x20   if p == '/sleep':\n\
    \x20       time.sleep(5)\n\
    \x20   if p == '/extra':\n\
    \x20       import extra\n\
    \x20       body = extra.VALUE\n\
    \x20   else:\n\
    \x20       body = '%d %s %s' % (os.getpid(), os.getcwd(), environ['wsgi.multiprocess'])\n\
    \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
    \x20   return [body.encode()]\n";

/// hello.py as the user, on both servers, embedded and in a group; each
/// stop (SIGTERM, SIGINT as Ctrl+C) leaves no process and no directory.
#[test]
fn a_script_is_served_as_the_user_and_nothing_is_left() {
    let dir = project("cmd-hello", &[("hello.py", HELLO)]);
    for (signal, args) in [
        (libc::SIGTERM, &[][..]),
        (libc::SIGINT, &["--group"][..]),
        (libc::SIGTERM, &["--server", "apache"][..]),
        (libc::SIGINT, &["--server", "apache", "--group"][..]),
    ] {
        let mut all = vec!["hello.py"];
        all.extend(args);
        let mut s = Served::start(&dir, &all);
        let r = s.get("/world");
        assert_eq!(
            (r.status, r.text()),
            (200, "hello world".into()),
            "{args:?}"
        );
        let err = s.stderr();
        assert!(
            err.contains(&format!("on http://127.0.0.1:{}/", s.port))
                && err.contains("error log: "),
            "{err}"
        );
        s.see_tree();
        let owners: HashSet<u32> = s.tree.iter().filter_map(|p| uid_of(*p)).collect();
        assert_eq!(owners, HashSet::from([65534]), "{args:?}: all as {USER}");
        assert_eq!(s.stop(signal), 0, "{args:?}: {}", s.stderr());
        s.assert_nothing_left();
        assert!(refused(s.port), "{args:?}: the port is free");
    }
}

/// Whether nothing listens on `port` any more.
fn refused(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// module:callable from the current directory; a Flask app and a Django
/// project (with its static files through --url-alias) from a virtualenv.
#[test]
fn each_form_of_app_is_served() {
    let venv = oxwsgi_e2e::venv::sites_venv();
    let venv = venv.to_str().unwrap();
    let dir = project(
        "cmd-forms",
        &[
            ("pkg/__init__.py", ""),
            ("pkg/web.py", &HELLO.replace("application", "site")),
        ],
    );
    let s = Served::start(&dir, &["pkg.web:site"]);
    assert_eq!(s.get("/mod").text(), "hello mod");
    drop(s);

    // The active virtualenv, as `source venv/bin/activate` leaves it.
    let flask = repo().join("examples/flask_site");
    let s = Served::start_env(&flask, &["app:app"], &[("VIRTUAL_ENV", venv)]);
    assert!(
        s.stderr().contains(&format!("app:app imports on {venv}")),
        "{}",
        s.stderr()
    );
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Hello, stranger!"), "{}", r.text());
    drop(s);

    let site = repo().join("examples/django_site");
    let s = Served::start(
        &dir,
        &[
            site.to_str().unwrap(),
            "--python-home",
            venv,
            "--url-alias",
            "/static",
            site.join("static").to_str().unwrap(),
        ],
    );
    assert!(
        s.stderr()
            .contains("serving Django project django_site (mysite/wsgi.py)"),
        "{}",
        s.stderr()
    );
    let r = s.get("/");
    assert_eq!(r.status, 200, "{}", s.stderr());
    let css = s.get("/static/site.css");
    assert_eq!(css.status, 200);
    assert_eq!(
        css.body,
        std::fs::read(site.join("static/site.css")).unwrap(),
        "the file itself, sent by nginx"
    );
}

/// Every mistake: one line on stderr, exit 1, nothing started.
#[test]
fn every_mistake_is_one_line_and_nothing_runs() {
    let dir = project(
        "cmd-mistakes",
        &[
            ("hello.py", HELLO),
            ("noapp.py", "def app(environ, start_response):\n    pass\n"),
            ("broken.py", "import no_such_module_anywhere\n"),
            ("oldvenv/pyvenv.cfg", "home = /usr/bin\nversion = 3.2.1\n"),
            ("oldvenv/bin/python3", ""),
        ],
    );
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::write(closed.join("app.py"), HELLO).unwrap();
    oxwsgi_e2e::set_mode(&closed, 0o700);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let closed_app = closed.join("app.py");
    for (args, says) in [
        (vec!["serve", "missing.py"], "missing.py: no such file"),
        (vec!["serve", "no.such:thing-x"], "not a module:callable"),
        (
            vec!["serve", "noapp.py"],
            "has no callable named 'application' (it defines: app)",
        ),
        (
            vec!["serve", "broken.py"],
            "ModuleNotFoundError: No module named 'no_such_module_anywhere'; oxwsgi check broken.py shows the whole traceback",
        ),
        (
            vec!["serve", "hello.py", "--port", &busy_port],
            "is in use: choose another with --port",
        ),
        (
            vec!["serve", "hello.py", "--port", "80"],
            "ports below 1024 need root",
        ),
        (
            vec!["serve", "hello.py", "--python-home", "oldvenv"],
            "is a Python 3.2 virtualenv; oxwsgi runs Python",
        ),
        (
            vec!["serve", "hello.py", "--python-home", "nowhere"],
            "--python-home ",
        ),
        (
            vec!["serve", closed_app.to_str().unwrap()],
            "this user may not open it",
        ),
        (
            vec![
                "serve",
                "hello.py",
                "--url-alias",
                "/s",
                closed.to_str().unwrap(),
            ],
            "this user may not read it",
        ),
        (
            vec!["serve", "hello.py", "--threads", "0"],
            "--threads 0: expected a number above 0",
        ),
        (vec!["serve"], "no APP given"),
        (vec!["frobnicate"], "unknown command"),
    ] {
        // A root of its own: whatever the command started would name it.
        let root = dir.join(format!("root-{}", free_port()));
        let mut args = args.clone();
        if args.first() == Some(&"serve") && args.len() > 1 {
            args.extend(["--server-root", root.to_str().unwrap()]);
        }
        let (code, out, err) = run(&dir, &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.contains(" imports on "))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line: {err}");
        assert!(lines[0].starts_with("oxwsgi: error: "), "{args:?}: {err}");
        assert!(lines[0].contains(says), "{args:?}: {err}");
        assert_eq!(
            processes_naming(&root),
            Vec::<i32>::new(),
            "{args:?}: left running"
        );
    }
    drop(busy);
}

/// The processes whose command line names `path`.
fn processes_naming(path: &Path) -> Vec<i32> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// --processes, --threads, --group, --working-directory, --python-path,
/// --status-url, --access-log, --request-timeout, --max-requests,
/// --https-port: each shapes the server as it says.
#[test]
fn options_shape_the_server() {
    let dir = project(
        "cmd-options",
        &[
            ("app/info.py", INFO),
            ("lib/extra.py", "VALUE = 'from the python path'\n"),
            ("work/.keep", ""),
        ],
    );
    let (cert, key) = oxwsgi_e2e::test_certificate(&dir);
    for f in [&cert, &key] {
        oxwsgi_e2e::set_mode(f, 0o644);
    }
    let https = free_port().to_string();
    for server in ["nginx", "apache"] {
        let s = Served::start(
            &dir,
            &[
                "app/info.py",
                "--server",
                server,
                "--group",
                "--processes",
                "2",
                "--threads",
                "2",
                "--python-path",
                "lib",
                "--working-directory",
                "work",
                "--status-url",
                "/status",
                "--access-log",
                "--request-timeout",
                "2",
                "--max-requests",
                "20",
                "--https-port",
                &https,
                "--ssl-certificate-file",
                cert.to_str().unwrap(),
                "--ssl-certificate-key-file",
                key.to_str().unwrap(),
            ],
        );
        let info = s.get("/info").text();
        let fields: Vec<&str> = info.split(' ').collect();
        assert_eq!(
            &fields[1..],
            [dir.join("work").to_str().unwrap(), "True"],
            "{server}: {info}"
        );
        assert_eq!(s.get("/extra").text(), "from the python path", "{server}");
        let pids: HashSet<String> = (0..60)
            .map(|_| s.get("/info").text().split(' ').next().unwrap().to_string())
            .collect();
        assert!(
            pids.len() >= 3,
            "{server}: 2 daemons, replaced after 20 requests: {pids:?}"
        );
        let t = Instant::now();
        let slow = s.get("/sleep");
        assert_eq!(slow.status, 504, "{server}: the request timeout");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{server}: {:?}",
            t.elapsed()
        );
        let status = s.get("/status?format=json");
        assert_eq!(status.status, 200, "{server}");
        assert!(
            status.text().contains("\"app\""),
            "{server}: {}",
            status.text()
        );
        let log = std::fs::read_to_string(s.root.join("access.log")).unwrap();
        assert!(log.contains("GET /extra"), "{server}: {log}");
        let out = Command::new("curl")
            .args(["-sk", &format!("https://127.0.0.1:{https}/extra")])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from the python path",
            "{server}"
        );
    }
}

/// An edit to a module of the app restarts it: the next answers are the
/// new code's, and the command says which file changed.
#[test]
fn reload_on_changes_picks_up_an_edit() {
    let dir = project(
        "cmd-reload",
        &[
            (
                "site/app.py",
                "from site_lib import answer\n\
                           def application(e, start_response):\n\
                           \x20   start_response('200 OK', [])\n\
                           \x20   return [answer().encode()]\n",
            ),
            ("site/site_lib.py", "def answer():\n    return 'first'\n"),
        ],
    );
    for server in ["nginx", "apache"] {
        let lib = dir.join("site/site_lib.py");
        std::fs::write(&lib, "def answer():\n    return 'first'\n").unwrap();
        let s = Served::start(
            &dir,
            &["site/app.py", "--reload-on-changes", "--server", server],
        );
        assert_eq!(s.get("/").text(), "first");
        assert!(
            s.stderr().contains("watching 2 .py files under"),
            "{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(&lib, "def answer():\n    return 'second'\n").unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || s.get("/").text() == "second"),
            "{server}: {}",
            s.stderr()
        );
        assert!(
            s.stderr()
                .contains(&format!("{} changed: restarting the app", lib.display())),
            "{}",
            s.stderr()
        );
    }
}

/// --setup-only writes a setup that its own scripts start and stop, and
/// whose systemd unit systemd accepts.
#[test]
fn setup_only_writes_a_setup_that_runs() {
    let dir = project("cmd-setup", &[("hello.py", HELLO)]);
    for server in ["nginx", "apache"] {
        let port = free_port().to_string();
        let target = dir.join(format!("setup-{server}"));
        let (code, out, err) = run(
            &dir,
            &[
                "serve",
                "hello.py",
                "--server",
                server,
                "--port",
                &port,
                "--setup-only",
                target.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{err}");
        for f in [
            "start",
            "stop",
            "reload",
            "configtest",
            "oxwsgi-app.service",
        ] {
            assert!(out.contains(target.join(f).to_str().unwrap()), "{f}: {out}");
        }
        let script = |name: &str| {
            let out = attack::as_user(USER, target.join(name).to_str().unwrap())
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                oxwsgi_e2e::output_text(&out)
            );
        };
        script("configtest");
        script("start");
        let port: u16 = port.parse().unwrap();
        assert!(wait_until(Duration::from_secs(10), || !refused(port)));
        assert_eq!(http::get(port, "/set").text(), "hello set");
        script("reload");
        assert_eq!(http::get(port, "/again").text(), "hello again");
        script("stop");
        assert!(
            wait_until(Duration::from_secs(10), || refused(port)),
            "{server}: stopped"
        );
        let unit = target.join("oxwsgi-app.service");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze (build/deps.sh installs systemd)");
        assert!(
            out.status.success(),
            "systemd-analyze verify: {}",
            oxwsgi_e2e::output_text(&out)
        );
    }
}

/// `oxwsgi check`: what loads, and what does not with its traceback.
#[test]
fn check_reports_what_stops_an_app() {
    let dir = project(
        "cmd-check",
        &[
            ("hello.py", HELLO),
            (
                "broken.py",
                "def f():\n    raise ValueError('at import')\nf()\n",
            ),
        ],
    );
    let (code, _, err) = run(&dir, &["check", "hello.py"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("oxwsgi: hello.py loads: nginx would serve it"),
        "{err}"
    );
    let (code, _, err) = run(&dir, &["check", "broken.py"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Traceback (most recent call last):"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(
        err.trim_end()
            .ends_with("cannot load: ValueError: at import"),
        "{err}"
    );
}

/// A command killed outright takes its server with it, and an app that
/// kills its process is survived: the server goes on, and stops clean.
#[test]
fn a_killed_command_or_a_crashing_app_leaves_nothing() {
    let dir = project(
        "cmd-crash",
        &[(
            "crash.py",
            "import os\n\
            def application(environ, start_response):\n\
            \x20   if environ['PATH_INFO'] == '/crash':\n\
            \x20       os._exit(3)\n\
            \x20   start_response('200 OK', [])\n\
            \x20   return [b'alive']\n",
        )],
    );
    for args in [&["crash.py"][..], &["crash.py", "--group"][..]] {
        let mut s = Served::start(&dir, args);
        assert_eq!(s.get("/").text(), "alive");
        // The worker (or daemon) dies under the request: no answer.
        let crash = http::Request::get("/crash").to_bytes(s.port);
        let _ = http::send(s.port, &crash, false);
        assert!(
            wait_until(Duration::from_secs(10), || s.get("/").text() == "alive"),
            "{args:?}: {}",
            s.stderr()
        );
        assert_eq!(s.stop(libc::SIGTERM), 0);
        s.assert_nothing_left();
    }
    let mut s = Served::start(&dir, &["crash.py", "--group"]);
    assert_eq!(s.get("/").text(), "alive");
    s.see_tree();
    let _ = s.stop(libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(10), || s
            .tree
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())),
        "the server outlived its command"
    );
    // Killed, the command could not remove its directory.
    let _ = std::fs::remove_dir_all(&s.root);
}

/// --health-url: readiness and liveness on both servers; on both a stop
/// (SIGTERM to the command) turns readiness 503 for --drain-time while the
/// app is still served, then everything stops.
#[test]
fn health_urls_and_the_drain_before_a_stop() {
    let dir = project("cmd-health", &[("hello.py", HELLO)]);
    for server in ["nginx", "apache"] {
        let s = Served::start(
            &dir,
            &["hello.py", "--server", server, "--health-url", "/healthz"],
        );
        let r = s.get("/healthz");
        assert_eq!((r.status, r.text().as_str()), (200, "ready\n"), "{server}");
        assert_eq!(s.get("/healthz/live").text(), "live\n", "{server}");
        assert_eq!(s.get("/x").text(), "hello x", "{server}");
    }
    for server in ["nginx", "apache"] {
        let mut s = Served::start(
            &dir,
            &[
                "hello.py",
                "--server",
                server,
                "--health-url",
                "/healthz",
                "--drain-time",
                "2",
            ],
        );
        assert_eq!(s.get("/healthz").status, 200);
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        // SAFETY: signalling the command this test started, by its PID.
        unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
        assert!(
            wait_until(Duration::from_secs(1), || s.get("/healthz").status == 503),
            "{server}: {}",
            s.stderr()
        );
        assert_eq!(
            s.get("/still").text(),
            "hello still",
            "{server}: served while draining"
        );
        assert_eq!(s.stop(libc::SIGTERM), 0, "{}", s.stderr());
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
            "{server}: {took:?}"
        );
        assert!(
            s.stderr().contains("readiness answers 503 for 2 s first"),
            "{}",
            s.stderr()
        );
        s.assert_nothing_left();
    }
}

/// --host 0.0.0.0 listens everywhere (the URL shown is loopback's), and
/// --log-to-terminal puts the server's error log, at --log-level, on the
/// command's stderr.
#[test]
fn host_and_logging_options() {
    let dir = project("cmd-logging", &[("hello.py", HELLO)]);
    for server in ["nginx", "apache"] {
        let s = Served::start(
            &dir,
            &[
                "hello.py",
                "--server",
                server,
                "--host",
                "0.0.0.0",
                "--log-to-terminal",
                "--log-level",
                "info",
            ],
        );
        assert!(
            s.stderr()
                .contains(&format!("on http://127.0.0.1:{}/", s.port)),
            "{}",
            s.stderr()
        );
        assert!(
            !s.stderr().contains("error log: "),
            "no file: {}",
            s.stderr()
        );
        assert_eq!(s.get("/t").text(), "hello t");
        assert!(
            wait_until(Duration::from_secs(5), || s
                .stderr()
                .contains("hello.py: loaded")),
            "{server}: the server's log on the terminal: {}",
            s.stderr()
        );
    }
}

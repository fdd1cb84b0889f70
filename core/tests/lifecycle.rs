//! The interpreter's life in a worker process: start with an explicit config
//! (virtualenvs, python_path, an empty environment), and shutdown (atexit,
//! bounded by stuck threads). Python starts once per process, so every case
//! runs in a child process of this binary.
//!
//! harness = false: `main` dispatches. `--child NAME` runs one case in this
//! process; otherwise each case (or the one named by `--exact NAME`, as
//! nextest asks) runs in a child. `--list` answers nextest's listing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oxwsgi_core::testing::{MemoryRequest, serve};
use oxwsgi_core::{App, AppOptions, AppSpec, Interpreter, InterpreterConfig};

type Case = fn(&Path);

fn cases() -> BTreeMap<&'static str, Case> {
    let mut m: BTreeMap<&'static str, Case> = BTreeMap::new();
    m.insert("venv_site_packages_are_used", venv_site_packages_are_used);
    m.insert(
        "venv_for_another_python_is_refused",
        venv_for_another_python_is_refused,
    );
    m.insert("missing_home_is_refused", missing_home_is_refused);
    m.insert(
        "empty_environment_gets_utf8_and_no_signal_handlers",
        empty_environment,
    );
    m.insert("python_path_entries_and_pth_files", python_path_entries);
    m.insert("shutdown_runs_atexit_handlers", shutdown_runs_atexit);
    m.insert("shutdown_is_bounded_by_stuck_threads", shutdown_is_bounded);
    m.insert("started_twice_is_refused", started_twice_is_refused);
    m
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cases = cases();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let name = &args[i + 1];
        let dir = PathBuf::from(&args[i + 2]);
        init_logger();
        (cases[name.as_str()])(&dir);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for name in cases.keys() {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args
        .iter()
        .position(|a| a == "--exact")
        .and_then(|i| args.get(i + 1))
        .or_else(|| args.iter().skip(1).find(|a| !a.starts_with('-')));
    let (mut passed, mut failed) = (0, 0);
    for name in cases.keys() {
        if exact.is_some_and(|e| !name.contains(e.as_str())) {
            continue;
        }
        match run_in_child(name) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(why) => {
                println!("test {name} ... FAILED\n{why}");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn run_in_child(name: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("oxwsgi-life-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--child").arg(name).arg(&dir);
    if name.starts_with("empty_environment") {
        cmd.env_clear();
    }
    let start = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "child failed ({}):\n{stdout}\n{stderr}",
            out.status
        ));
    }
    // Cases that check what happens after the child's Python is gone.
    let after = match name {
        "shutdown_runs_atexit_handlers" => check_atexit(&dir, &stderr),
        "shutdown_is_bounded_by_stuck_threads" => check_bounded(&dir, &stderr, elapsed),
        _ => Ok(()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    after
}

static LOG: Mutex<()> = Mutex::new(());

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let _g = LOG.lock();
        eprintln!("{} {} {}", r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

fn init_logger() {
    log::set_logger(&Stderr).unwrap();
    log::set_max_level(log::LevelFilter::Info);
}

fn script(dir: &Path, body: &str) -> App {
    let path = dir.join("wsgi.py");
    std::fs::write(&path, body).unwrap();
    App::new(AppOptions::new(
        AppSpec::parse(path.to_str().unwrap(), None).unwrap(),
    ))
}

fn text_of(app: &App, uri: &str) -> String {
    let (resp, _) = serve(app, MemoryRequest::get(uri));
    assert_eq!(resp.status(), 200, "{}", resp.text());
    resp.text()
}

const SHOW: &str = "import sys\n\ndef application(environ, start_response):\n    \
    start_response('200 OK', [])\n    return [repr(eval(environ['QUERY_STRING'].replace('%20', ' '))).encode()]\n";

fn make_venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let status = Command::new(env!("OXWSGI_BUILD_PYTHON"))
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python -m venv runs");
    assert!(status.success(), "creating a venv failed");
    venv
}

fn venv_site_packages_are_used(dir: &Path) {
    let venv = make_venv(dir);
    let (major, minor) = oxwsgi_core::python::interpreter::embedded_version();
    let site = venv.join(format!("lib/python{major}.{minor}/site-packages"));
    std::fs::write(site.join("venv_marker.py"), "WHERE = 'inside the venv'\n").unwrap();
    let config = InterpreterConfig {
        python_home: Some(venv.clone()),
        ..Default::default()
    };
    let _py = Interpreter::start(config).expect("starts with a venv home");
    let app = script(dir, SHOW);
    assert_eq!(
        text_of(&app, "/?__import__('venv_marker').WHERE"),
        "'inside the venv'"
    );
    assert_eq!(
        text_of(&app, "/?sys.prefix"),
        format!("{:?}", venv.to_str().unwrap()).replace('"', "'")
    );
    // The standard library still comes from the base interpreter.
    assert_eq!(text_of(&app, "/?__import__('json').dumps([1])"), "'[1]'");
}

fn venv_for_another_python_is_refused(dir: &Path) {
    let venv = dir.join("oldvenv");
    std::fs::create_dir_all(&venv).unwrap();
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /usr/bin\nversion = 3.9.2\n",
    )
    .unwrap();
    let err = Interpreter::start(InterpreterConfig {
        python_home: Some(venv.clone()),
        ..Default::default()
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(venv.to_str().unwrap()), "{msg}");
    assert!(msg.contains("virtualenv for Python 3.9"), "{msg}");
    let (major, minor) = oxwsgi_core::python::interpreter::embedded_version();
    assert!(
        msg.contains(&format!("python{major}.{minor} -m venv")),
        "{msg}"
    );
}

fn missing_home_is_refused(dir: &Path) {
    let home = dir.join("nope");
    let msg = Interpreter::start(InterpreterConfig {
        python_home: Some(home.clone()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains(home.to_str().unwrap()) && msg.contains("does not exist"),
        "{msg}"
    );
    // The refusal left the process able to start Python properly.
    let _py = Interpreter::start(InterpreterConfig::default()).expect("starts after a refusal");
}

fn empty_environment(dir: &Path) {
    assert!(
        std::env::var_os("PATH").is_none(),
        "the parent cleared the environment"
    );
    // The "server" ignores SIGINT; Python must leave that alone.
    // SAFETY: setting SIG_IGN for SIGINT in a single-threaded test process.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let _py = Interpreter::start(InterpreterConfig::default()).expect("starts");
    let app = script(dir, SHOW);
    assert_eq!(text_of(&app, "/?sys.getfilesystemencoding()"), "'utf-8'");
    assert_eq!(text_of(&app, "/?sys.flags.utf8_mode"), "1");
    // An app that tries to take a signal is ignored, with a log line; as
    // under mod_wsgi, the call returns the handler it was given ...
    assert_eq!(
        text_of(
            &app,
            "/?__import__('signal').signal(15,%20print)%20is%20print"
        ),
        "True"
    );
    // ... which is not installed.
    assert_eq!(
        text_of(&app, "/?__import__('signal').getsignal(15)%20is%20print"),
        "False"
    );
    assert_eq!(
        oxwsgi_core::python::interpreter::sigint_handler(),
        libc::SIG_IGN,
        "SIGINT changed"
    );
    assert_eq!(text_of(&app, "/?open(__file__).read()[:6]"), "'import'");
}

fn python_path_entries(dir: &Path) {
    let extra = dir.join("extra");
    let pthdir = dir.join("viapth");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::create_dir_all(&pthdir).unwrap();
    std::fs::write(extra.join("extra_mod.py"), "X = 'extra'\n").unwrap();
    std::fs::write(extra.join("more.pth"), format!("{}\n", pthdir.display())).unwrap();
    std::fs::write(pthdir.join("pth_mod.py"), "X = 'pth'\n").unwrap();
    let _py = Interpreter::start(InterpreterConfig {
        python_path: vec![extra],
        ..Default::default()
    })
    .expect("starts");
    let app = script(dir, SHOW);
    assert_eq!(text_of(&app, "/?__import__('extra_mod').X"), "'extra'");
    assert_eq!(text_of(&app, "/?__import__('pth_mod').X"), "'pth'");
}

fn atexit_app(dir: &Path, extra: &str) -> App {
    let marker = dir.join("atexit-ran");
    script(
        dir,
        &format!(
            "import atexit, threading, time\n\
             def _done():\n    open({marker:?}, 'w').write('yes')\n\
             atexit.register(_done)\n{extra}\n\
             def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n",
            marker = marker.to_str().unwrap()
        ),
    )
}

fn shutdown_runs_atexit(dir: &Path) {
    let py = Interpreter::start(InterpreterConfig::default()).expect("starts");
    let app = atexit_app(dir, "");
    assert_eq!(text_of(&app, "/"), "ok");
    py.shutdown();
    eprintln!("shutdown returned");
}

fn check_atexit(dir: &Path, stderr: &str) -> Result<(), String> {
    if !dir.join("atexit-ran").exists() {
        return Err(format!("atexit handler did not run:\n{stderr}"));
    }
    if !stderr.contains("shutdown returned") {
        return Err(format!("shutdown did not return:\n{stderr}"));
    }
    Ok(())
}

fn shutdown_is_bounded(dir: &Path) {
    let py = Interpreter::start(InterpreterConfig {
        shutdown_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .expect("starts");
    let app = atexit_app(
        dir,
        "threading.Thread(target=time.sleep, args=(3600,), name='stuck-worker').start()",
    );
    assert_eq!(text_of(&app, "/"), "ok");
    py.shutdown();
    eprintln!("shutdown returned");
    // A stuck non-daemon thread must not keep the worker alive either.
    std::process::exit(0);
}

fn check_bounded(dir: &Path, stderr: &str, elapsed: Duration) -> Result<(), String> {
    check_atexit(dir, stderr)?;
    if !stderr.contains("stuck-worker") || !stderr.contains("still running after 1s") {
        return Err(format!("no warning naming the stuck thread:\n{stderr}"));
    }
    if elapsed > Duration::from_secs(20) {
        return Err(format!("shutdown took {elapsed:?}"));
    }
    Ok(())
}

fn started_twice_is_refused(_: &Path) {
    let _py = Interpreter::start(InterpreterConfig::default()).expect("starts");
    let msg = Interpreter::start(InterpreterConfig::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("already running"), "{msg}");
}

//! Shared by the core's integration tests: one interpreter per test binary,
//! a logger that records what the core logs, and the fixture apps.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use oxwsgi_core::testing::{MemoryRequest, MemoryResponse, serve};
use oxwsgi_core::{App, AppOptions, AppSpec, Interpreter, InterpreterConfig, Outcome};

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        if std::env::var_os("OXWSGI_TEST_LOG").is_some() {
            eprintln!("{line}");
        }
        LOGS.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// Log lines recorded so far that contain `needle`.
pub fn logs_with(needle: &str) -> Vec<String> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// The repository's top directory.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/apps").join(name).canonicalize().unwrap()
}

/// Starts Python for this test binary (once).
pub fn python() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        log::set_logger(&Recorder).expect("logger set once");
        log::set_max_level(log::LevelFilter::Trace);
        let config = InterpreterConfig {
            python_path: vec![repo().join("tests/apps")],
            ..InterpreterConfig::default()
        };
        // The interpreter lives until the test process exits.
        std::mem::forget(Interpreter::start(config).expect("python starts"));
    });
}

pub fn app_with(target: &str, f: impl FnOnce(&mut AppOptions)) -> App {
    python();
    let mut opts = AppOptions::new(AppSpec::parse(target, None).unwrap());
    f(&mut opts);
    App::new(opts)
}

/// The shared behaviour app, mounted at the root.
pub fn cases() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| app_with(fixture("cases.py").to_str().unwrap(), |_| {}))
}

pub fn get(app: &App, uri: &str) -> (MemoryResponse, Outcome) {
    serve(app, MemoryRequest::get(uri))
}

//! `oxwsgi check`: an app imported the way a server's Python imports it
//! (the same loader, python path and messages), in the Python this process
//! runs: a virtualenv's interpreter that oxwsgi's daemon extension was
//! loaded into, as a process group's daemon is. What stops the app goes to
//! standard error, one message a line, errors prefixed `error: `.

use std::io::Write;
use std::path::PathBuf;

use crate::{App, AppOptions, AppSpec, Interpreter};

/// Imports `target` (a script path or `module:callable`, with `callable`
/// the default name) with `python_path` added as the server adds it. The
/// exit status: 0 loaded, 1 not.
pub fn app(target: &str, callable: Option<&str>, python_path: Vec<PathBuf>) -> i32 {
    if log::set_boxed_logger(Box::new(Plain)).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let spec = match AppSpec::parse(target, callable) {
        Ok(s) => s,
        Err(e) => {
            log::error!(target: "oxwsgi", "{e}");
            return 1;
        }
    };
    let app = App::new(AppOptions::new(spec));
    match Interpreter::adopt(python_path, [&app]) {
        Ok(_) if app.load_failed() => 1,
        Ok(_) => 0,
        Err(e) => {
            log::error!(target: "oxwsgi", "{e}");
            1
        }
    }
}

/// The messages without a server's log format: the command shows them.
struct Plain;

impl log::Log for Plain {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            _ => "info",
        };
        // One write a line, as the servers' logs.
        let line = format!("{level}: {}\n", r.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

//! The worker's Python: configuration, validation of `python_home`, start
//! (after fork, in a worker process) and bounded shutdown.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

use crate::python::embed;
use crate::python::logstream::{LogStream, StreamKind};
use crate::sync::Recover;

/// What a server tells the core about the interpreter of its workers.
#[derive(Clone, Debug)]
pub struct InterpreterConfig {
    /// A virtualenv (has `pyvenv.cfg`) or a Python prefix.
    pub python_home: Option<PathBuf>,
    /// Extra module directories, added like `site.addsitedir` (so `.pth`
    /// files in them work), in order.
    pub python_path: Vec<PathBuf>,
    /// Log level of lines printed to `sys.stdout`.
    pub stdout_level: log::Level,
    /// Log level of lines written to `sys.stderr` and `wsgi.errors`.
    pub stderr_level: log::Level,
    /// How long shutdown waits for non-daemon Python threads.
    pub shutdown_timeout: Duration,
}

impl Default for InterpreterConfig {
    fn default() -> Self {
        InterpreterConfig {
            python_home: None,
            python_path: Vec::new(),
            stdout_level: log::Level::Info,
            stderr_level: log::Level::Error,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the interpreter could not start. The message names the path and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

/// What a `python_home` turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// A virtualenv: Python starts as its `bin/python3`, and `site` picks up
    /// the venv's site-packages from `pyvenv.cfg`.
    Venv { dir: PathBuf, program: PathBuf },
    /// A Python installation prefix (`PYTHONHOME`).
    Prefix { dir: PathBuf },
}

/// The process's current SIGINT handler (for checks that Python left the
/// server's signal handling alone).
pub fn sigint_handler() -> usize {
    embed::sigint_handler()
}

/// Whether the calling thread holds the GIL, for tests.
pub fn holds_gil() -> bool {
    embed::holds_gil()
}

/// How many Python thread states exist (one per thread that ran Python).
pub fn thread_state_count(py: Python<'_>) -> usize {
    embed::thread_state_count(py)
}

pub use crate::python::embed::embedded_version;

/// Decides what `dir` is and whether this build can run it.
pub fn inspect_home(dir: &Path, running: (u32, u32)) -> Result<Home, InitError> {
    let (maj, min) = running;
    if !dir.is_absolute() {
        return Err(InitError(format!(
            "python home {} must be an absolute path",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(InitError(format!(
            "python home {} does not exist or is not a directory: create the virtualenv \
             with `python{maj}.{min} -m venv {}` or fix the path",
            dir.display(),
            dir.display()
        )));
    }
    let cfg = dir.join("pyvenv.cfg");
    if let Ok(text) = std::fs::read_to_string(&cfg) {
        let version = venv_version(&text).ok_or_else(|| {
            InitError(format!(
                "{} has no `version` line: recreate the virtualenv with `python{maj}.{min} -m venv {}`",
                cfg.display(),
                dir.display()
            ))
        })?;
        if version != running {
            return Err(InitError(format!(
                "python home {} is a virtualenv for Python {}.{}, but oxwsgi embeds Python \
                 {maj}.{min}: recreate it with `python{maj}.{min} -m venv {}`",
                dir.display(),
                version.0,
                version.1,
                dir.display()
            )));
        }
        return Ok(Home::Venv {
            dir: dir.to_path_buf(),
            program: dir.join("bin").join("python3"),
        });
    }
    let stdlib = dir.join("lib").join(format!("python{maj}.{min}"));
    if stdlib.join("os.py").is_file() {
        return Ok(Home::Prefix {
            dir: dir.to_path_buf(),
        });
    }
    Err(InitError(format!(
        "python home {} is neither a virtualenv (no pyvenv.cfg) nor a Python {maj}.{min} \
         prefix (no {}): point it at a venv made with `python{maj}.{min} -m venv`",
        dir.display(),
        stdlib.display()
    )))
}

/// `(major, minor)` from a pyvenv.cfg's `version` or `version_info` line.
fn venv_version(cfg: &str) -> Option<(u32, u32)> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        let key = key.trim();
        if key != "version" && key != "version_info" {
            return None;
        }
        let mut parts = value.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    })
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// The running interpreter of this process. Dropping it does nothing: shutdown
/// is explicit (`shutdown`), because it must run on the starting thread after
/// the server has stopped its request threads.
#[derive(Debug)]
pub struct Interpreter {
    config: InterpreterConfig,
    /// Python was started by the program this process runs (`adopt`), not
    /// by oxwsgi: that program finalises it.
    adopted: bool,
}

impl Interpreter {
    /// Starts Python the way both servers do in a worker process (an nginx
    /// worker, an Apache child): the heap tuned for bursts of request
    /// bodies, `print()` and stderr logged at error level (visible at the
    /// servers' default levels), a thread state for the calling thread,
    /// SIGCHLD left to the children's waiters (`embed::own_children`), and
    /// `apps` loaded before the first request.
    pub fn start_in_worker<'a>(
        python_home: Option<PathBuf>,
        python_path: Vec<PathBuf>,
        apps: impl IntoIterator<Item = &'a crate::App>,
    ) -> Result<Interpreter, InitError> {
        embed::tune_heap();
        if embed::own_children() {
            log::info!(
                target: "oxwsgi",
                "SIGCHLD set to its default in this worker: the processes an app starts \
                 are the app's to wait for (the server's handler reaped them all)"
            );
        }
        let interpreter = Interpreter::start(worker_config(python_home, python_path))?;
        Ok(interpreter.with_apps(apps))
    }

    /// Takes over the Python this process already runs (a group's daemon
    /// that became its virtualenv's interpreter, with oxwsgi loaded into it
    /// as an extension module), set up as `start_in_worker` sets up the
    /// Python it starts: `print()` and stderr to the log, the server's
    /// signal handling kept (`signal.signal()` a logged no-op), the python
    /// path added, `apps` loaded. Call on Python's main thread, detached.
    pub fn adopt<'a>(
        python_path: Vec<PathBuf>,
        apps: impl IntoIterator<Item = &'a crate::App>,
    ) -> Result<Interpreter, InitError> {
        embed::tune_heap();
        if STARTED.swap(true, Ordering::AcqRel) {
            return Err(InitError(
                "Python was already set up in this process".into(),
            ));
        }
        let config = worker_config(None, python_path);
        Python::attach(|py| setup(py, &config, crate::python::app_group::GLOBAL))
            .map_err(|e| InitError(format!("cannot set up Python: {e}")))?;
        *GROUP_CONFIG.lock().recover() = Some(config.clone());
        crate::python::app_group::set_up_with(set_up_group);
        let interpreter = Interpreter {
            config,
            adopted: true,
        };
        Ok(interpreter.with_apps(apps))
    }

    /// A thread state for the calling thread, and `apps` loaded.
    fn with_apps<'a>(self, apps: impl IntoIterator<Item = &'a crate::App>) -> Interpreter {
        embed::ensure_thread_state();
        Python::attach(|py| {
            for app in apps {
                app.preload(py);
            }
        });
        self
    }

    /// Starts Python in this (worker) process. Once per process.
    pub fn start(config: InterpreterConfig) -> Result<Interpreter, InitError> {
        let home = match &config.python_home {
            Some(dir) => Some(inspect_home(dir, embedded_version())?),
            None => None,
        };
        if STARTED.swap(true, Ordering::AcqRel) {
            return Err(InitError(
                "Python is already running in this process".into(),
            ));
        }
        let default_program = PathBuf::from(env!("OXWSGI_BUILD_PYTHON"));
        let (program_name, home): (&Path, _) = match &home {
            Some(Home::Venv { program, .. }) => (program, None),
            Some(Home::Prefix { dir }) => (&default_program, Some(dir.as_path())),
            None => (&default_program, None),
        };
        let settings = python_settings();
        let params = embed::StartParams {
            program_name,
            home,
            optimize: settings.optimize,
            write_bytecode: settings.write_bytecode,
            hash_seed: settings.hash_seed,
        };
        embed::start(&params).map_err(|e| InitError(format!("cannot start Python: {e}")))?;
        Python::attach(|py| setup(py, &config, crate::python::app_group::GLOBAL))
            .map_err(|e| InitError(format!("cannot set up Python: {e}")))?;
        *GROUP_CONFIG.lock().recover() = Some(config.clone());
        crate::python::app_group::set_up_with(set_up_group);
        Ok(Interpreter {
            config,
            adopted: false,
        })
    }

    pub fn config(&self) -> &InterpreterConfig {
        &self.config
    }

    /// Runs atexit handlers and finalises Python, waiting at most
    /// `shutdown_timeout` for non-daemon threads. When threads are still
    /// running after that, the atexit handlers run but the interpreter is left
    /// as is (the process is about to exit), so a stuck thread cannot hang the
    /// worker's exit. An adopted Python is never finalised here (its
    /// program is still running): its atexit handlers run, and the caller
    /// ends the process.
    pub fn shutdown(self) {
        let timeout = self.config.shutdown_timeout.as_secs_f64();
        embed::ensure_thread_state();
        // Application groups end first, each in its interpreter; Python
        // then stays as it is to the process's exit (`app_group`).
        let groups = crate::python::app_group::made();
        for (name, interp) in &groups {
            Python::attach(|py| {
                crate::python::app_group::within_interpreter(py, Some(*interp), |py| {
                    end_group(py, name, timeout)
                })
            });
        }
        let stuck = Python::attach(|py| -> PyResult<Vec<String>> {
            let f = py.import("oxwsgi_support")?.getattr("join_threads")?;
            f.call1((timeout,))?.extract()
        });
        match stuck {
            Ok(names) if names.is_empty() && !self.adopted && groups.is_empty() => {
                if let Err(e) = embed::finalize() {
                    log::warn!(target: "oxwsgi", "Python shutdown: {e}");
                }
            }
            Ok(names) => {
                if !names.is_empty() {
                    log::warn!(
                        target: "oxwsgi",
                        "Python threads still running after {timeout}s ({}): running atexit \
                         handlers and leaving the interpreter to process exit",
                        names.join(", ")
                    );
                }
                Python::attach(|py| {
                    let r = py
                        .import("atexit")
                        .and_then(|m| m.call_method0("_run_exitfuncs"));
                    if let Err(e) = r {
                        crate::python::traceback::log_py_err(py, &e, "atexit handlers");
                    }
                    flush_streams(py);
                });
            }
            Err(e) => {
                Python::attach(|py| crate::python::traceback::log_py_err(py, &e, "shutdown"));
                if !self.adopted {
                    let _ = embed::finalize();
                }
            }
        }
    }
}

/// An application group's end: its threads joined (at most `timeout`
/// seconds), its atexit handlers run, its streams flushed.
fn end_group(py: Python<'_>, name: &str, timeout: f64) {
    let joined = py
        .import("oxwsgi_support")
        .and_then(|m| m.call_method1("join_threads", (timeout,)))
        .and_then(|stuck| stuck.extract::<Vec<String>>());
    match joined {
        Ok(stuck) if !stuck.is_empty() => log::warn!(
            target: "oxwsgi",
            "application group {name:?}: threads still running after {timeout}s ({}); \
             running its atexit handlers anyway",
            stuck.join(", ")
        ),
        Ok(_) => {}
        Err(e) => {
            crate::python::traceback::log_py_err(py, &e, format!("application group {name:?}"))
        }
    }
    let r = py
        .import("atexit")
        .and_then(|m| m.call_method0("_run_exitfuncs"));
    if let Err(e) = r {
        crate::python::traceback::log_py_err(
            py,
            &e,
            format!("application group {name:?}: atexit handlers"),
        );
    }
    flush_streams(py);
}

/// A worker's Python: `print()` and stderr logged at error level (visible
/// at the servers' default levels).
fn worker_config(python_home: Option<PathBuf>, python_path: Vec<PathBuf>) -> InterpreterConfig {
    InterpreterConfig {
        python_home,
        python_path,
        stdout_level: log::Level::Error,
        stderr_level: log::Level::Error,
        ..InterpreterConfig::default()
    }
}

/// What `import mod_wsgi` gives an app under Apache, as mod_wsgi's module
/// does (`offer_mod_wsgi`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModWsgi {
    /// The process group serving this process's apps ("": embedded).
    pub process_group: String,
    /// The most processes, and threads in each, that serve its apps.
    pub maximum_processes: usize,
    pub threads_per_process: usize,
}

/// The interpreter settings a server sets for all its Pythons (Apache's
/// `WSGIPythonOptimize`, `WSGIDontWriteBytecode`, `WSGIPythonHashSeed`,
/// `WSGIPythonWarnings`), as Python's `-O`, `-B`, `PYTHONHASHSEED` and
/// `-W` set them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonSettings {
    /// 0, 1 (`-O`) or 2 (`-OO`).
    pub optimize: u8,
    pub write_bytecode: bool,
    /// `None`: random (Python's default).
    pub hash_seed: Option<u32>,
    /// Warning filters, as `-W` takes them.
    pub warnings: Vec<String>,
    /// What apps may not touch (`WSGIRestrict*`).
    pub restrict: Restrictions,
    /// `sys.setswitchinterval()` at start (`WSGISwitchInterval`, a group's
    /// `switch-interval=`); process-wide, as the GIL its interpreters
    /// share.
    pub switch_interval: Option<std::time::Duration>,
}

/// What apps may not touch, as mod_wsgi's `WSGIRestrictStdin`,
/// `WSGIRestrictStdout` and `WSGIRestrictSignal` say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restrictions {
    /// `sys.stdin`, `sys.stdout` replaced by objects any use of which
    /// raises `OSError`; by default stdin is left as is and what stdout
    /// gets is logged.
    pub stdin: bool,
    pub stdout: bool,
    /// `signal.signal()` a logged no-op (the default: the server owns
    /// signals); off leaves it to the app.
    pub signal: bool,
}

impl Default for Restrictions {
    fn default() -> Restrictions {
        Restrictions {
            stdin: false,
            stdout: false,
            signal: true,
        }
    }
}

impl Default for PythonSettings {
    fn default() -> PythonSettings {
        PythonSettings {
            optimize: 0,
            write_bytecode: true,
            hash_seed: None,
            warnings: Vec::new(),
            restrict: Restrictions::default(),
            switch_interval: None,
        }
    }
}

impl PythonSettings {
    /// The command line options of `python3` that give an interpreter these
    /// settings (the hash seed is the environment's: `PYTHONHASHSEED`).
    pub fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.optimize > 0 {
            out.push(format!("-{}", "O".repeat(self.optimize.into())));
        }
        if !self.write_bytecode {
            out.push("-B".into());
        }
        for w in &self.warnings {
            out.push(format!("-W{w}"));
        }
        out
    }
}

static SETTINGS: std::sync::Mutex<Option<PythonSettings>> = std::sync::Mutex::new(None);

/// Sets the settings of the Python this process starts next.
pub fn set_python_settings(s: PythonSettings) {
    *SETTINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(s);
}

/// The settings of this process's Python.
pub fn python_settings() -> PythonSettings {
    SETTINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_default()
}

/// The mod_wsgi version whose module oxwsgi offers (the interface of
/// Debian 12's).
pub const MOD_WSGI_VERSION: (u32, u32, u32) = (4, 9, 4);

static MOD_WSGI: std::sync::Mutex<Option<ModWsgi>> = std::sync::Mutex::new(None);

/// Makes `import mod_wsgi` work in the Python this process starts next
/// (Apache's children and daemons), before its apps load.
pub fn offer_mod_wsgi(info: ModWsgi) {
    *MOD_WSGI
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info);
}

/// Puts the `mod_wsgi` module in `sys.modules`, when offered.
fn install_mod_wsgi(py: Python<'_>, modules: &Bound<'_, PyAny>, group: &str) -> PyResult<()> {
    let Some(info) = MOD_WSGI
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    else {
        return Ok(());
    };
    let m = pyo3::types::PyModule::new(py, "mod_wsgi")?;
    m.setattr(
        "__doc__",
        "mod_wsgi's module as oxwsgi offers it: the process group, application group, \
         version and process limits (no metrics or event functions).",
    )?;
    m.setattr("version", MOD_WSGI_VERSION)?;
    m.setattr("process_group", info.process_group)?;
    m.setattr("application_group", group)?;
    m.setattr("maximum_processes", info.maximum_processes)?;
    m.setattr("threads_per_process", info.threads_per_process)?;
    m.setattr("oxwsgi", true)?;
    modules.set_item("mod_wsgi", m)
}

const SUPPORT: &str = include_str!("support.py");
const PUBLIC: &str = include_str!("oxwsgi.py");

/// The configuration the main interpreter was set up with, for the
/// application groups' interpreters.
static GROUP_CONFIG: std::sync::Mutex<Option<InterpreterConfig>> = std::sync::Mutex::new(None);

/// Sets up an application group's new interpreter (current on this
/// thread) as the main one was.
fn set_up_group(py: Python<'_>, group: &str) -> PyResult<()> {
    let config = GROUP_CONFIG.lock().recover().clone().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("the main interpreter is not set up")
    })?;
    setup(py, &config, group)
}

/// Sets up the interpreter current on this thread: the main one (`group`
/// `""`) or an application group's.
fn setup(py: Python<'_>, config: &InterpreterConfig, group: &str) -> PyResult<()> {
    // `threading` must first be imported on the starting thread, which it then
    // takes as the main thread (shutdown runs there too).
    py.import("threading")?;
    if group == crate::python::app_group::GLOBAL {
        // The core's types and shared objects are made here, in the main
        // interpreter, which outlives every group's.
        let _ = (
            py.get_type::<crate::response::start_response::StartResponse>(),
            py.get_type::<crate::response::start_response::Write>(),
            py.get_type::<crate::request::input::Input>(),
            py.get_type::<crate::response::file_wrapper::FileWrapper>(),
            py.get_type::<LogStream>(),
        );
        crate::request::environ::warm(py);
        embed::make_runner(py)?;
    }
    let sys = py.import("sys")?;
    sys.setattr(
        "stdout",
        Py::new(py, LogStream::new(StreamKind::Stdout, config.stdout_level))?,
    )?;
    sys.setattr(
        "stderr",
        Py::new(py, LogStream::new(StreamKind::Stderr, config.stderr_level))?,
    )?;
    let support = install_modules(py, &sys, group)?;
    let settings = python_settings();
    apply_settings(py, &sys, group, &settings)?;
    crate::python::traceback::set_error_stream(py, config.stderr_level)?;
    restrict(py, &sys, &support, &settings)?;
    add_python_path(py, &config.python_path)
}

/// The modules the core puts in `sys.modules`: its support code, `oxwsgi`
/// (the exceptions an app may catch) and `mod_wsgi`; the support module.
fn install_modules<'py>(
    py: Python<'py>,
    sys: &Bound<'py, pyo3::types::PyModule>,
    group: &str,
) -> PyResult<Bound<'py, pyo3::types::PyModule>> {
    let modules = sys.getattr("modules")?;
    let support = pyo3::types::PyModule::from_code(
        py,
        &std::ffi::CString::new(SUPPORT).expect("no NUL in support code"),
        c"<oxwsgi_support>",
        c"oxwsgi_support",
    )?;
    modules.set_item("oxwsgi_support", &support)?;
    let public = pyo3::types::PyModule::from_code(
        py,
        &std::ffi::CString::new(PUBLIC).expect("no NUL in the oxwsgi module"),
        c"<oxwsgi>",
        c"oxwsgi",
    )?;
    modules.set_item("oxwsgi", &public)?;
    install_mod_wsgi(py, &modules, group)?;
    Ok(support)
}

/// The server's Python settings: the switch interval (process-wide: the
/// interpreters share the GIL, so set once, with the main interpreter) and
/// the warnings filters (as -W would have).
fn apply_settings(
    py: Python<'_>,
    sys: &Bound<'_, pyo3::types::PyModule>,
    group: &str,
    settings: &PythonSettings,
) -> PyResult<()> {
    if let (crate::python::app_group::GLOBAL, Some(interval)) = (group, settings.switch_interval) {
        sys.call_method1("setswitchinterval", (interval.as_secs_f64(),))?;
        log::info!(
            target: "oxwsgi",
            "the GIL's switch interval is {} s",
            interval.as_secs_f64()
        );
    }
    if !settings.warnings.is_empty() && !sys.getattr("warnoptions")?.is_truthy()? {
        // As -W would have: in sys.warnoptions, and in force.
        let warnings = py.import("warnings")?;
        for w in &settings.warnings {
            sys.getattr("warnoptions")?.call_method1("append", (w,))?;
            warnings.call_method1("_setoption", (w,))?;
        }
    }
    Ok(())
}

/// What an app may not touch (mod_wsgi's WSGIRestrict* switches).
fn restrict(
    py: Python<'_>,
    sys: &Bound<'_, pyo3::types::PyModule>,
    support: &Bound<'_, pyo3::types::PyModule>,
    settings: &PythonSettings,
) -> PyResult<()> {
    // The server owns signals: import `signal` now (it grabs SIGINT when first
    // imported), make signal.signal() a logged no-op, and restore SIGINT.
    if settings.restrict.signal {
        support.call_method0("restrict_signals")?;
    } else {
        py.import("signal")?;
    }
    embed::keep_server_signals();
    for (on, name) in [
        (settings.restrict.stdin, "stdin"),
        (settings.restrict.stdout, "stdout"),
    ] {
        if on {
            let restricted = support.call_method1("Restricted", (format!("sys.{name}"),))?;
            sys.setattr(name, restricted)?;
        }
    }
    Ok(())
}

/// The configured python path, as `site` adds directories (`.pth` files
/// in them are read).
fn add_python_path(py: Python<'_>, python_path: &[PathBuf]) -> PyResult<()> {
    let site = py.import("site")?;
    for dir in python_path {
        if !dir.is_dir() {
            log::warn!(
                target: "oxwsgi",
                "python path entry {} is not a directory; added anyway",
                dir.display()
            );
        }
        site.call_method1("addsitedir", (dir.as_os_str(),))?;
    }
    Ok(())
}

fn flush_streams(py: Python<'_>) {
    if let Ok(sys) = py.import("sys") {
        for name in ["stdout", "stderr"] {
            if let Ok(s) = sys.getattr(name) {
                let _ = s.call_method0("flush");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oxwsgi-home-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn venv_version_lines() {
        assert_eq!(
            venv_version("home = /usr/bin\nversion = 3.11.2\n"),
            Some((3, 11))
        );
        assert_eq!(
            venv_version("version_info = 3.12.1.final.0\n"),
            Some((3, 12))
        );
        assert_eq!(venv_version("home = /usr/bin\n"), None);
    }

    #[test]
    fn missing_home_names_path_and_fix() {
        let e = inspect_home(Path::new("/nonexistent/venv"), (3, 11)).unwrap_err();
        assert!(e.0.contains("/nonexistent/venv"), "{e}");
        assert!(e.0.contains("python3.11 -m venv"), "{e}");
    }

    #[test]
    fn relative_home_is_refused() {
        let e = inspect_home(Path::new("venv"), (3, 11)).unwrap_err();
        assert!(e.0.contains("absolute"), "{e}");
    }

    #[test]
    fn venv_for_other_python_is_refused() {
        let d = tmpdir("other");
        std::fs::write(d.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.9.2\n").unwrap();
        let e = inspect_home(&d, (3, 11)).unwrap_err();
        assert!(e.0.contains("Python 3.9"), "{e}");
        assert!(e.0.contains("recreate it with `python3.11 -m venv"), "{e}");
    }

    #[test]
    fn venv_for_this_python_is_accepted() {
        let d = tmpdir("ok");
        std::fs::write(d.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.11.2\n").unwrap();
        match inspect_home(&d, (3, 11)).unwrap() {
            Home::Venv { program, .. } => assert_eq!(program, d.join("bin/python3")),
            other => panic!("expected a venv, got {other:?}"),
        }
    }

    #[test]
    fn prefix_needs_a_stdlib() {
        let d = tmpdir("prefix");
        let e = inspect_home(&d, (3, 11)).unwrap_err();
        assert!(e.0.contains("neither a virtualenv"), "{e}");
        std::fs::create_dir_all(d.join("lib/python3.11")).unwrap();
        std::fs::write(d.join("lib/python3.11/os.py"), "").unwrap();
        assert_eq!(
            inspect_home(&d, (3, 11)).unwrap(),
            Home::Prefix { dir: d.clone() }
        );
    }

    #[test]
    fn embedded_version_is_the_build_python() {
        // The interpreter the build was configured with (cargo passes
        // PYO3_PYTHON to tests too): 3.11 on Debian 12, 3.13 on Debian 13.
        let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys; print(sys.version_info[0], sys.version_info[1])",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut v = text.split_whitespace().map(|n| n.parse::<u32>().unwrap());
        let expected = (v.next().unwrap(), v.next().unwrap());
        assert_eq!(embedded_version(), expected, "{python}");
    }
}

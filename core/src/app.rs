//! WSGI applications: where they come from (a script file or a
//! `module:callable` spec), how they are loaded and reported when they do not
//! load, and the per-app options the handler follows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::python::traceback::{error_stream, log_py_err};
use crate::response::file_wrapper::FileWrapper;
use crate::sync::Recover;

/// Where an app's callable lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSource {
    /// A script, loaded as a module of its own (`/srv/site/wsgi.py`).
    Script(PathBuf),
    /// An importable module (`mysite.wsgi`).
    Module(String),
}

/// An app to load: its source and the name of its callable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub source: AppSource,
    pub callable: String,
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

impl AppSpec {
    /// Parses a directive's target: a path (absolute, or with `/`, or ending in
    /// `.py`/`.wsgi`) is a script; `pkg.mod:callable` or `pkg.mod` a module.
    /// `callable` is the configured callable name, used when the target names none.
    pub fn parse(target: &str, callable: Option<&str>) -> Result<AppSpec, String> {
        let target = target.trim();
        if target.is_empty() {
            return Err("the app target is empty: give a script path or module:callable".into());
        }
        let default_callable = callable.unwrap_or("application");
        if !is_identifier(default_callable) {
            return Err(format!(
                "callable name {default_callable:?} is not a Python identifier"
            ));
        }
        let looks_like_path =
            target.contains('/') || target.ends_with(".py") || target.ends_with(".wsgi");
        if looks_like_path {
            let path = PathBuf::from(target);
            if !path.is_absolute() {
                return Err(format!(
                    "script path {target:?} must be absolute (e.g. /srv/site/wsgi.py)"
                ));
            }
            return Ok(AppSpec {
                source: AppSource::Script(path),
                callable: default_callable.to_string(),
            });
        }
        let (module, name) = match target.split_once(':') {
            Some((m, c)) => (m, c),
            None => (target, default_callable),
        };
        if module.is_empty() || !module.split('.').all(is_identifier) {
            return Err(format!(
                "{target:?} is neither a script path nor a module spec like package.module:callable"
            ));
        }
        if !is_identifier(name) {
            return Err(format!(
                "callable name {name:?} in {target:?} is not a Python identifier"
            ));
        }
        Ok(AppSpec {
            source: AppSource::Module(module.to_string()),
            callable: name.to_string(),
        })
    }

    /// The target as a directive gives it (a script path, or a module),
    /// without the callable.
    pub fn target(&self) -> String {
        match &self.source {
            AppSource::Script(p) => p.display().to_string(),
            AppSource::Module(m) => m.clone(),
        }
    }

    /// How logs name this app.
    pub fn display_name(&self) -> String {
        match &self.source {
            AppSource::Script(p) if self.callable == "application" => p.display().to_string(),
            AppSource::Script(p) => format!("{}:{}", p.display(), self.callable),
            AppSource::Module(m) => format!("{m}:{}", self.callable),
        }
    }
}

/// What an app is served with.
#[derive(Clone, Debug, PartialEq)]
pub struct AppOptions {
    pub spec: AppSpec,
    /// The mount point, `SCRIPT_NAME` (normalised: `""` for the root).
    pub mount: String,
    /// gzip responses for clients that accept it.
    pub gzip: bool,
    /// Inflate `Content-Encoding: gzip` request bodies ...
    pub inflate_request: bool,
    /// ... up to this many bytes (more is a 413).
    pub inflate_max: u64,
    /// `wsgi.multithread`, `wsgi.multiprocess`: how the server runs the app.
    pub multithread: bool,
    pub multiprocess: bool,
    /// Reload a script app when its file's mtime changes.
    pub reload_on_change: bool,
    /// How long the app may take for a request (`timeouts`).
    pub request_timeout: Option<std::time::Duration>,
    /// How long a request may wait for a Python thread before it is refused
    /// (the server measures the wait) ...
    pub queue_timeout: Option<std::time::Duration>,
    /// ... with this status: 503 with `Retry-After`, or 504 (mod_wsgi's
    /// daemon mode).
    pub queue_timeout_status: u16,
    /// A script loaded for what its import does (`WSGIImportScript`): it
    /// needs no callable.
    pub import_only: bool,
    /// The application group it runs in (`app_group`): `""` for the main
    /// interpreter.
    pub application_group: String,
}

impl AppOptions {
    pub fn new(spec: AppSpec) -> AppOptions {
        AppOptions {
            spec,
            mount: String::new(),
            gzip: false,
            inflate_request: false,
            inflate_max: DEFAULT_INFLATE_MAX,
            multithread: true,
            multiprocess: true,
            reload_on_change: false,
            request_timeout: None,
            queue_timeout: None,
            queue_timeout_status: 503,
            import_only: false,
            application_group: String::new(),
        }
    }
}

/// The default limit for inflated request bodies: 10 MiB.
pub const DEFAULT_INFLATE_MAX: u64 = 10 << 20;

/// A loaded app: the callable and its environ template.
pub(crate) struct Loaded {
    pub callable: Py<PyAny>,
    pub template: Py<PyDict>,
    mtime: Option<SystemTime>,
}

enum State {
    NotLoaded,
    Loaded(Arc<Loaded>),
    /// Load failed (already logged). A script is retried when its file changes.
    Failed {
        mtime: Option<SystemTime>,
    },
}

/// One WSGI application of a worker process.
pub struct App {
    options: AppOptions,
    name: String,
    /// Its slot in the server's metrics, once the process is attached.
    metrics: std::sync::OnceLock<Option<usize>>,
    state: Mutex<State>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl App {
    pub fn new(mut options: AppOptions) -> App {
        options.mount = crate::request::environ::normalize_mount(&options.mount);
        App {
            name: options.spec.display_name(),
            metrics: std::sync::OnceLock::new(),
            options,
            state: Mutex::new(State::NotLoaded),
        }
    }

    pub fn options(&self) -> &AppOptions {
        &self.options
    }

    /// This app's slot in the metrics (`None` while the process is not
    /// attached to a metrics region, or the region's app table is full).
    pub fn metrics_slot(&self) -> Option<usize> {
        crate::ops::metrics::region()?;
        *self
            .metrics
            .get_or_init(|| crate::ops::metrics::app_slot(&self.name))
    }

    /// How log lines name this app.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn script(&self) -> Option<&Path> {
        match &self.options.spec.source {
            AppSource::Script(p) => Some(p),
            AppSource::Module(_) => None,
        }
    }

    /// Whether the app's script changed on disk since it was loaded (a
    /// script app that is loaded; a stat).
    pub fn script_changed(&self) -> bool {
        let Some(path) = self.script() else {
            return false;
        };
        let loaded = match &*self.state.lock().recover() {
            State::Loaded(l) => l.mtime,
            _ => return false,
        };
        loaded.is_some() && mtime(path) != loaded
    }

    /// Whether the app's last load failed.
    pub fn load_failed(&self) -> bool {
        matches!(*self.state.lock().recover(), State::Failed { .. })
    }

    /// Loads the app now (at worker start, to fail early and warm up), in
    /// its application group's interpreter. Returns whether it is ready; a
    /// failure has been logged.
    pub fn preload(&self, py: Python<'_>) -> bool {
        match crate::python::app_group::within(py, &self.options.application_group, |py| {
            self.loaded(py).is_some()
        }) {
            Ok(ready) => ready,
            Err(e) => {
                log::error!(target: "oxwsgi", "app {}: cannot load: {e}", self.name);
                false
            }
        }
    }

    /// The loaded app, loading (or reloading) it when needed. `None` means it
    /// failed to load; the reason was logged when it failed.
    pub(crate) fn loaded(&self, py: Python<'_>) -> Option<Arc<Loaded>> {
        let mut state = self.state.lock_py_attached(py).recover();
        let current_mtime =
            if self.options.reload_on_change || matches!(*state, State::Failed { .. }) {
                self.script().and_then(mtime)
            } else {
                None
            };
        match &*state {
            State::Loaded(l) => {
                let stale = self.options.reload_on_change
                    && current_mtime.is_some()
                    && current_mtime != l.mtime;
                if !stale {
                    return Some(l.clone());
                }
                log::info!(target: "oxwsgi", "app {}: script changed, reloading", self.name);
            }
            State::Failed { mtime } => {
                if self.script().is_none() || current_mtime == *mtime {
                    return None;
                }
                log::info!(target: "oxwsgi", "app {}: script changed, retrying load", self.name);
            }
            State::NotLoaded => {}
        }
        let before = self.script().and_then(mtime);
        match self.load(py) {
            Ok(l) => {
                let l = Arc::new(Loaded { mtime: before, ..l });
                *state = State::Loaded(l.clone());
                if self.options.application_group.is_empty() {
                    log::info!(target: "oxwsgi", "app {}: loaded", self.name);
                } else {
                    log::info!(
                        target: "oxwsgi",
                        "app {}: loaded in application group {:?}",
                        self.name,
                        self.options.application_group
                    );
                }
                Some(l)
            }
            Err(()) => {
                *state = State::Failed { mtime: before };
                None
            }
        }
    }

    fn load(&self, py: Python<'_>) -> Result<Loaded, ()> {
        let context = format!("app {}: cannot load", self.name);
        let callable = match self.import(py) {
            Ok(c) => c,
            Err(LoadError::Python(e)) => {
                log_py_err(py, &e, &context);
                return Err(());
            }
            Err(LoadError::Message(m)) => {
                log::error!(target: "oxwsgi", "{context}: {m}");
                return Err(());
            }
        };
        match self.template(py) {
            Ok(template) => Ok(Loaded {
                callable,
                template,
                mtime: None,
            }),
            Err(e) => {
                log_py_err(py, &e, &context);
                Err(())
            }
        }
    }

    fn import(&self, py: Python<'_>) -> Result<Py<PyAny>, LoadError> {
        let spec = &self.options.spec;
        let support = py.import("oxwsgi_support")?;
        let module = match &spec.source {
            AppSource::Script(path) => {
                if !path.is_file() {
                    return Err(LoadError::Message(format!(
                        "script {} does not exist or is not a file",
                        path.display()
                    )));
                }
                support.call_method1("load_script", (path.as_os_str(), module_name(path)))?
            }
            AppSource::Module(name) => py.import(name.as_str())?.into_any(),
        };
        let where_ = match &spec.source {
            AppSource::Script(p) => p.display().to_string(),
            AppSource::Module(m) => format!("module {m}"),
        };
        match module.getattr(spec.callable.as_str()) {
            Ok(obj) if obj.is_callable() => Ok(obj.unbind()),
            Ok(obj) => Err(LoadError::Message(format!(
                "'{}' in {where_} is a {}, not a callable",
                spec.callable,
                crate::python::traceback::type_name(&obj)
            ))),
            Err(_) if self.options.import_only => Ok(py.None()),
            Err(_) => {
                let found: Vec<String> =
                    support.call_method1("callables", (&module,))?.extract()?;
                let hint = if found.is_empty() {
                    "it defines no callables".to_string()
                } else {
                    format!("it defines: {}", found.join(", "))
                };
                Err(LoadError::Message(format!(
                    "{where_} has no callable named '{}' ({hint}); name the right one in the \
                     server configuration (callable name, or module:callable)",
                    spec.callable
                )))
            }
        }
    }

    fn template(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let t = PyDict::new(py);
        t.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        t.set_item("wsgi.errors", error_stream(py)?)?;
        t.set_item("wsgi.multithread", self.options.multithread)?;
        t.set_item("wsgi.multiprocess", self.options.multiprocess)?;
        t.set_item("wsgi.run_once", false)?;
        t.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        t.set_item("SCRIPT_NAME", PyString::new(py, &self.options.mount))?;
        if let Some(p) = self.script() {
            t.set_item("SCRIPT_FILENAME", p.as_os_str())?;
        }
        Ok(t.unbind())
    }
}

enum LoadError {
    Python(PyErr),
    Message(String),
}

impl From<PyErr> for LoadError {
    fn from(e: PyErr) -> Self {
        LoadError::Python(e)
    }
}

/// A module name of its own for each script, so two `wsgi.py` files never
/// share a namespace (and neither shadows an importable module).
fn module_name(path: &Path) -> String {
    let mut name = String::from("_oxwsgi_");
    for c in path.to_string_lossy().chars() {
        name.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_targets() {
        let s = AppSpec::parse("/srv/site/wsgi.py", None).unwrap();
        assert_eq!(s.source, AppSource::Script("/srv/site/wsgi.py".into()));
        assert_eq!(s.callable, "application");
        let s = AppSpec::parse("/srv/site/app.wsgi", Some("app")).unwrap();
        assert_eq!(s.callable, "app");
        assert!(
            AppSpec::parse("site/wsgi.py", None)
                .unwrap_err()
                .contains("absolute")
        );
    }

    #[test]
    fn module_targets() {
        let s = AppSpec::parse("mysite.wsgi:application", None).unwrap();
        assert_eq!(s.source, AppSource::Module("mysite.wsgi".into()));
        assert_eq!(s.callable, "application");
        let s = AppSpec::parse("app", Some("make")).unwrap();
        assert_eq!(
            s,
            AppSpec {
                source: AppSource::Module("app".into()),
                callable: "make".into()
            }
        );
        let s = AppSpec::parse("pkg.mod:app", Some("ignored")).unwrap();
        assert_eq!(s.callable, "app");
    }

    #[test]
    fn bad_targets_say_why() {
        assert!(AppSpec::parse("", None).unwrap_err().contains("empty"));
        assert!(
            AppSpec::parse("my-site:app", None)
                .unwrap_err()
                .contains("module spec")
        );
        assert!(
            AppSpec::parse("pkg:1app", None)
                .unwrap_err()
                .contains("identifier")
        );
        assert!(
            AppSpec::parse("pkg", Some("not valid"))
                .unwrap_err()
                .contains("identifier")
        );
    }

    #[test]
    fn module_names_are_distinct_and_importable() {
        let a = module_name(Path::new("/srv/a/wsgi.py"));
        let b = module_name(Path::new("/srv/b/wsgi.py"));
        assert_ne!(a, b);
        assert!(is_identifier(&a));
    }
}

//! How mistakes are reported: Python tracebacks into the error log, and the
//! WSGI contract violations whose messages tell the app author what to fix.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::python::logstream::{LogStream, StreamKind};

/// Logs a Python exception with its full traceback, one log line per line,
/// each prefixed with `context` (the app and the request).
pub fn log_py_err(py: Python<'_>, err: &PyErr, context: impl std::fmt::Display) {
    for line in format_py_err(py, err).lines() {
        log::error!(target: "oxwsgi", "{context}: {line}");
    }
    if let Some(module) = refuses_sub_interpreters(py, err) {
        log::error!(
            target: "oxwsgi",
            "{context}: extension module {module} cannot be loaded in an application group's \
             sub-interpreter: run this app in the main interpreter (Apache: \
             WSGIApplicationGroup %{{GLOBAL}}; nginx: wsgi_application_group %{{GLOBAL}})"
        );
    }
}

/// The module an `ImportError` names when an extension refused to load in
/// a sub-interpreter (PyO3's modules and, from Python 3.12, single-phase
/// ones in isolated interpreters say so in the message): its name, or
/// the deepest `spec` the import machinery's frames were loading.
fn refuses_sub_interpreters(py: Python<'_>, err: &PyErr) -> Option<String> {
    if !err.is_instance_of::<pyo3::exceptions::PyImportError>(py) {
        return None;
    }
    let value = err.value(py);
    let text = value.str().ok()?.to_string();
    if !text.contains("subinterpreter") && !text.contains("sub-interpreter") {
        return None;
    }
    let named = value
        .getattr("name")
        .ok()
        .and_then(|n| n.extract::<String>().ok());
    let mut loading = None;
    let mut tb = err.traceback(py).map(Bound::into_any);
    while let Some(t) = tb.filter(|t| !t.is_none()) {
        let spec = t
            .getattr("tb_frame")
            .and_then(|f| f.getattr("f_locals"))
            .and_then(|l| l.get_item("spec"))
            .and_then(|s| s.getattr("name"))
            .and_then(|n| n.extract::<String>());
        if let Ok(name) = spec {
            loading = Some(name);
        }
        tb = t.getattr("tb_next").ok();
    }
    Some(named.or(loading).unwrap_or_else(|| format!("({text})")))
}

/// The text Python would print for `err`, traceback included.
pub fn format_py_err(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            // Python 3.11 keeps the traceback beside the exception, not always
            // on it: pass all three.
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => format!("{err}"),
    }
}

static ERRORS: PyOnceLock<Py<LogStream>> = PyOnceLock::new();

/// Creates the process-wide `wsgi.errors` stream (one object serves every
/// request: it has no per-request state).
pub(crate) fn set_error_stream(py: Python<'_>, level: log::Level) -> PyResult<()> {
    let stream = Py::new(py, LogStream::new(StreamKind::WsgiErrors, level))?;
    let _ = ERRORS.set(py, stream);
    Ok(())
}

pub(crate) fn error_stream(py: Python<'_>) -> PyResult<Py<LogStream>> {
    match ERRORS.get(py) {
        Some(s) => Ok(s.clone_ref(py)),
        None => {
            set_error_stream(py, log::Level::Error)?;
            Ok(ERRORS.get(py).expect("just set").clone_ref(py))
        }
    }
}

/// The name of a Python value's type, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

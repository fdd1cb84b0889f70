//! How mistakes are reported: Python tracebacks into the error log, and the
//! WSGI contract violations whose messages tell the app author what to fix.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::logstream::{LogStream, StreamKind};

/// Logs a Python exception with its full traceback, one log line per line,
/// each prefixed with `context` (the app and the request).
pub fn log_py_err(py: Python<'_>, err: &PyErr, context: impl std::fmt::Display) {
    for line in format_py_err(py, err).lines() {
        log::error!(target: "oxwsgi", "{context}: {line}");
    }
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

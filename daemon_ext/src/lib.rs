//! oxwsgi's process-group daemon as a Python extension module. A group's
//! daemon, forked from the server, executes its virtualenv's interpreter
//! (`python-executable`), which loads this module by path and calls
//! `serve`: everything after that is the core's
//! (`oxwsgi_core::daemon::serve_in_python`), the same daemon a forked
//! one runs with the server's embedded Python. `check` imports an app the
//! same way for the `oxwsgi` command.

use pyo3::prelude::*;

/// Serves the process group this daemon belongs to, as the handoff on
/// descriptor `handoff` describes it, until the daemon's life ends; the
/// process then exits (the exit status is returned only when it cannot
/// start).
#[pyfunction]
fn serve(py: Python<'_>, handoff: i32) -> i32 {
    py.detach(|| {
        oxwsgi_core::guard::entry("a process group's daemon", 1, || {
            oxwsgi_core::daemon::serve_in_python(handoff)
        })
    })
}

/// Imports an app as a server's Python would (`oxwsgi check`): writes
/// what stops it to standard error; the exit status (0: it loaded).
#[pyfunction]
#[pyo3(signature = (target, callable, python_path))]
fn check(
    py: Python<'_>,
    target: String,
    callable: Option<String>,
    python_path: Vec<String>,
) -> i32 {
    py.detach(|| {
        oxwsgi_core::guard::entry("oxwsgi check", 1, || {
            oxwsgi_core::check::app(
                &target,
                callable.as_deref(),
                python_path.into_iter().map(Into::into).collect(),
            )
        })
    })
}

#[pymodule]
fn oxwsgi_daemon(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)
}

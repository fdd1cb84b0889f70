//! oxwsgi's process-group daemon as a Python extension module. A group's
//! daemon, forked from the server, executes its virtualenv's interpreter
//! (`python-executable`), which loads this module by path and calls
//! `serve`: everything after that is the core's
//! (`oxwsgi_core::daemon::exec::serve_in_python`), the same daemon a forked
//! one runs with the server's embedded Python.

use pyo3::prelude::*;

/// Serves the process group this daemon belongs to, as the handoff on
/// descriptor `handoff` describes it, until the daemon's life ends; the
/// process then exits (the exit status is returned only when it cannot
/// start).
#[pyfunction]
fn serve(py: Python<'_>, handoff: i32) -> i32 {
    py.detach(|| {
        oxwsgi_core::guard::entry("a process group's daemon", 1, || {
            oxwsgi_core::daemon::exec::serve_in_python(handoff)
        })
    })
}

#[pymodule]
fn oxwsgi_daemon(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)
}

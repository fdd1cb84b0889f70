//! Requests, failing or not, leave nothing behind in Python: no traceback,
//! frame, environ or response object survives its request.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

/// Python objects the garbage collector tracks, after a full collection.
fn live_objects() -> usize {
    Python::attach(|py| -> PyResult<usize> {
        let gc = py.import("gc")?;
        gc.call_method0("collect")?;
        gc.call_method0("get_objects")?.len()
    })
    .expect("gc")
}

#[test]
fn failing_requests_leave_no_objects_behind() {
    python();
    let cycle = [
        "/raise-early",
        "/str-return",
        "/raise-late",
        "/int-status",
        "/no-content?shape=gen",
        "/short-body",
        "/echo",
        "/cookies",
    ];
    // Warm-up: caches fill (linecache's source lines for tracebacks,
    // interned strings, the log stream's buffers).
    for path in cycle.iter().cycle().take(800) {
        get(cases(), path);
    }
    let before = live_objects();
    for path in cycle.iter().cycle().take(8000) {
        get(cases(), path);
    }
    let after = live_objects();
    assert!(
        after <= before + 50,
        "{} objects more after 8000 requests ({before} -> {after})",
        after.saturating_sub(before)
    );
}

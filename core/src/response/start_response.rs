//! The `start_response` callable and its `write()` callable: the Python
//! side of the response. They check the types PEP 3333 requires and hand
//! plain strings and chunks to the `Responder`; every responder call that
//! may wait for the client goes through `without_gil`.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::python::traceback::type_name;
use crate::response::responder::{Responder, WriteError};
use crate::response::sink::Chunk;
use crate::response::{ResponseHead, check_header, parse_status};
use crate::sync::Recover;

/// `start_response(status, headers, exc_info=None)`. Owns the request's
/// `Responder` so that `write()` and the handler drive the same response.
///
/// The responder sits behind a mutex because Python may hand these objects to
/// other threads; it is locked with `lock_py_attached`, which waits without
/// the GIL, so a sink call in progress never deadlocks another thread.
#[pyclass(module = "oxwsgi", name = "StartResponse", frozen)]
pub struct StartResponse {
    responder: Mutex<Option<Responder>>,
}

impl StartResponse {
    pub(crate) fn new(responder: Responder) -> StartResponse {
        StartResponse {
            responder: Mutex::new(Some(responder)),
        }
    }

    /// The responder; `None` once the request has ended.
    pub(crate) fn lock(&self, py: Python<'_>) -> MutexGuard<'_, Option<Responder>> {
        self.responder.lock_py_attached(py).recover()
    }
}

fn ended() -> PyErr {
    PyRuntimeError::new_err("start_response used after its request ended")
}

/// Reads a status and header list from Python objects, with PEP 3333's types.
fn extract_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let Ok(status) = status.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "status must be a str like \"200 OK\", got {}",
            type_name(status)
        )));
    };
    let status_line = status.to_str()?.to_owned();
    let code = parse_status(&status_line).map_err(PyValueError::new_err)?;
    let Ok(list) = headers.cast::<PyList>() else {
        return Err(PyTypeError::new_err(format!(
            "response headers must be a list of (name, value) tuples of str, got {}",
            type_name(headers)
        )));
    };
    let mut out = Vec::with_capacity(list.len() + 2);
    for (i, item) in list.iter().enumerate() {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "response header {i} must be a (name, value) tuple of str, got {}",
                    type_name(&item)
                ))
            })?;
        let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
        let as_str = |v: &Bound<'_, PyAny>, what: &str| -> PyResult<String> {
            match v.cast::<PyString>() {
                Ok(s) => Ok(s.to_str()?.to_owned()),
                Err(_) => Err(PyTypeError::new_err(format!(
                    "response header {i} {what} must be str, got {}{}",
                    type_name(v),
                    if v.is_instance_of::<PyBytes>() {
                        ": decode it (WSGI headers are latin-1 str)"
                    } else {
                        ""
                    }
                ))),
            }
        };
        let name = as_str(&name, "name")?;
        let value = as_str(&value, "value")?;
        check_header(i, &name, &value).map_err(PyValueError::new_err)?;
        out.push((name, value));
    }
    Ok(ResponseHead {
        status: code,
        status_line,
        headers: out,
    })
}

/// Raises the exception described by an `exc_info` tuple.
fn reraise(exc_info: &Bound<'_, PyAny>) -> PyErr {
    match exc_info.cast::<PyTuple>() {
        Ok(t) if t.len() == 3 => match t.get_item(1) {
            Ok(value) if !value.is_none() => PyErr::from_value(value),
            _ => PyRuntimeError::new_err("start_response: exc_info holds no exception"),
        },
        _ => PyTypeError::new_err("exc_info must be a (type, value, traceback) tuple"),
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        slf: Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut guard = slf.get().lock(slf.py());
            let r = guard.as_mut().ok_or_else(ended)?;
            match exc_info {
                Some(info) if r.headers_sent() => return Err(reraise(info)),
                Some(_) => {}
                None if r.has_head() => {
                    return Err(PyRuntimeError::new_err(
                        "start_response called a second time without exc_info (PEP 3333 allows \
                         that only from an error handler, passing sys.exc_info())",
                    ));
                }
                None => {}
            }
            let head = extract_head(status, headers)?;
            r.set_head(head).map_err(PyValueError::new_err)?;
        }
        Ok(Write {
            owner: slf.unbind(),
        })
    }
}

/// Sends one chunk through the owner's responder with the GIL released.
pub(crate) fn send_chunk(
    py: Python<'_>,
    owner: &Bound<'_, StartResponse>,
    chunk: Chunk,
    flush: bool,
) -> PyResult<Result<(), WriteError>> {
    let mut guard = owner.get().lock(py);
    let r = guard.as_mut().ok_or_else(ended)?;
    Ok(without_gil(py, r, |r| r.write(chunk, flush)))
}

/// The `write(data)` callable that `start_response` returns (the legacy
/// imperative API: each call is sent before it returns).
#[pyclass(module = "oxwsgi", name = "Write", frozen)]
pub struct Write {
    owner: Py<StartResponse>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(bytes) = data.cast::<PyBytes>() else {
            return Err(PyTypeError::new_err(format!(
                "write() needs bytes, got {}{}",
                type_name(data),
                if data.is_instance_of::<PyString>() {
                    ": encode it"
                } else {
                    ""
                }
            )));
        };
        let chunk = Chunk::from_bytes(bytes.clone());
        match send_chunk(py, self.owner.bind(py), chunk, true)? {
            Ok(()) => Ok(()),
            Err(WriteError::NotStarted) => Err(PyRuntimeError::new_err(
                "write() called before start_response",
            )),
            Err(WriteError::Gone(e)) => Err(PyOSError::new_err(format!(
                "the client closed the connection: {e}"
            ))),
            Err(WriteError::Closed) => Err(PyRuntimeError::new_err(
                "write() called after the response ended",
            )),
        }
    }
}

/// Runs a responder call with the GIL released when the sink may block.
pub(crate) fn without_gil<T: Send>(
    py: Python<'_>,
    r: &mut Responder,
    f: impl FnOnce(&mut Responder) -> T + Send,
) -> T {
    if r.may_block() {
        py.detach(|| f(r))
    } else {
        f(r)
    }
}

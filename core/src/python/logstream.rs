//! `sys.stdout`, `sys.stderr` and `wsgi.errors`: text streams that hand each
//! complete line to the server's error log through the `log` facade.
//!
//! Partial lines are kept per thread, so `print()` from two request threads
//! never splices their output into one line.

use std::cell::RefCell;

use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyString;

/// The `log` target of each stream, for servers that route them differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Stdout = 0,
    Stderr = 1,
    WsgiErrors = 2,
}

impl StreamKind {
    pub fn target(self) -> &'static str {
        match self {
            StreamKind::Stdout => "python.stdout",
            StreamKind::Stderr => "python.stderr",
            StreamKind::WsgiErrors => "wsgi.errors",
        }
    }
}

thread_local! {
    static PENDING: RefCell<[String; 3]> = const { RefCell::new([String::new(), String::new(), String::new()]) };
}

/// Longest partial line kept before it is logged anyway, so a stream written
/// without newlines cannot grow without bound.
const MAX_PENDING: usize = 16 * 1024;

#[pyclass(module = "oxwsgi", name = "LogStream", frozen)]
pub struct LogStream {
    kind: StreamKind,
    level: log::Level,
}

impl LogStream {
    pub fn new(kind: StreamKind, level: log::Level) -> Self {
        LogStream { kind, level }
    }

    fn emit(&self, line: &str) {
        log::log!(target: self.kind.target(), self.level, "{}", line.trim_end_matches('\r'));
    }

    fn push(&self, text: &str) {
        PENDING.with(|p| {
            let pending = &mut p.borrow_mut()[self.kind as usize];
            let mut rest = text;
            while let Some(nl) = rest.find('\n') {
                if pending.is_empty() {
                    self.emit(&rest[..nl]);
                } else {
                    pending.push_str(&rest[..nl]);
                    self.emit(pending);
                    pending.clear();
                }
                rest = &rest[nl + 1..];
            }
            pending.push_str(rest);
            if pending.len() > MAX_PENDING {
                self.emit(pending);
                pending.clear();
            }
        });
    }

    fn flush_pending(&self) {
        PENDING.with(|p| {
            let pending = &mut p.borrow_mut()[self.kind as usize];
            if !pending.is_empty() {
                self.emit(pending);
                pending.clear();
            }
        });
    }
}

#[pymethods]
impl LogStream {
    fn write(&self, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        let Ok(s) = text.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "write() argument must be str, not {}",
                text.get_type().name()?
            )));
        };
        let s = s.to_cow()?;
        self.push(&s);
        Ok(s.chars().count())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    fn flush(&self) {
        self.flush_pending();
    }

    fn close(&self) {
        self.flush_pending();
    }

    fn isatty(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    fn seekable(&self) -> bool {
        false
    }

    fn fileno(&self) -> PyResult<i32> {
        Err(PyOSError::new_err(
            "the server's error log has no file descriptor for Python",
        ))
    }

    #[getter]
    fn closed(&self) -> bool {
        false
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn errors(&self) -> &'static str {
        "backslashreplace"
    }

    #[getter]
    fn name(&self) -> String {
        format!("<{}>", self.kind.target())
    }
}

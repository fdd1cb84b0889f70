//! `wsgi.file_wrapper`: returned as the response, a wrapper over a real
//! file is sent by the server with sendfile (the handler looks for it);
//! otherwise it iterates blocks of `filelike.read(blksize)`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// `wsgi.file_wrapper(filelike, blksize=8192)`. Returned as the response, a
/// wrapper over a real file is sent by the server with sendfile; otherwise it
/// iterates blocks of `filelike.read(blksize)`.
#[pyclass(module = "oxwsgi", name = "FileWrapper", frozen)]
pub struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: i64) -> PyResult<Self> {
        if blksize <= 0 {
            return Err(PyValueError::new_err("blksize must be a positive int"));
        }
        Ok(FileWrapper {
            filelike,
            blksize: blksize as usize,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok(if data.len().unwrap_or(0) == 0 {
            None
        } else {
            Some(data)
        })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

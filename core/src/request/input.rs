//! `wsgi.input`: a file-like object over the request body, backed by Rust.
//!
//! `BodyReader` is the buffering logic (plain Rust, tested without Python);
//! `Input` is the Python face. Reads from files and streams release the GIL
//! while they wait for bytes; reads from memory do not need to.

use std::io::{self, Read};
use std::mem::MaybeUninit;

use pyo3::exceptions::{PyOSError, PyTypeError};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyList};

use crate::request::{Body, BodyStream};
use crate::sync::Recover;

const BLOCK: usize = 64 * 1024;
/// The most a single read(n) reserves up front; beyond it the buffer grows.
const PRESIZE_MAX: usize = 16 << 20;

/// A buffered reader over a `Body` with the line and size semantics of
/// Python's binary files.
pub struct BodyReader {
    source: Source,
    /// Buffered bytes not yet consumed are `buf[pos..end]`; `buf[end..]` is
    /// room for the next read (allocated and zeroed once, not per read).
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// The body's length when known (Content-Length of a streamed body).
    length: Option<u64>,
    /// Bytes handed to the app so far.
    consumed: u64,
}

enum Source {
    /// The whole body is `buf`.
    Memory,
    Reader(Box<dyn BodyStream>),
}

impl BodyReader {
    pub fn new(body: Body) -> BodyReader {
        BodyReader::with_length(body, None)
    }

    /// A reader that knows the body's length (`Content-Length`), so a large
    /// read can go straight into a buffer of the right size.
    pub fn with_length(body: Body, length: Option<u64>) -> BodyReader {
        let mut r = match body {
            Body::Empty => BodyReader::memory(Vec::new()),
            Body::Memory(v) => BodyReader::memory(v),
            Body::File(f) => BodyReader::reader(Box::new(f)),
            Body::Stream(r) => BodyReader::reader(r),
        };
        if matches!(r.source, Source::Reader(_)) {
            r.length = length;
        }
        r
    }

    fn memory(buf: Vec<u8>) -> BodyReader {
        BodyReader {
            source: Source::Memory,
            end: buf.len(),
            buf,
            pos: 0,
            eof: true,
            length: None,
            consumed: 0,
        }
    }

    fn reader(r: Box<dyn BodyStream>) -> BodyReader {
        BodyReader {
            source: Source::Reader(r),
            buf: Vec::new(),
            pos: 0,
            end: 0,
            eof: false,
            length: None,
            consumed: 0,
        }
    }

    /// Whether reads may block (and so should release the GIL).
    pub fn may_block(&self) -> bool {
        !self.eof && matches!(self.source, Source::Reader(_))
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads more from the source. Returns false at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof || !matches!(self.source, Source::Reader(_)) {
            return Ok(false);
        }
        if self.end == self.buf.len() {
            // Out of room: move the unconsumed bytes to the front, and grow
            // (doubling, so a long line or read() costs linear time) only
            // when they fill most of the buffer.
            self.compact();
            if self.buf.len() - self.end < BLOCK / 2 {
                let size = (self.buf.len() * 2).max(self.end + BLOCK);
                self.buf.resize(size, 0);
            }
        }
        // Never past a known length, whatever the source has (PEP 3333: an
        // app reading to the end stops at CONTENT_LENGTH).
        let room = match self.length {
            Some(l) => {
                let left = l.saturating_sub(self.consumed + (self.end - self.pos) as u64);
                if left == 0 {
                    self.eof = true;
                    return Ok(false);
                }
                self.buf.len().min(
                    self.end
                        .saturating_add(left.try_into().unwrap_or(usize::MAX)),
                )
            }
            None => self.buf.len(),
        };
        let Source::Reader(r) = &mut self.source else {
            return Ok(false);
        };
        let n = loop {
            match r.read(&mut self.buf[self.end..room]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.end += n;
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.advance(n);
        out
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.consumed += n as u64;
        if self.pos == self.end && !matches!(self.source, Source::Memory) {
            self.pos = 0;
            self.end = 0;
        }
    }

    /// Whether a read of `n` bytes completes without waiting for the client.
    pub fn ready_for(&self, n: usize) -> bool {
        let have = self.buffered().len();
        if self.eof || have >= n {
            return true;
        }
        match &self.source {
            Source::Memory => true,
            Source::Reader(r) => r.ready(n - have),
        }
    }

    /// The exact size of `read(size)` when it can be known before reading
    /// (a size within the body's known length, or the rest of it), bounded
    /// for bodies of unknown length so a huge `size` does not reserve
    /// memory the body will never fill.
    fn result_len(&self, size: Option<usize>) -> Option<usize> {
        match (size, self.remaining()) {
            (Some(n), Some(left)) => Some(n.min(left)),
            (None, Some(left)) => Some(left),
            (Some(n), None) if n <= PRESIZE_MAX => Some(n),
            _ => None,
        }
    }

    /// Bytes left in a streamed body of known length.
    pub fn remaining(&self) -> Option<usize> {
        self.length
            .map(|l| l.saturating_sub(self.consumed) as usize)
    }

    /// Writes up to `out.len()` bytes into `out` (which may be
    /// uninitialised): what is buffered, then straight from the source.
    /// Returns how many were written; fewer only at the end of the body.
    pub fn read_into(&mut self, out: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let have = self.buffered().len().min(out.len());
        for (dst, src) in out[..have].iter_mut().zip(&self.buf[self.pos..]) {
            dst.write(*src);
        }
        self.advance(have);
        let mut n = have;
        // Never past a known length (see `fill`).
        let out = match self.remaining() {
            Some(0) if n == 0 => {
                self.eof = true;
                return Ok(0);
            }
            Some(left) => {
                let cap = n.saturating_add(left).min(out.len());
                &mut out[..cap]
            }
            None => out,
        };
        while n < out.len() && !self.eof {
            let Source::Reader(r) = &mut self.source else {
                return Ok(n);
            };
            match r.read_uninit(&mut out[n..]) {
                Some(got) => self.count(got, &mut n)?,
                None => break,
            }
        }
        if n < out.len() && !self.eof {
            // The source reads into initialised memory only: zero the rest
            // once, not per read.
            let rest = crate::python::embed::zeroed(&mut out[n..]);
            let mut m = 0;
            while m < rest.len() && !self.eof {
                let Source::Reader(r) = &mut self.source else {
                    break;
                };
                let got = r.read(&mut rest[m..]);
                self.count(got, &mut m)?;
            }
            n += m;
        }
        Ok(n)
    }

    /// Accounts for one read of `read_into`: `n` grows, EOF is noted.
    fn count(&mut self, got: io::Result<usize>, n: &mut usize) -> io::Result<()> {
        match got {
            Ok(0) => self.eof = true,
            Ok(k) => {
                *n += k;
                self.consumed += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
    }

    /// Makes at least `want` bytes available unless EOF comes first. The
    /// buffer is sized for them at once (up to `PRESIZE_MAX`), so read(n)
    /// of a large body is one allocation, not a series of growing copies.
    fn ensure(&mut self, want: usize) -> io::Result<()> {
        if self.buffered().len() >= want {
            return Ok(());
        }
        if matches!(self.source, Source::Reader(_)) && self.buf.len() - self.pos < want {
            self.compact();
            let size = want.min(PRESIZE_MAX).max(self.buf.len());
            // Exactly: a vector's doubling would reserve up to twice
            // PRESIZE_MAX (found by the `input` fuzz target).
            self.buf.reserve_exact(size - self.buf.len());
            self.buf.resize(size, 0);
        }
        while self.buffered().len() < want && self.fill()? {}
        Ok(())
    }

    /// `read(n)`; `None` reads to the end.
    pub fn read(&mut self, size: Option<usize>) -> io::Result<Vec<u8>> {
        match size {
            Some(n) => {
                self.ensure(n)?;
                let n = n.min(self.buffered().len());
                Ok(self.take(n))
            }
            None => {
                while self.fill()? {}
                let n = self.buffered().len();
                Ok(self.take(n))
            }
        }
    }

    /// `readline(limit)`: up to and including the next `\n`, at most `limit` bytes.
    pub fn readline(&mut self, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let mut scanned = 0;
        loop {
            let avail = self.buffered();
            let horizon = limit.map_or(avail.len(), |l| l.min(avail.len()));
            if let Some(i) = avail[scanned..horizon].iter().position(|&b| b == b'\n') {
                return Ok(self.take(scanned + i + 1));
            }
            if limit.is_some_and(|l| avail.len() >= l) {
                return Ok(self.take(horizon));
            }
            scanned = horizon;
            if !self.fill()? {
                let n = self.buffered().len();
                return Ok(self.take(n));
            }
        }
    }
}

/// Python's convention: a negative size or None means "all".
fn size_arg(size: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(size) = size else { return Ok(None) };
    if size.is_none() {
        return Ok(None);
    }
    let n: i64 = size.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "argument should be an int or None, not {}",
            crate::python::traceback::type_name(size)
        ))
    })?;
    Ok(if n < 0 { None } else { Some(n as usize) })
}

fn body_error(e: io::Error) -> PyErr {
    PyOSError::new_err(format!("reading the request body failed: {e}"))
}

/// The `wsgi.input` object.
///
/// The reader is behind a mutex because Python may share the object between
/// threads; it is locked with `lock_py_attached`, which waits without the GIL.
#[pyclass(module = "oxwsgi", name = "Input", frozen)]
pub struct Input {
    reader: Mutex<BodyReader>,
}

impl Input {
    pub fn new(body: Body) -> Input {
        Input::with_length(body, None)
    }

    /// Body bytes the app has read so far.
    pub fn consumed(&self) -> u64 {
        self.reader.lock().recover().consumed
    }

    pub fn with_length(body: Body, length: Option<u64>) -> Input {
        Input {
            reader: Mutex::new(BodyReader::with_length(body, length)),
        }
    }

    /// Runs a read, without the GIL when it may block.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut BodyReader) -> io::Result<T> + Send,
    ) -> PyResult<T> {
        let mut guard = self.reader.lock_py_attached(py).recover();
        let reader = &mut *guard;
        if reader.may_block() {
            py.detach(|| op(reader)).map_err(body_error)
        } else {
            op(reader).map_err(body_error)
        }
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size)?;
        let mut guard = self.reader.lock_py_attached(py).recover();
        let r = &mut *guard;
        if !r.may_block() {
            // All of it is in memory: one copy, into the bytes object.
            let n = size.map_or(r.buffered().len(), |n| n.min(r.buffered().len()));
            let bytes = PyBytes::new(py, &r.buffered()[..n]);
            r.advance(n);
            return Ok(bytes);
        }
        if let Some(n) = r.result_len(size) {
            // Straight from the source into the bytes object: one copy. A
            // read the source can serve at once keeps the GIL.
            if r.ready_for(n) {
                return crate::python::embed::bytes_filled(py, n, |buf| {
                    r.read_into(buf).map_err(body_error)
                });
            }
            return crate::python::embed::bytes_filled(py, n, |buf| {
                py.detach(|| r.read_into(buf)).map_err(body_error)
            });
        }
        let data = py.detach(|| r.read(size)).map_err(body_error)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &self,
        py: Python<'py>,
        size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size)?;
        let data = self.run(py, |r| r.readline(size))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        hint: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint)?.filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.run(py, |r| r.readline(None))?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.run(py, |r| r.readline(None))?;
        Ok(if line.is_empty() {
            None
        } else {
            Some(PyBytes::new(py, &line))
        })
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, like a socket.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn sources(data: &[u8]) -> Vec<BodyReader> {
        vec![
            BodyReader::new(Body::Memory(data.to_vec())),
            BodyReader::new(Body::stream(Trickle {
                data: data.to_vec(),
                pos: 0,
                step: 3,
            })),
            BodyReader::new(Body::stream(io::Cursor::new(data.to_vec()))),
            BodyReader::new(Body::Stream(Box::new(Direct {
                data: data.to_vec(),
                pos: 0,
            }))),
        ]
    }

    /// A source that can also write into uninitialised memory, 4 bytes a
    /// call (core/tests/body.rs checks the large-read path uses that).
    struct Direct {
        data: Vec<u8>,
        pos: usize,
    }

    impl Read for Direct {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = 4.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl BodyStream for Direct {
        fn read_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> Option<io::Result<usize>> {
            let n = 4.min(buf.len()).min(self.data.len() - self.pos);
            for (d, s) in buf.iter_mut().zip(&self.data[self.pos..self.pos + n]) {
                d.write(*s);
            }
            self.pos += n;
            Some(Ok(n))
        }
    }

    /// A source with more than its Content-Length: the app never reads past
    /// the length, in any kind of read (found by the `input` fuzz target).
    #[test]
    fn reads_stop_at_the_content_length() {
        for kind in 0..4 {
            let body = || {
                Body::Stream(Box::new(Direct {
                    data: b"0123456789extra".to_vec(),
                    pos: 0,
                }))
            };
            let mut r = BodyReader::with_length(body(), Some(10));
            let got = match kind {
                0 => r.read(None).unwrap(),
                1 => [r.read(Some(4)).unwrap(), r.read(Some(100)).unwrap()].concat(),
                2 => r.readline(None).unwrap(),
                _ => {
                    let mut out = vec![MaybeUninit::uninit(); 64];
                    let n = r.read_into(&mut out).unwrap();
                    // SAFETY: read_into initialised the first n.
                    out[..n]
                        .iter()
                        .map(|b| unsafe { b.assume_init() })
                        .collect()
                }
            };
            assert_eq!(got, b"0123456789", "read kind {kind}");
            assert_eq!(r.read(None).unwrap(), b"", "read kind {kind}");
        }
        let mut none = BodyReader::with_length(body_of(b"abc"), Some(0));
        assert_eq!(none.read(None).unwrap(), b"");
    }

    fn body_of(data: &[u8]) -> Body {
        Body::stream(io::Cursor::new(data.to_vec()))
    }

    #[test]
    fn read_all_and_sized() {
        for mut r in sources(b"hello world") {
            assert_eq!(r.read(Some(5)).unwrap(), b"hello");
            assert_eq!(r.read(Some(0)).unwrap(), b"");
            assert_eq!(r.read(None).unwrap(), b" world");
            assert_eq!(r.read(None).unwrap(), b"");
            assert_eq!(r.read(Some(10)).unwrap(), b"");
        }
    }

    #[test]
    fn read_more_than_available() {
        for mut r in sources(b"abc") {
            assert_eq!(r.read(Some(100)).unwrap(), b"abc");
            assert_eq!(r.read(Some(100)).unwrap(), b"");
        }
    }

    #[test]
    fn readline_variants() {
        for mut r in sources(b"one\ntwo\nthree") {
            assert_eq!(r.readline(None).unwrap(), b"one\n");
            assert_eq!(r.readline(Some(2)).unwrap(), b"tw");
            assert_eq!(r.readline(Some(100)).unwrap(), b"o\n");
            assert_eq!(r.readline(None).unwrap(), b"three");
            assert_eq!(r.readline(None).unwrap(), b"");
        }
    }

    #[test]
    fn long_lines_across_blocks() {
        let mut data = vec![b'x'; 200_000];
        data.push(b'\n');
        data.extend_from_slice(b"tail");
        for mut r in sources(&data) {
            assert_eq!(r.readline(None).unwrap().len(), 200_001);
            assert_eq!(r.readline(None).unwrap(), b"tail");
        }
    }

    #[test]
    fn empty_body() {
        let mut r = BodyReader::new(Body::Empty);
        assert_eq!(r.read(None).unwrap(), b"");
        assert_eq!(r.readline(None).unwrap(), b"");
        assert!(!r.may_block());
    }

    #[test]
    fn read_errors_surface() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "client went away",
                ))
            }
        }
        let mut r = BodyReader::new(Body::stream(Broken));
        let e = r.read(None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    }
}

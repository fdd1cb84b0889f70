//! Where a response goes: the `ResponseSink` trait servers implement, and the
//! `Chunk`s of body they receive.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;

use crate::python::embed::BytesView;
use crate::response::ResponseHead;

/// Python chunks up to this size are copied rather than referenced.
const COPY_BELOW: usize = 4096;

/// A piece of response body. Chunks from Python keep the `bytes` object alive
/// instead of copying it, and can be sent from any thread without the GIL.
pub struct Chunk(Repr);

enum Repr {
    Owned(Vec<u8>),
    Python(BytesView),
}

impl Chunk {
    pub fn owned(v: Vec<u8>) -> Chunk {
        Chunk(Repr::Owned(v))
    }

    pub(crate) fn python(view: BytesView) -> Chunk {
        Chunk(Repr::Python(view))
    }

    /// A chunk of a Python `bytes` object: small ones are copied (cheaper
    /// than a reference that must later be released without the GIL), large
    /// ones are kept by reference, without copying.
    pub(crate) fn from_bytes(bytes: pyo3::Bound<'_, pyo3::types::PyBytes>) -> Chunk {
        use pyo3::types::PyBytesMethods;
        let data = bytes.as_bytes();
        if data.len() <= COPY_BELOW {
            Chunk::owned(data.to_vec())
        } else {
            Chunk::python(BytesView::new(bytes))
        }
    }

    /// The bytes as an owned vector (copies chunks that came from Python).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(v) => v,
            Repr::Python(p) => p.as_slice().to_vec(),
        }
    }
}

impl Deref for Chunk {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Python(p) => p.as_slice(),
        }
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(v: Vec<u8>) -> Chunk {
        Chunk::owned(v)
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunk({} bytes)", self.len())
    }
}

/// The server side of a response. Every method may block (a slow client); the
/// core calls them without holding the GIL. An `Err` means the client is gone:
/// the core stops producing the response and calls the iterable's `close()`.
pub trait ResponseSink: Send {
    /// Whether calls may block (on a slow client). The core releases the GIL
    /// around the calls of a blocking sink; a sink that only queues or
    /// records can say no and spare the release and re-acquisition.
    fn may_block(&self) -> bool {
        true
    }
    /// Sends the status line and headers. Called once, before any body.
    fn start(&mut self, head: ResponseHead) -> io::Result<()>;
    /// Sends a piece of body.
    fn write(&mut self, chunk: Chunk) -> io::Result<()>;
    /// Sends `len` bytes of `file` from `offset`, with sendfile where the server
    /// can. The default reads the file and writes it in chunks.
    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        send_file_by_reading(self, file, offset, len)
    }
    /// Pushes what was written so far to the client (a streaming boundary).
    fn flush(&mut self) -> io::Result<()>;
    /// The response is complete.
    fn finish(&mut self) -> io::Result<()>;
    /// Sends an error response of the server's making (the app failed before
    /// its headers went out). Servers may override it to use their own error
    /// pages; the default is a short plain-text body.
    fn error(&mut self, status: u16) -> io::Result<()> {
        let (line, text) = error_text(status);
        let body = format!("{line}\n\n{text}\n").into_bytes();
        self.start(ResponseHead {
            status,
            status_line: line.to_string(),
            headers: vec![
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ("Content-Length".into(), body.len().to_string()),
            ],
        })?;
        self.write(Chunk::owned(body))?;
        self.finish()
    }
    /// What the server does when the request passes its request timeout,
    /// called from the core's watchdog thread while the app's thread may
    /// still be blocked: answer 504 if no header went out yet, else cut the
    /// response; the app's later writes then fail. `None` (the default): the
    /// server cannot answer from another thread, and the 504 goes out when
    /// the app's thread comes back.
    fn timeout_action(&self) -> Option<TimeoutAction> {
        None
    }
    /// The response cannot be completed (error after the headers went out):
    /// the server must make the client see it as truncated (cut the connection,
    /// or end a chunked body without its final chunk).
    fn abort(&mut self);
}

/// See `ResponseSink::timeout_action`.
pub type TimeoutAction = Box<dyn FnOnce() + Send>;

/// `send_file` for sinks that have no sendfile: reads and writes 64 KiB blocks.
pub fn send_file_by_reading<S: ResponseSink + ?Sized>(
    sink: &mut S,
    file: File,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    let mut left = len;
    while left > 0 {
        let want = left.min(64 * 1024) as usize;
        let mut buf = vec![0; want];
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being sent",
            ));
        }
        buf.truncate(n);
        sink.write(Chunk::owned(buf))?;
        left -= n as u64;
    }
    Ok(())
}

/// The status line and a one-line explanation of the errors the core sends.
pub fn error_text(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("400 Bad Request", "The request body could not be decoded."),
        413 => (
            "413 Content Too Large",
            "The request body is larger than this application accepts.",
        ),
        502 => (
            "502 Bad Gateway",
            "The application's process did not answer; the server's error log has the details.",
        ),
        503 => (
            "503 Service Unavailable",
            "The application is too busy to take this request now; try again shortly.",
        ),
        504 => (
            "504 Gateway Timeout",
            "The application did not answer within its time limit.",
        ),
        _ => (
            "500 Internal Server Error",
            "The application failed; the server's error log has the details.",
        ),
    }
}

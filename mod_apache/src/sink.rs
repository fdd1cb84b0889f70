//! The core's `ResponseSink` onto Apache: headers into `headers_out`, body
//! through ap_rwrite (the output filter chain, so mod_deflate applies), a
//! flush per streamed chunk, sent by a writer thread while the app goes on
//! (`writer`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use oxwsgi_core::response::latin1;
use oxwsgi_core::{Chunk, ResponseHead, ResponseSink};

use crate::ffi::{self, request_rec};
use crate::writer::{Op, WriteBehind};

pub struct ApacheSink {
    r: *mut request_rec,
    writer: Arc<WriteBehind>,
    /// The status of an error page Apache should make (the handler returns it).
    error: Arc<AtomicU16>,
}

// SAFETY: the sink is used only by the core on the handler's thread while
// the handler runs; the request outlives it, and `writer` decides which
// thread may touch the request.
unsafe impl Send for ApacheSink {}

impl ApacheSink {
    pub fn new(r: *mut request_rec, writer: Arc<WriteBehind>) -> (ApacheSink, Arc<AtomicU16>) {
        let error = Arc::new(AtomicU16::new(500));
        (
            ApacheSink {
                r,
                writer,
                error: error.clone(),
            },
            error,
        )
    }

    /// A NUL-terminated copy of `s` in the request pool. Header strings are
    /// latin-1 (PEP 3333): each character becomes one byte.
    fn pool_str(&self, s: &str) -> *const std::ffi::c_char {
        let bytes = latin1(s);
        // SAFETY: r and its pool are live (see Send), and only this thread
        // uses them (the head goes out before any writer takes the request);
        // apr_pstrmemdup copies exactly `len` bytes and NUL-terminates the
        // copy (the core refuses NUL in headers, so nothing is cut short).
        unsafe { ffi::apr_pstrmemdup((*self.r).pool, bytes.as_ptr().cast(), bytes.len()) }
    }
}

impl ResponseSink for ApacheSink {
    /// While a writer holds the request every call only queues, so the app
    /// keeps the GIL and goes on; otherwise calls do Apache I/O here.
    fn may_block(&self) -> bool {
        self.writer.may_block()
    }

    fn start(&mut self, head: ResponseHead) -> io::Result<()> {
        // The head comes before any body, so before any writer; this keeps
        // it so if an app ever got here later.
        self.writer.sync()?;
        let r = self.r;
        // SAFETY: r is live and used by this thread only (synced above);
        // every string is copied into its pool.
        unsafe {
            (*r).status = head.status as i32;
            (*r).status_line = self.pool_str(&head.status_line);
            for (name, value) in &head.headers {
                if name.eq_ignore_ascii_case("Content-Type") {
                    ffi::ap_set_content_type(r, self.pool_str(value));
                } else if name.eq_ignore_ascii_case("Content-Length") {
                    ffi::ap_set_content_length(r, value.trim().parse().unwrap_or(0));
                } else {
                    ffi::apr_table_add((*r).headers_out, self.pool_str(name), self.pool_str(value));
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        self.writer.submit(Op::Data(chunk))
    }

    fn send_file(&mut self, file: std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        self.writer.submit(Op::File { file, offset, len })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        // The handler waits for the writer before it returns to Apache.
        Ok(())
    }

    fn abort(&mut self) {
        let _ = self.writer.submit(Op::Abort);
    }

    fn error(&mut self, status: u16) -> io::Result<()> {
        self.error.store(status, Ordering::Relaxed);
        Ok(())
    }
}

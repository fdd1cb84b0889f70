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

unsafe extern "C" fn close_fd(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
    oxwsgi_core::guard::entry("a file cleanup", 0, || {
        // SAFETY: `data` carries a descriptor handed to the pool by
        // send_file_bucket, closed only here, once, by the pool's cleanup.
        unsafe { libc::close(data as usize as i32) };
        0
    })
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
}

/// Sends `len` bytes of `file` from `offset` as a file bucket for Apache's
/// core output filter (sendfile where it is enabled). The descriptor stays
/// open until the request ends: Apache may set the bucket aside.
///
/// # Safety
/// `r` is live and the calling thread is the one using it.
pub unsafe fn send_file_bucket(
    r: *mut request_rec,
    file: std::fs::File,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = file.into_raw_fd();
    // SAFETY: r and its pool are live and used by this thread alone
    // (send_file_bucket's contract); the
    // descriptor is ours and is closed by the request pool's cleanup
    // registered here.
    unsafe {
        ffi::apr_pool_cleanup_register(
            (*r).pool,
            fd as usize as *const std::ffi::c_void,
            Some(close_fd),
            Some(ffi::apr_pool_cleanup_null),
        );
        let mut os_fd: ffi::apr_os_file_t = fd;
        let mut apr_file: *mut ffi::apr_file_t = std::ptr::null_mut();
        if ffi::apr_os_file_put(
            &mut apr_file,
            &mut os_fd,
            ffi::APR_FOPEN_READ as i32,
            (*r).pool,
        ) != 0
        {
            return Err(io::Error::other("apr_os_file_put failed"));
        }
        let mut sent: ffi::apr_size_t = 0;
        if ffi::ap_send_fd(
            apr_file,
            r,
            offset as ffi::apr_off_t,
            len as ffi::apr_size_t,
            &mut sent,
        ) != 0
        {
            return Err(gone());
        }
    }
    Ok(())
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

//! The core's `ResponseSink` onto Apache: headers into `headers_out`, body
//! through ap_rwrite (the output filter chain, so mod_deflate applies), a
//! flush per streamed chunk.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use oxwsgi_core::response::latin1;
use oxwsgi_core::{Chunk, ResponseHead, ResponseSink};

use crate::ffi::{self, request_rec};

pub struct ApacheSink {
    r: *mut request_rec,
    /// The status of an error page Apache should make (the handler returns it).
    error: Arc<AtomicU16>,
}

// SAFETY: the sink is used only by the core on the handler's thread while
// the handler runs; the request outlives it.
unsafe impl Send for ApacheSink {}

impl ApacheSink {
    pub fn new(r: *mut request_rec) -> (ApacheSink, Arc<AtomicU16>) {
        let error = Arc::new(AtomicU16::new(500));
        (
            ApacheSink {
                r,
                error: error.clone(),
            },
            error,
        )
    }

    /// A NUL-terminated copy of `s` in the request pool. Header strings are
    /// latin-1 (PEP 3333): each character becomes one byte.
    fn pool_str(&self, s: &str) -> *const std::ffi::c_char {
        let bytes = latin1(s);
        // SAFETY: r and its pool are live (see Send); apr_pstrmemdup copies
        // exactly `len` bytes and NUL-terminates the copy (the core refuses
        // NUL in headers, so nothing is cut short).
        unsafe { ffi::apr_pstrmemdup((*self.r).pool, bytes.as_ptr().cast(), bytes.len()) }
    }
}

unsafe extern "C" fn close_fd(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
    // SAFETY: `data` carries a descriptor handed to the pool by send_file.
    unsafe { libc::close(data as usize as i32) };
    0
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
}

impl ResponseSink for ApacheSink {
    fn start(&mut self, head: ResponseHead) -> io::Result<()> {
        let r = self.r;
        // SAFETY: r is live; every string is copied into its pool.
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
        // SAFETY: r is live; the chunk's bytes are valid for the call.
        let n = unsafe { ffi::ap_rwrite(chunk.as_ptr().cast(), chunk.len() as i32, self.r) };
        if n < 0 { Err(gone()) } else { Ok(()) }
    }

    /// A file bucket for Apache's core output filter (sendfile where it is
    /// enabled). The descriptor stays open until the request ends: Apache may
    /// set the bucket aside and send it later.
    fn send_file(&mut self, file: std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::IntoRawFd;
        let r = self.r;
        let fd = file.into_raw_fd();
        // SAFETY: r and its pool are live; the descriptor is ours and is
        // closed by the request pool's cleanup registered here.
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

    fn flush(&mut self) -> io::Result<()> {
        // SAFETY: r is live.
        if unsafe { ffi::ap_rflush(self.r) } < 0 {
            Err(gone())
        } else {
            Ok(())
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn abort(&mut self) {
        // SAFETY: r and its connection are live. What the app produced goes
        // out first (a list response is still buffered: headers and all);
        // then marking the connection aborted makes Apache close it at once
        // instead of finishing the response, so the client sees it is cut.
        unsafe {
            ffi::ap_rflush(self.r);
            (*(*self.r).connection).aborted = 1;
            (*(*self.r).connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
        }
    }

    fn error(&mut self, status: u16) -> io::Result<()> {
        self.error.store(status, Ordering::Relaxed);
        Ok(())
    }
}

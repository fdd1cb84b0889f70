//! Write-behind for streamed responses. When the app flushes a chunk (each
//! item a generator yields), a writer thread sends it while the app's thread
//! goes on producing the next one, as PEP 3333 allows ("continue
//! transmission even while the application is producing its next block").
//! Chunks that pile up while the writer is busy go out together, with one
//! flush: one write to the socket instead of one per chunk.
//!
//! Apache's request (its pools, filters, bucket allocator) is used by one
//! thread at a time. The app's thread uses it while no writer holds it; once
//! a flush hands it to a writer, everything the app's thread would do with
//! Apache (more body, a file, the end, an abort, a log line) is queued for
//! the writer, in order, and the app's thread takes the request back
//! (`sync`) before it reads the request body or returns to Apache.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use oxwsgi_core::Chunk;
use oxwsgi_core::sync::Recover;

use crate::ffi::{self, request_rec};

/// What a writer may have queued before the app's thread waits for it
/// (a slow client throttles the app instead of growing memory).
const HIGH_WATER: usize = 256 << 10;

/// Something for Apache, done by whichever thread holds the request.
pub enum Op {
    Data(Chunk),
    Flush,
    File { file: File, offset: u64, len: u64 },
    Abort,
    Log { level: i32, text: CString },
}

#[derive(Default)]
struct State {
    queue: VecDeque<Op>,
    /// Body bytes in `queue`.
    bytes: usize,
    /// A writer holds the request.
    held: bool,
    /// Writing failed: the client is gone.
    gone: bool,
}

/// One request's write-behind.
pub struct WriteBehind {
    r: *mut request_rec,
    /// Whether flushes go to a writer (not for mod_http2's streams, whose
    /// connections belong to the HTTP/2 worker that runs them).
    behind: bool,
    state: Mutex<State>,
    changed: Condvar,
}

// SAFETY: `r` is used by one thread at a time (the app's thread while no
// writer holds the request, the writer while one does: `State::held`,
// changed under the mutex), and the request outlives both: the handler
// `sync`s before it returns to Apache.
unsafe impl Send for WriteBehind {}
// SAFETY: the request pointer is used by one thread at a time (the
// `held` handover, under the mutex); everything else is behind the mutex.
unsafe impl Sync for WriteBehind {}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
}

impl WriteBehind {
    /// # Safety
    /// `r` is the live request of the calling thread's handler.
    pub unsafe fn new(r: *mut request_rec) -> Arc<WriteBehind> {
        // SAFETY: r is the live request of the calling thread's handler
        // (new's contract), and its connection with it.
        let secondary = unsafe { !(*(*r).connection).master.is_null() };
        Arc::new(WriteBehind {
            r,
            behind: !secondary,
            state: Mutex::default(),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().recover()
    }

    /// Whether the next sink call may wait: it does Apache I/O itself (no
    /// writer holds the request), or the writer is far behind.
    pub fn may_block(&self) -> bool {
        let st = self.lock();
        !st.held || st.bytes > HIGH_WATER
    }

    /// Queues `op` when a writer holds the request; gives it back to be
    /// done here otherwise. When the writer is far behind this waits for
    /// room first: `may_block` said so before the call, so the app's
    /// thread waits without the GIL (only this thread adds to the queue).
    /// A large chunk is queued whole, and the next call waits.
    fn queue(&self, op: Op) -> io::Result<Option<Op>> {
        let mut st = self.lock();
        while st.held && !st.gone && st.bytes > HIGH_WATER {
            st = self.changed.wait(st).recover();
        }
        if st.gone {
            return Err(gone());
        }
        if !st.held {
            return Ok(Some(op));
        }
        if let Op::Data(c) = &op {
            st.bytes += c.len();
        }
        st.queue.push_back(op);
        Ok(None)
    }

    /// Sends `op` now, or after what a writer has queued.
    pub fn submit(&self, op: Op) -> io::Result<()> {
        match self.queue(op)? {
            // SAFETY: no writer holds the request: this thread may use it.
            Some(op) => unsafe { perform(self.r, op) },
            None => Ok(()),
        }
    }

    /// A streaming boundary: what was written so far goes to the client,
    /// sent by a writer while the app goes on.
    pub fn flush(self: &Arc<Self>) -> io::Result<()> {
        {
            let mut st = self.lock();
            if st.gone {
                return Err(gone());
            }
            if st.held {
                st.queue.push_back(Op::Flush);
                return Ok(());
            }
            st.held = true;
            st.queue.push_back(Op::Flush);
        }
        if self.behind && pool::schedule(self.clone()) {
            return Ok(());
        }
        // No writer (an HTTP/2 stream, or no thread could be had): flush
        // here, as before.
        self.run();
        self.sync()
    }

    /// A log line of this request: logged by the writer, in order with the
    /// output, when one holds the request. False when this thread may log it.
    pub fn log(&self, level: i32, text: &CString) -> bool {
        let mut st = self.lock();
        if !st.held {
            return false;
        }
        st.queue.push_back(Op::Log {
            level,
            text: text.clone(),
        });
        true
    }

    /// Waits until no writer holds the request (this thread may then use
    /// it); an error when the client went away meanwhile.
    pub fn sync(&self) -> io::Result<()> {
        let mut st = self.lock();
        while st.held {
            st = self.changed.wait(st).recover();
        }
        if st.gone { Err(gone()) } else { Ok(()) }
    }

    /// The writer's side: performs what is queued, batch by batch, and
    /// gives the request back when the queue is empty.
    fn run(&self) {
        loop {
            let batch = {
                let mut st = self.lock();
                let batch = std::mem::take(&mut st.queue);
                st.bytes = 0;
                if batch.is_empty() {
                    st.held = false;
                }
                self.changed.notify_all();
                batch
            };
            if batch.is_empty() {
                return;
            }
            if log::log_enabled!(target: "oxwsgi", log::Level::Debug) {
                let text = format!("oxwsgi: the writer sends {} queued items", batch.len());
                if let Ok(text) = CString::new(text) {
                    // SAFETY: this writer holds the request (`held`); the line
                    // carries the request's context.
                    unsafe { ffi::oxwsgi_log_r(self.r, ffi::APLOG_DEBUG as i32, text.as_ptr()) };
                }
            }
            let result = oxwsgi_core::guard::entry("a response writer", Err(gone()), || {
                // SAFETY: this writer holds the request (`held`).
                unsafe { perform_batch(self.r, batch) }
            });
            if result.is_err() {
                let mut st = self.lock();
                st.gone = true;
                // What the app logged meanwhile is still logged.
                for op in std::mem::take(&mut st.queue) {
                    if let op @ Op::Log { .. } = op {
                        // SAFETY: this writer still holds the request.
                        let _ = unsafe { perform(self.r, op) };
                    }
                }
                st.held = false;
                st.bytes = 0;
                self.changed.notify_all();
                return;
            }
        }
    }
}

/// Performs a batch with one flush at the end when any op asked for one.
/// Once the client is gone only the log lines are still done.
///
/// # Safety
/// The calling thread holds `r`.
unsafe fn perform_batch(r: *mut request_rec, batch: VecDeque<Op>) -> io::Result<()> {
    let mut flush = false;
    let mut result = Ok(());
    for op in batch {
        match op {
            Op::Flush => flush = true,
            // SAFETY: the calling writer holds r (perform_batch's contract).
            op @ Op::Log { .. } => unsafe { perform(r, op)? },
            _ if result.is_err() => {}
            // SAFETY: the calling writer holds r.
            op => result = unsafe { perform(r, op) },
        }
    }
    if flush && result.is_ok() {
        // SAFETY: the calling writer still holds r.
        result = unsafe { perform(r, Op::Flush) };
    }
    result
}

/// Does one op on Apache's side.
///
/// # Safety
/// The calling thread holds `r` (the live request of its handler).
unsafe fn perform(r: *mut request_rec, op: Op) -> io::Result<()> {
    // SAFETY: the calling thread holds r, the live request of its handler
    // (perform's contract); every call below is on this live
    // request, from the one thread that uses it now.
    unsafe {
        match op {
            Op::Data(chunk) => {
                if ffi::ap_rwrite(chunk.as_ptr().cast(), chunk.len() as i32, r) < 0 {
                    return Err(gone());
                }
            }
            Op::Flush => {
                if ffi::ap_rflush(r) < 0 {
                    return Err(gone());
                }
            }
            Op::File { file, offset, len } => send_file_bucket(r, file, offset, len)?,
            Op::Abort => {
                // What the app produced goes out first (a list response is
                // still buffered: headers and all); then marking the
                // connection aborted makes Apache close it at once instead
                // of finishing the response, so the client sees it is cut.
                ffi::ap_rflush(r);
                (*(*r).connection).aborted = 1;
                (*(*r).connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
            }
            Op::Log { level, text } => ffi::oxwsgi_log_r(r, level, text.as_ptr()),
        }
    }
    Ok(())
}

unsafe extern "C" fn close_fd(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
    oxwsgi_core::guard::entry("a file cleanup", 0, || {
        // SAFETY: `data` carries a descriptor handed to the pool by
        // send_file_bucket, closed only here, once, by the pool's cleanup.
        unsafe { libc::close(data as usize as i32) };
        0
    })
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

/// The writer threads of this child process: started as streams need them
/// (at most one per request being streamed) and kept for the next ones.
mod pool {
    use std::collections::VecDeque;
    use std::sync::{Arc, Condvar, Mutex};

    use oxwsgi_core::sync::Recover;

    use super::WriteBehind;

    struct Jobs {
        queue: VecDeque<Arc<WriteBehind>>,
        idle: usize,
    }

    static JOBS: Mutex<Jobs> = Mutex::new(Jobs {
        queue: VecDeque::new(),
        idle: 0,
    });
    static READY: Condvar = Condvar::new();

    /// Hands `job` to a writer thread; false when none could be started.
    pub fn schedule(job: Arc<WriteBehind>) -> bool {
        let mut jobs = JOBS.lock().recover();
        jobs.queue.push_back(job);
        // Every queued job needs a thread of its own now: a stream must not
        // wait for another one to end.
        if jobs.idle >= jobs.queue.len() {
            READY.notify_one();
            return true;
        }
        drop(jobs);
        let started = std::thread::Builder::new()
            .name("oxwsgi-writer".into())
            .spawn(work)
            .is_ok();
        if !started {
            // Take the job back: the caller does it itself.
            let mut jobs = JOBS.lock().recover();
            jobs.queue.pop_back();
        }
        started
    }

    fn work() {
        loop {
            let job = {
                let mut jobs = JOBS.lock().recover();
                loop {
                    if let Some(j) = jobs.queue.pop_front() {
                        break j;
                    }
                    jobs.idle += 1;
                    jobs = READY.wait(jobs).recover();
                    jobs.idle -= 1;
                }
            };
            job.run();
        }
    }
}

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
use std::ffi::{CStr, CString};
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

/// Where queued ops are done: Apache's request in the module, a recorder
/// in the unit tests (the handover logic is the same).
pub trait Target: Send + Sync + 'static {
    /// Does one op.
    ///
    /// # Safety
    /// The calling thread holds the target (`WriteBehind`'s handover).
    unsafe fn perform(&self, op: Op) -> io::Result<()>;

    /// Logs a debug line with the request's context.
    ///
    /// # Safety
    /// As for `perform`.
    unsafe fn trace(&self, text: &CStr);
}

/// Apache's request, done by whichever thread holds it.
pub struct Request(*mut request_rec);

// SAFETY: the request is used by one thread at a time (the app's thread
// while no writer holds it, the writer while one does: `State::held`,
// changed under the mutex), and it outlives both: the handler `sync`s
// before it returns to Apache.
unsafe impl Send for Request {}
// SAFETY: shared only through a `WriteBehind`, whose handover lets one
// thread at a time use the pointer.
unsafe impl Sync for Request {}

impl Target for Request {
    unsafe fn perform(&self, op: Op) -> io::Result<()> {
        // SAFETY: the calling thread holds the request (perform's contract).
        unsafe { perform(self.0, op) }
    }

    unsafe fn trace(&self, text: &CStr) {
        // SAFETY: the calling thread holds the live request (trace's contract).
        unsafe { ffi::oxwsgi_log_r(self.0, ffi::APLOG_DEBUG as i32, text.as_ptr()) };
    }
}

/// One request's write-behind.
pub struct WriteBehind<T: Target = Request> {
    target: T,
    /// Whether flushes go to a writer (not for mod_http2's streams, whose
    /// connections belong to the HTTP/2 worker that runs them).
    behind: bool,
    state: Mutex<State>,
    changed: Condvar,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
}

impl WriteBehind<Request> {
    /// # Safety
    /// `r` is the live request of the calling thread's handler.
    pub unsafe fn for_request(r: *mut request_rec) -> Arc<WriteBehind> {
        // SAFETY: r is the live request of the calling thread's handler
        // (for_request's contract), and its connection with it.
        let secondary = unsafe { !(*(*r).connection).master.is_null() };
        WriteBehind::new(Request(r), !secondary)
    }
}

impl<T: Target> WriteBehind<T> {
    /// A write-behind for `target`; without `behind`, flushes are done on
    /// the calling thread.
    pub fn new(target: T, behind: bool) -> Arc<WriteBehind<T>> {
        Arc::new(WriteBehind {
            target,
            behind,
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
            Some(op) => unsafe { self.target.perform(op) },
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
                    // SAFETY: this writer holds the request (`held`).
                    unsafe { self.target.trace(&text) };
                }
            }
            let result = oxwsgi_core::guard::entry("a response writer", Err(gone()), || {
                // SAFETY: this writer holds the request (`held`).
                unsafe { perform_batch(&self.target, batch) }
            });
            if result.is_err() {
                let mut st = self.lock();
                st.gone = true;
                // What the app logged meanwhile is still logged.
                for op in std::mem::take(&mut st.queue) {
                    if let op @ Op::Log { .. } = op {
                        // SAFETY: this writer still holds the request.
                        let _ = unsafe { self.target.perform(op) };
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
/// The calling thread holds `target`.
unsafe fn perform_batch<T: Target>(target: &T, batch: VecDeque<Op>) -> io::Result<()> {
    let mut flush = false;
    let mut result = Ok(());
    for op in batch {
        match op {
            Op::Flush => flush = true,
            // SAFETY: the calling writer holds target (perform_batch's contract).
            op @ Op::Log { .. } => unsafe { target.perform(op)? },
            _ if result.is_err() => {}
            // SAFETY: the calling writer holds target.
            op => result = unsafe { target.perform(op) },
        }
    }
    if flush && result.is_ok() {
        // SAFETY: the calling writer still holds target.
        result = unsafe { target.perform(Op::Flush) };
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

    use super::{Target, WriteBehind};

    /// A write-behind whose writer is due, whatever its target.
    pub trait Job: Send + Sync {
        fn run(&self);
    }

    impl<T: Target> Job for WriteBehind<T> {
        fn run(&self) {
            WriteBehind::run(self);
        }
    }

    struct Jobs {
        queue: VecDeque<Arc<dyn Job>>,
        idle: usize,
    }

    static JOBS: Mutex<Jobs> = Mutex::new(Jobs {
        queue: VecDeque::new(),
        idle: 0,
    });
    static READY: Condvar = Condvar::new();

    /// Hands `job` to a writer thread; false when none could be started.
    pub fn schedule(job: Arc<dyn Job>) -> bool {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::thread::{self, ThreadId};
    use std::time::Duration;

    /// Records what is done and by which thread; can be held shut to play a
    /// slow client, and can fail body writes to play a gone one.
    #[derive(Default)]
    struct Recorder {
        done: Mutex<Vec<(String, ThreadId)>>,
        shut: Mutex<bool>,
        opened: Condvar,
        fail_data: std::sync::atomic::AtomicBool,
        /// Calls of `perform` so far, finished or waiting.
        entered: std::sync::atomic::AtomicUsize,
    }

    impl Recorder {
        fn shut(&self) {
            *self.shut.lock().unwrap() = true;
        }
        fn open(&self) {
            *self.shut.lock().unwrap() = false;
            self.opened.notify_all();
        }
        fn done(&self) -> Vec<String> {
            self.done
                .lock()
                .unwrap()
                .iter()
                .map(|(s, _)| s.clone())
                .collect()
        }
        /// Waits until `n` calls reached `perform` (a writer is in it).
        fn wait_entered(&self, n: usize) {
            while self.entered.load(std::sync::atomic::Ordering::SeqCst) < n {
                thread::sleep(Duration::from_millis(1));
            }
        }
        fn threads(&self) -> Vec<ThreadId> {
            self.done.lock().unwrap().iter().map(|(_, t)| *t).collect()
        }
    }

    impl Target for Recorder {
        unsafe fn perform(&self, op: Op) -> io::Result<()> {
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut shut = self.shut.lock().unwrap();
            while *shut {
                shut = self.opened.wait(shut).unwrap();
            }
            let what = match op {
                Op::Data(c) if self.fail_data.load(std::sync::atomic::Ordering::SeqCst) => {
                    let _ = c;
                    return Err(gone());
                }
                Op::Data(c) => format!("data{}", c.len()),
                Op::Flush => "flush".into(),
                Op::File { len, .. } => format!("file{len}"),
                Op::Abort => "abort".into(),
                Op::Log { text, .. } => format!("log:{}", text.to_str().unwrap()),
            };
            self.done
                .lock()
                .unwrap()
                .push((what, thread::current().id()));
            Ok(())
        }
        unsafe fn trace(&self, _: &CStr) {}
    }

    fn data(n: usize) -> Op {
        Op::Data(Chunk::owned(vec![0; n]))
    }

    #[test]
    fn without_a_flush_everything_is_done_on_the_apps_thread() {
        let w = WriteBehind::new(Recorder::default(), true);
        assert!(w.may_block(), "the app's thread does Apache I/O itself");
        w.submit(data(3)).unwrap();
        w.submit(Op::Abort).unwrap();
        assert!(
            !w.log(1, &CString::new("x").unwrap()),
            "logged by the caller"
        );
        w.sync().unwrap();
        assert_eq!(w.target.done(), ["data3", "abort"]);
        assert!(
            w.target
                .threads()
                .iter()
                .all(|t| *t == thread::current().id())
        );
    }

    #[test]
    fn after_a_flush_a_writer_sends_in_order_with_one_flush_per_batch() {
        let w = WriteBehind::new(Recorder::default(), true);
        w.submit(data(1)).unwrap();
        w.target.shut();
        w.flush().unwrap();
        w.target.wait_entered(2);
        assert!(
            !w.may_block(),
            "a writer holds the request: calls only queue"
        );
        w.submit(data(2)).unwrap();
        w.flush().unwrap();
        assert!(w.log(4, &CString::new("between").unwrap()));
        w.submit(data(3)).unwrap();
        w.flush().unwrap();
        w.target.open();
        w.sync().unwrap();
        let done = w.target.done();
        assert_eq!(done[..2], ["data1", "flush"]);
        // What piled up while the first flush was out goes as one batch.
        assert_eq!(done[2..], ["data2", "log:between", "data3", "flush"]);
        let me = thread::current().id();
        let threads = w.target.threads();
        assert_eq!(threads[0], me, "before the flush the app's thread wrote");
        assert!(threads[1..].iter().all(|t| *t != me), "then the writer did");
        // Given back: the app's thread does I/O itself again.
        w.submit(data(5)).unwrap();
        assert_eq!(w.target.threads().last(), Some(&thread::current().id()));
    }

    #[test]
    fn the_app_waits_when_the_writer_is_far_behind() {
        let w = WriteBehind::new(Recorder::default(), true);
        w.target.shut();
        w.flush().unwrap();
        w.target.wait_entered(1);
        w.submit(data(HIGH_WATER + 1)).unwrap();
        assert!(w.may_block(), "past the high-water mark");
        let app = {
            let w = w.clone();
            thread::spawn(move || w.submit(data(7)))
        };
        thread::sleep(Duration::from_millis(50));
        assert!(!app.is_finished(), "the app's thread waits for room");
        w.target.open();
        app.join().unwrap().unwrap();
        w.sync().unwrap();
        assert!(w.target.done().contains(&"data7".to_string()));
    }

    #[test]
    fn a_gone_client_fails_the_app_but_its_log_lines_are_kept() {
        let w = WriteBehind::new(Recorder::default(), true);
        w.target.shut();
        w.target
            .fail_data
            .store(true, std::sync::atomic::Ordering::SeqCst);
        w.flush().unwrap();
        // The writer has taken the flush (and waits for the client): what
        // follows is its next batch. Without this wait, whether the flush
        // went alone or with the data depended on when the writer woke.
        w.target.wait_entered(1);
        w.submit(data(1)).unwrap();
        assert!(w.log(3, &CString::new("still logged").unwrap()));
        w.target.open();
        let e = w.sync().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(w.submit(data(1)).is_err());
        assert!(w.flush().is_err());
        assert_eq!(w.target.done(), ["flush", "log:still logged"]);
    }

    #[test]
    fn without_write_behind_a_flush_is_done_at_once() {
        let w = WriteBehind::new(Recorder::default(), false);
        w.flush().unwrap();
        w.submit(data(1)).unwrap();
        assert_eq!(w.target.done(), ["flush", "data1"]);
        assert!(
            w.target
                .threads()
                .iter()
                .all(|t| *t == thread::current().id())
        );
    }
}

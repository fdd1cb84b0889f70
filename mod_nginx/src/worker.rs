//! One nginx worker process's Python side: the interpreter, the Python
//! threads that run requests, and the eventfd through which they wake the
//! event loop. Wake-ups are batched: a Python thread writes the eventfd only
//! when the event loop has not been signalled since it last drained.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ngx::ffi::{
    NGX_LOG_EMERG, ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_event_t,
    ngx_get_connection, ngx_handle_read_event,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;
use oxwsgi_core::{App, Interpreter, InterpreterConfig};
use pyo3::Python;

use crate::Module;
use crate::channel::{Channel, NginxSink};
use crate::request::NginxRequest;

/// A request for a Python thread.
pub struct Job {
    pub app: Arc<App>,
    pub request: NginxRequest,
    pub channel: Arc<Channel>,
}

struct Worker {
    jobs: Mutex<VecDeque<Job>>,
    job_ready: Condvar,
    stopping: AtomicBool,
    /// Channels with messages for the event loop.
    ready: Mutex<Vec<Arc<Channel>>>,
    signalled: AtomicBool,
    /// Closed by nginx with its connection in `stop`.
    eventfd: RawFd,
    threads: Mutex<Vec<JoinHandle<()>>>,
    interpreter: Mutex<Option<Interpreter>>,
    /// The eventfd's nginx connection (event loop thread only).
    conn: std::sync::atomic::AtomicPtr<ngx_connection_t>,
}

static WORKER: OnceLock<Worker> = OnceLock::new();

/// Whether this worker can run Python (it started, and apps are configured).
pub fn ready() -> bool {
    WORKER.get().is_some()
}

/// Queues a request for the Python threads.
pub fn submit(job: Job) -> Result<(), Job> {
    let Some(w) = WORKER.get() else {
        return Err(job);
    };
    let mut q = w.jobs.lock().unwrap_or_else(|p| p.into_inner());
    q.push_back(job);
    drop(q);
    w.job_ready.notify_one();
    Ok(())
}

/// Tells the event loop that `channel` has messages (from a Python thread).
pub fn notify(channel: Arc<Channel>) {
    let Some(w) = WORKER.get() else { return };
    w.ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(channel);
    if !w.signalled.swap(true, Ordering::AcqRel) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to our own eventfd.
        unsafe {
            libc::write(w.eventfd, (&raw const one).cast(), 8);
        }
    }
}

/// Starts Python and the request threads in a new worker process.
///
/// # Safety
/// Called from init_process on the worker's main thread with its cycle.
pub unsafe fn start(cycle: *mut ngx_cycle_t) {
    // SAFETY: the cycle is live; the http main conf exists when the http
    // block was configured.
    let Some(main) = (unsafe { Module::main_conf(&*cycle) }) else {
        return;
    };
    if main.apps.is_empty() {
        // No wsgi_app anywhere: this worker never starts Python.
        return;
    }
    crate::log::install();
    let config = InterpreterConfig {
        python_home: main.python_home.clone(),
        python_path: main.python_path.clone(),
        // print() is the app author's tool: visible at nginx's default level.
        stdout_level: log::Level::Error,
        stderr_level: log::Level::Error,
        ..InterpreterConfig::default()
    };
    let interpreter = match Interpreter::start(config) {
        Ok(i) => i,
        Err(e) => {
            // SAFETY: the cycle's log is valid for the worker's life.
            ngx_log_error!(NGX_LOG_EMERG, unsafe { (*cycle).log }, "oxwsgi: {e}");
            return;
        }
    };
    oxwsgi_core::ensure_thread_state();
    Python::attach(|py| {
        for app in &main.apps {
            app.preload(py);
        }
    });

    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        // SAFETY: as above.
        ngx_log_error!(
            NGX_LOG_EMERG,
            unsafe { (*cycle).log },
            "oxwsgi: eventfd() failed: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let worker = Worker {
        jobs: Mutex::new(VecDeque::new()),
        job_ready: Condvar::new(),
        stopping: AtomicBool::new(false),
        ready: Mutex::new(Vec::new()),
        signalled: AtomicBool::new(false),
        eventfd: fd,
        threads: Mutex::new(Vec::new()),
        interpreter: Mutex::new(Some(interpreter)),
        conn: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
    };
    if WORKER.set(worker).is_err() {
        return;
    }
    let w = WORKER.get().expect("just set");

    // SAFETY: registering our eventfd with this worker's event loop, on the
    // event loop thread; the connection lives until `stop` closes it.
    unsafe {
        let c = ngx_get_connection(fd, (*cycle).log);
        if c.is_null() {
            ngx_log_error!(
                NGX_LOG_EMERG,
                (*cycle).log,
                "oxwsgi: no free connection for the notifier"
            );
            return;
        }
        let rev = (*c).read;
        (*rev).handler = Some(on_notify);
        (*rev).log = (*cycle).log;
        (*c).log = (*cycle).log;
        if ngx_handle_read_event(rev, 0) != ngx::ffi::NGX_OK as isize {
            ngx_log_error!(
                NGX_LOG_EMERG,
                (*cycle).log,
                "oxwsgi: cannot watch the notifier"
            );
            return;
        }
        w.conn.store(c, Ordering::Release);
    }

    let mut threads = w.threads.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..main.threads() {
        let t = std::thread::Builder::new()
            .name(format!("oxwsgi-{i}"))
            .spawn(run_jobs);
        match t {
            Ok(t) => threads.push(t),
            Err(e) => log::error!(target: "oxwsgi", "cannot start Python thread {i}: {e}"),
        }
    }
}

/// A Python thread: runs requests until the worker stops.
fn run_jobs() {
    let w = WORKER.get().expect("worker exists before its threads");
    oxwsgi_core::ensure_thread_state();
    loop {
        let job = {
            let mut q = w.jobs.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(j) = q.pop_front() {
                    break Some(j);
                }
                if w.stopping.load(Ordering::Acquire) {
                    break None;
                }
                q = w.job_ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(mut job) = job else { return };
        let sink = Box::new(NginxSink::new(job.channel.clone()));
        oxwsgi_core::handle(&job.app, &mut job.request, sink);
    }
}

/// The event loop's side of the eventfd: drain it, then deliver every ready
/// channel's messages to its request.
unsafe extern "C" fn on_notify(ev: *mut ngx_event_t) {
    let Some(w) = WORKER.get() else { return };
    let mut buf = 0u64;
    loop {
        // SAFETY: reading 8 bytes into a live u64 from our own eventfd.
        let n = unsafe { libc::read(w.eventfd, (&raw mut buf).cast(), 8) };
        if n != 8 {
            break;
        }
    }
    // SAFETY: ev is our notifier's read event, owned by the event loop.
    unsafe { (*ev).set_ready(0) };
    w.signalled.store(false, Ordering::Release);
    let ready = std::mem::take(&mut *w.ready.lock().unwrap_or_else(|p| p.into_inner()));
    for channel in ready {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: on the event loop thread, as output requires.
            unsafe { crate::output::deliver(&channel) }
        }));
    }
}

/// Stops the Python threads and finalises Python as the worker exits.
///
/// # Safety
/// Called from exit_process on the worker's main thread.
pub unsafe fn stop(_cycle: *mut ngx_cycle_t) {
    let Some(w) = WORKER.get() else { return };
    w.stopping.store(true, Ordering::Release);
    w.job_ready.notify_all();
    let threads = std::mem::take(&mut *w.threads.lock().unwrap_or_else(|p| p.into_inner()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stuck = 0;
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            stuck += 1;
        }
    }
    if stuck == 0 {
        let c = w.conn.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !c.is_null() {
            // SAFETY: our notifier connection, on the event loop thread; nginx
            // closes the eventfd with it. No thread can write to it any more.
            unsafe { ngx_close_connection(c) };
        }
    }
    let interpreter = w
        .interpreter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match (interpreter, stuck) {
        (Some(i), 0) => i.shutdown(),
        (Some(_), n) => log::warn!(
            target: "oxwsgi",
            "{n} Python request thread(s) still busy at exit; Python is left to the process exit"
        ),
        (None, _) => {}
    }
}

//! One nginx worker process's Python side: the interpreter, the Python
//! threads that run requests, and the eventfd through which they wake the
//! event loop.
//!
//! Every wake-up is a thread switch on a busy CPU, so both directions batch:
//! - the event loop queues jobs as it handles connections and, when no
//!   Python thread is awake, wakes one once per loop iteration (a posted
//!   event), not per request; an awake thread takes the next job itself;
//! - a Python thread that finishes a response while more jobs wait does not
//!   wake the event loop yet: it goes on with the next job, and signals once
//!   for the lot (at most every `BATCH_JOBS` jobs);
//! - a 1 ms watchdog on the event loop covers what batching could delay: a
//!   job that waits while every awake thread is blocked in the app gets
//!   another thread, and responses left by a thread that then blocked are
//!   delivered. Its timer is armed exactly while jobs are in flight and is
//!   not cancelable, which is what makes a graceful quit or reload wait for
//!   them.

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
use oxwsgi_core::ops::recycle::Recycler;
use oxwsgi_core::ops::timeouts;
use oxwsgi_core::sync::Recover;
use oxwsgi_core::{App, Interpreter, guard};

use crate::Module;
use crate::output::channel::{Channel, NginxSink};
use crate::request::NginxRequest;

/// A request for a Python thread.
pub struct Job {
    pub app: Arc<App>,
    pub request: NginxRequest,
    pub channel: Arc<Channel>,
    pub queued_at: Instant,
}

/// Jobs a Python thread runs back to back before it must wake the loop.
const BATCH_JOBS: usize = 16;
/// How long a queued job may wait before the watchdog wakes another thread.
const DISPATCH_DELAY: Duration = Duration::from_millis(1);

/// The event loop's own events (event loop thread only).
// SAFETY: ngx_event_t is a C struct of pointers, integers and bit fields,
// for which all zeroes is the state nginx itself gives a new event.
static mut KICK: ngx_event_t = unsafe { std::mem::zeroed() };
// SAFETY: ngx_event_t is plain C data; all zeroes is a new, idle event.
static mut WATCHDOG: ngx_event_t = unsafe { std::mem::zeroed() };
/// What the events above point at as their connection (fd -1): nginx's
/// debug logging of timers reads `ev->data` as a connection to print its
/// fd, and a null one crashed the worker under `error_log ... debug`. nginx
/// gives its own connectionless events such a dummy the same way.
// SAFETY: ngx_event_t is plain C data; all zeroes is a new, idle event.
static mut RECYCLE_TIMER: ngx_event_t = unsafe { std::mem::zeroed() };
/// A recycling worker answers with `Connection: close` and quits once none
/// of its connections is idle in keep-alive (every client has been told to
/// reconnect), looking every `DRAIN_STEP`, or after `DRAIN_MAX` anyway (a
/// client that sends nothing). Quitting closes idle kept-alive connections,
/// and a client sending on one just then would lose its request.
const DRAIN_STEP: Duration = Duration::from_millis(50);
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// When the drain began (µs since the worker's epoch; event loop only).
static DRAIN_SINCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
// SAFETY: ngx_connection_t is plain C data; `start` sets its fd before use.
static mut DUMMY_CONNECTION: ngx_connection_t = unsafe { std::mem::zeroed() };

thread_local! {
    /// This Python thread is running queued jobs back to back.
    static BATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// It finished responses without waking the event loop.
    static DEFERRED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct Worker {
    jobs: Mutex<VecDeque<Job>>,
    job_ready: Condvar,
    /// Python threads waiting for a job: a new job wakes one only when one
    /// sleeps, sparing a futex call per request under load.
    idle: std::sync::atomic::AtomicUsize,
    /// Python threads started.
    spawned: std::sync::atomic::AtomicUsize,
    /// The channels of requests handed to Python, so an exiting worker can
    /// release threads that wait on a client (pruned as requests end).
    live: Mutex<Vec<std::sync::Weak<Channel>>>,
    /// Jobs submitted and not finished, for the watchdog.
    inflight: std::sync::atomic::AtomicUsize,
    /// When a Python thread last took a job (µs since `epoch`): the
    /// watchdog adds a thread only when the awake ones stopped taking jobs
    /// (they are blocked in the app), not merely because the CPU is busy.
    last_take: std::sync::atomic::AtomicU64,
    /// Which thread took the last job.
    last_taker: std::sync::atomic::AtomicUsize,
    epoch: Instant,
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
    /// When this worker's Python is to be replaced (by this worker exiting).
    recycler: Recycler,
    /// The event loop has been told to quit gracefully (event loop only).
    quitting: AtomicBool,
}

static WORKER: OnceLock<Worker> = OnceLock::new();

impl Worker {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Whether this worker can run Python (it started, and apps are configured).
pub fn ready() -> bool {
    WORKER.get().is_some()
}

/// Queues a request for the Python threads (event loop thread). False
/// when this worker runs no Python.
pub fn submit(job: Job) -> bool {
    let Some(w) = WORKER.get() else {
        return false;
    };
    {
        let mut live = w.live.lock().recover();
        if live.len() >= 256 && live.len().is_power_of_two() {
            live.retain(|c| c.strong_count() > 0);
        }
        live.push(Arc::downgrade(&job.channel));
    }
    let mut q = w.jobs.lock().recover();
    q.push_back(job);
    drop(q);
    w.inflight.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the kick and watchdog events belong to the event loop thread,
    // which is the one running this; they were set up in `start`.
    unsafe {
        let kick = &raw mut KICK;
        // Wake a thread only when none is awake: an awake one takes the job
        // when it is done with the current one, and more threads would only
        // fight over the GIL. Threads stuck in the app are the watchdog's.
        let idle = w.idle.load(Ordering::Relaxed);
        let awake = w.spawned.load(Ordering::Relaxed).saturating_sub(idle);
        if idle > 0 && awake == 0 && (*kick).posted() == 0 {
            ngx::ffi::ngx_post_event(kick, &raw mut ngx::ffi::ngx_posted_events);
        }
        arm_watchdog();
    }
    true
}

/// # Safety
/// On the event loop thread, after `start`.
unsafe fn arm_watchdog() {
    let dog = &raw mut WATCHDOG;
    // SAFETY: WATCHDOG is set up by `start` and used only on the event
    // loop thread, which is the caller (arm_watchdog's contract).
    unsafe {
        if (*dog).timer_set() == 0 {
            ngx::ffi::ngx_add_timer(dog, DISPATCH_DELAY.as_millis() as ngx::ffi::ngx_msec_t);
        }
    }
}

/// After the loop iteration that queued jobs: wake one sleeping thread.
unsafe extern "C" fn on_kick(_: *mut ngx_event_t) {
    guard::entry("the kick event", (), || {
        let Some(w) = WORKER.get() else { return };
        if w.idle.load(Ordering::Relaxed) > 0 {
            w.job_ready.notify_one();
        }
    })
}

/// Every millisecond while jobs are in flight: a job that waited too long
/// gets another thread, and responses nobody signalled are delivered.
unsafe extern "C" fn on_watchdog(_: *mut ngx_event_t) {
    guard::entry("the watchdog event", (), || {
        let Some(w) = WORKER.get() else { return };
        let stalled = {
            let q = w.jobs.lock().recover();
            let idle_for = w
                .now_us()
                .saturating_sub(w.last_take.load(Ordering::Relaxed));
            q.front()
                .is_some_and(|j| j.queued_at.elapsed() >= DISPATCH_DELAY)
                && idle_for >= DISPATCH_DELAY.as_micros() as u64
        };
        if stalled && w.idle.load(Ordering::Relaxed) > 0 {
            w.job_ready.notify_one();
        }
        refuse_expired(w);
        // SAFETY: on the event loop thread.
        unsafe { drain_ready(w) };
        quit_if_recycling(w);
        // Requests whose thread is written off as stuck no longer keep the
        // timer (and with it a graceful exit) alive. A thread queues its
        // finished response before it stops counting the job (Release /
        // Acquire), so with no job counted, what is not delivered is in
        // `ready`: the timer stays for it. Without that an exiting worker,
        // seeing no timer left, exited with answers it had not sent.
        let counted = w.inflight.load(Ordering::Acquire) > timeouts::stuck_threads();
        if counted || !w.ready.lock().recover().is_empty() {
            // SAFETY: the watchdog's handler runs on the event loop thread,
            // after `start` set the watchdog up.
            unsafe { arm_watchdog() };
        }
    })
}

/// Answers the queued requests that waited past their queue timeout
/// (503, never seen by the app) from the event loop, not when a Python
/// thread gets to them: with every thread busy in a slow app that could be
/// long after the limit.
fn refuse_expired(w: &Worker) {
    if !QUEUE_TIMEOUTS.load(Ordering::Relaxed) {
        return;
    }
    let expired: VecDeque<Job> = {
        let mut q = w.jobs.lock().recover();
        let expired = |j: &Job| oxwsgi_core::handler::queue_expired(&j.app, j.queued_at.elapsed());
        // Every millisecond while jobs wait: look before rebuilding the queue.
        if !q.iter().any(expired) {
            return;
        }
        let (expired, kept) = std::mem::take(&mut *q).into_iter().partition(expired);
        *q = kept;
        expired
    };
    for job in expired {
        let sink = Box::new(NginxSink::new(job.channel.clone()));
        let waited = job.queued_at.elapsed();
        oxwsgi_core::handler::refuse_queued(&job.app, &job.request, waited, sink);
        w.inflight.fetch_sub(1, Ordering::Release);
    }
}

/// Some app of this configuration has a queue timeout (set at start).
static QUEUE_TIMEOUTS: AtomicBool = AtomicBool::new(false);

/// How channels wake this worker's event loop.
pub struct WorkerNotifier;

pub static NOTIFIER: WorkerNotifier = WorkerNotifier;

impl crate::output::channel::Notifier for WorkerNotifier {
    fn notify(&self, channel: Arc<Channel>, urgent: bool) {
        notify(channel, urgent);
    }

    fn flush_deferred(&self) {
        flush_deferred();
    }
}

/// Tells the event loop that `channel` has messages (from a Python thread).
/// The end of a response (`urgent` false) may wait for the end of the
/// thread's batch of jobs.
fn notify(channel: Arc<Channel>, urgent: bool) {
    let Some(w) = WORKER.get() else { return };
    w.ready.lock().recover().push(channel);
    if !urgent && BATCHING.with(|b| b.get()) {
        DEFERRED.with(|d| d.set(true));
        return;
    }
    wake_loop(w);
}

fn wake_loop(w: &Worker) {
    if !w.signalled.swap(true, Ordering::AcqRel) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to our own eventfd.
        unsafe {
            libc::write(w.eventfd, (&raw const one).cast(), 8);
        }
    }
}

/// Wakes the event loop for responses this thread finished without doing so.
pub fn flush_deferred() {
    if DEFERRED.with(|d| d.replace(false)) {
        if let Some(w) = WORKER.get() {
            wake_loop(w);
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
    // SAFETY: the cycle's log is valid for the worker's life.
    let log = unsafe { (*cycle).log };
    let Some(interpreter) = start_python(main, log) else {
        return;
    };
    let Some(fd) = notifier_fd(log) else {
        return;
    };
    if WORKER.set(Worker::new(fd, interpreter, main)).is_err() {
        return;
    }
    let w = WORKER.get().expect("just set");
    timeouts::on_stuck(Box::new(|why| {
        let Some(w) = WORKER.get() else { return };
        let reason = oxwsgi_core::ops::metrics::RecycleReason::Stuck;
        if let Some(why) = w.recycler.decide(reason, why.to_string()) {
            recycle(w, &why);
        }
    }));
    // SAFETY: on the event loop thread, in init_process, with the worker's
    // log.
    if unsafe { watch_notifier(w, fd, log) } {
        spawn_threads(w, main.threads());
    }
}

/// Python for this worker, with every app of the configuration loaded,
/// attached to the metrics; `None` (logged) if it cannot start.
fn start_python(
    main: &crate::conf::MainConf,
    log: *mut ngx::ffi::ngx_log_t,
) -> Option<Interpreter> {
    let queue_timeouts = main
        .apps
        .iter()
        .any(|a| a.options().queue_timeout.is_some());
    QUEUE_TIMEOUTS.store(queue_timeouts, Ordering::Relaxed);
    let interpreter = Interpreter::start_in_worker(
        main.python_home.clone(),
        main.python_path.clone(),
        main.apps.iter().map(|a| &**a),
    );
    let interpreter = match interpreter {
        Ok(i) => i,
        Err(e) => {
            ngx_log_error!(NGX_LOG_EMERG, log, "oxwsgi: {e}");
            return None;
        }
    };
    if let Some(region) = crate::status::region(main) {
        oxwsgi_core::ops::metrics::attach(region, main.threads(), None);
    }
    Some(interpreter)
}

/// The eventfd through which Python threads wake the event loop.
fn notifier_fd(log: *mut ngx::ffi::ngx_log_t) -> Option<i32> {
    // SAFETY: plain syscall; the fd is owned by the worker from here.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        ngx_log_error!(
            NGX_LOG_EMERG,
            log,
            "oxwsgi: eventfd() failed: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    Some(fd)
}

impl Worker {
    fn new(eventfd: i32, interpreter: Interpreter, main: &crate::conf::MainConf) -> Worker {
        Worker {
            jobs: Mutex::new(VecDeque::new()),
            job_ready: Condvar::new(),
            idle: std::sync::atomic::AtomicUsize::new(0),
            spawned: std::sync::atomic::AtomicUsize::new(0),
            live: Mutex::new(Vec::new()),
            inflight: std::sync::atomic::AtomicUsize::new(0),
            last_take: std::sync::atomic::AtomicU64::new(0),
            last_taker: std::sync::atomic::AtomicUsize::new(usize::MAX),
            epoch: Instant::now(),
            stopping: AtomicBool::new(false),
            ready: Mutex::new(Vec::new()),
            signalled: AtomicBool::new(false),
            eventfd,
            threads: Mutex::new(Vec::new()),
            interpreter: Mutex::new(Some(interpreter)),
            conn: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            recycler: Recycler::new(main.recycle_limits(), u64::from(std::process::id())),
            quitting: AtomicBool::new(false),
        }
    }
}

/// Puts the notifier's eventfd on the event loop, and readies the
/// worker's own events (the kick, the recycle timer, the watchdog);
/// false (logged) if nginx has no connection for it.
///
/// # Safety
/// On the event loop thread, in init_process; `log` is the worker's.
unsafe fn watch_notifier(w: &Worker, fd: i32, log: *mut ngx::ffi::ngx_log_t) -> bool {
    // SAFETY: registering our eventfd with this worker's event loop, on the
    // event loop thread (the contract); the connection lives until `stop`
    // closes it; the statics are this worker's events, touched only on
    // this thread.
    unsafe {
        let c = ngx_get_connection(fd, log);
        if c.is_null() {
            ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "oxwsgi: no free connection for the notifier"
            );
            return false;
        }
        let rev = (*c).read;
        (*rev).handler = Some(on_notify);
        (*rev).log = log;
        (*c).log = log;
        if ngx_handle_read_event(rev, 0) != ngx::ffi::NGX_OK as isize {
            ngx_log_error!(NGX_LOG_EMERG, log, "oxwsgi: cannot watch the notifier");
            return false;
        }
        w.conn.store(c, Ordering::Release);
        let dummy = &raw mut DUMMY_CONNECTION;
        (*dummy).fd = -1;
        // The watchdog is not cancelable: while it is armed (jobs in
        // flight) a gracefully exiting worker waits for them instead of
        // dropping their requests.
        for (ev, handler) in [
            (
                &raw mut KICK,
                on_kick as unsafe extern "C" fn(*mut ngx_event_t),
            ),
            (&raw mut RECYCLE_TIMER, on_recycle_timer),
            (&raw mut WATCHDOG, on_watchdog),
        ] {
            (*ev).handler = Some(handler);
            (*ev).log = log;
            (*ev).data = dummy.cast();
        }
    }
    true
}

/// The worker's Python threads.
fn spawn_threads(w: &Worker, n: usize) {
    let mut threads = w.threads.lock().recover();
    for i in 0..n {
        let t = std::thread::Builder::new()
            .name(format!("oxwsgi-{i}"))
            .spawn(move || run_jobs(i));
        match t {
            Ok(t) => {
                threads.push(t);
                w.spawned.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => log::error!(target: "oxwsgi", "cannot start Python thread {i}: {e}"),
        }
    }
}

/// A Python thread: runs requests until the worker stops.
fn run_jobs(me: usize) {
    let w = WORKER.get().expect("worker exists before its threads");
    oxwsgi_core::ensure_thread_state();
    let mut batch = 0;
    let mut step_aside = false;
    loop {
        let (job, more) = {
            let mut q = w.jobs.lock().recover();
            loop {
                if !step_aside {
                    if let Some(j) = q.pop_front() {
                        w.last_take.store(w.now_us(), Ordering::Relaxed);
                        w.last_taker.store(me, Ordering::Relaxed);
                        break (Some(j), !q.is_empty());
                    }
                }
                if w.stopping.load(Ordering::Acquire) {
                    break (None, false);
                }
                drop(q);
                flush_deferred();
                batch = 0;
                q = w.jobs.lock().recover();
                if !q.is_empty() && !step_aside {
                    continue;
                }
                step_aside = false;
                w.idle.fetch_add(1, Ordering::Relaxed);
                q = w.job_ready.wait(q).recover();
                w.idle.fetch_sub(1, Ordering::Relaxed);
            }
        };
        let Some(mut job) = job else {
            flush_deferred();
            return;
        };
        if log::log_enabled!(target: "oxwsgi", log::Level::Debug) {
            log::debug!(
                target: "oxwsgi",
                "{}: picked by Python thread {me} after {:?} in the queue",
                String::from_utf8_lossy(oxwsgi_core::Request::uri(&job.request)),
                job.queued_at.elapsed()
            );
        }
        let batching = more && batch < BATCH_JOBS;
        BATCHING.with(|b| b.set(batching));
        let sink = Box::new(NginxSink::new(job.channel.clone()));
        let waited = job.queued_at.elapsed();
        oxwsgi_core::handle_after_wait(&job.app, &mut job.request, sink, waited);
        w.inflight.fetch_sub(1, Ordering::Release);
        if let Some(why) = w.recycler.after_request() {
            recycle(w, &why);
        }
        if batching {
            batch += 1;
        } else {
            flush_deferred();
            batch = 0;
        }
        // Another thread took a job while this one ran: the app did not block
        // it, so two threads would only take turns with the GIL. This one
        // sleeps; the watchdog wakes it if the other one gets stuck.
        let others_busy = w.last_taker.load(Ordering::Relaxed) != me
            && w.now_us()
                .saturating_sub(w.last_take.load(Ordering::Relaxed))
                < STEP_ASIDE_US;
        step_aside = others_busy;
    }
}

/// How recent another thread's take must be for this one to step aside.
const STEP_ASIDE_US: u64 = 200;

/// The event loop's side of the eventfd: drain it, then deliver every ready
/// channel's messages to its request.
unsafe extern "C" fn on_notify(ev: *mut ngx_event_t) {
    guard::entry("the notify event", (), || {
        guard::failpoint("notify_event");
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
        // SAFETY: on the event loop thread.
        unsafe { drain_ready(w) };
        quit_if_recycling(w);
    })
}

/// Replaces this worker's Python: the worker finishes its requests and
/// exits as on `nginx -s quit`, and nginx's master, which sees a worker it
/// did not stop exit, starts a fresh one (with a fresh Python). Called
/// once, with the reason the recycler decided on; any thread.
fn recycle(w: &Worker, why: &str) {
    log::warn!(
        target: "oxwsgi",
        "recycling this worker process: {why}; it finishes its requests and exits, and nginx starts a new one"
    );
    wake_loop(w);
}

/// Whether this worker is about to exit: recycling, or told to quit by the
/// master (`nginx -s reload` or `quit`). Event loop thread.
pub fn draining() -> bool {
    // SAFETY: nginx's exit flags, written by its signal handler and its
    // cycle on this same thread; a stale read only delays the drain.
    let exiting = unsafe { ngx::ffi::ngx_quit != 0 || ngx::ffi::ngx_exiting != 0 };
    exiting
        || WORKER
            .get()
            .is_some_and(|w| w.quitting.load(Ordering::Relaxed))
}

/// On the event loop, once recycling was decided: drain (responses close
/// their connections), then quit gracefully.
fn quit_if_recycling(w: &Worker) {
    if w.recycler.reason().is_none() || w.quitting.swap(true, Ordering::Relaxed) {
        return;
    }
    DRAIN_SINCE.store(w.now_us(), Ordering::Relaxed);
    // SAFETY: on the event loop thread, after `start`.
    unsafe { arm_recycle_timer() };
}

/// # Safety
/// On the event loop thread, after `start` set the timer up.
unsafe fn arm_recycle_timer() {
    let timer = &raw mut RECYCLE_TIMER;
    // SAFETY: the timer is only used on the event loop thread (the
    // caller's), and `start` set it up.
    unsafe { ngx::ffi::ngx_add_timer(timer, DRAIN_STEP.as_millis() as ngx::ffi::ngx_msec_t) };
}

/// Connections of this worker idle in keep-alive.
///
/// # Safety
/// On the event loop thread: nginx's connection table is its.
unsafe fn idle_keepalive_connections() -> usize {
    // SAFETY: ngx_cycle is this worker's live cycle; its connection array
    // has connection_n entries, owned by this (event loop) thread; a free
    // entry has fd -1.
    unsafe {
        let cycle = ngx::ffi::ngx_cycle;
        let conns = std::slice::from_raw_parts((*cycle).connections, (*cycle).connection_n);
        conns.iter().filter(|c| c.fd != -1 && c.idle() != 0).count()
    }
}

unsafe extern "C" fn on_recycle_timer(_: *mut ngx_event_t) {
    guard::entry("the recycle timer", (), || {
        let Some(w) = WORKER.get() else { return };
        let draining_for = w
            .now_us()
            .saturating_sub(DRAIN_SINCE.load(Ordering::Relaxed));
        // SAFETY: a timer handler, on the event loop thread.
        let idle = unsafe { idle_keepalive_connections() };
        if idle > 0 && draining_for < DRAIN_MAX.as_micros() as u64 {
            // SAFETY: on the event loop thread, after `start`.
            unsafe { arm_recycle_timer() };
            return;
        }
        // SAFETY: ngx_quit is the flag nginx's own SIGQUIT handler sets; the
        // worker's cycle reads it after this event handler returns, on this
        // same thread.
        unsafe { ngx::ffi::ngx_quit = 1 };
    })
}

/// Delivers every ready channel's messages to its request.
///
/// # Safety
/// On the event loop thread.
unsafe fn drain_ready(w: &Worker) {
    let ready = std::mem::take(&mut *w.ready.lock().recover());
    for channel in ready {
        // One response failing must not keep the others from theirs.
        guard::entry("delivering a response", (), || {
            // SAFETY: on the event loop thread, as output requires.
            unsafe { crate::output::deliver(&channel) }
        });
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
    // Threads waiting for a client (a body still arriving, room to send)
    // would wait forever now: their requests end with the process.
    for c in std::mem::take(&mut *w.live.lock().recover()) {
        if let Some(c) = c.upgrade() {
            c.close();
        }
    }
    let threads = std::mem::take(&mut *w.threads.lock().recover());
    // Threads written off as stuck are not waited for: with them the exit
    // (and so the master's new worker) would wait out the whole bound.
    let deadline = Instant::now() + Duration::from_secs(5);
    let busy = |ts: &[JoinHandle<()>]| ts.iter().filter(|t| !t.is_finished()).count();
    while busy(&threads) > timeouts::stuck_threads() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stuck = 0;
    for t in threads {
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
    let interpreter = w.interpreter.lock().recover().take();
    match (interpreter, stuck) {
        (Some(i), 0) => i.shutdown(),
        (Some(_), n) => log::warn!(
            target: "oxwsgi",
            "{n} Python request thread(s) still busy at exit; Python is left to the process exit"
        ),
        (None, _) => {}
    }
}

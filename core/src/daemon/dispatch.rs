//! A daemon process's requests. One epoll set holds the group's listening
//! socket and every idle connection, each registered one-shot: the thread
//! woken for a connection serves its request on the spot and arms it
//! again, so a request costs one wake-up (no thread hands connections to
//! another), and an idle pooled connection never holds a thread: the
//! server may keep far more connections open than the daemon has threads
//! (every Apache child keeps its own). A request waits, if all threads are
//! busy, in its socket; the server's stamp in the head tells the queue
//! timeout how long.
//!
//! One thread at a time waits on the set (the poller); the others are
//! parked. The poller that got a request serves it and then polls again,
//! so under load one thread takes request after request while the others
//! sleep: Python runs one thread at a time anyway, and more awake threads
//! would only take turns with the GIL (a futex storm that cost a third of
//! a hello request). Threads are for apps that block: when nobody polls,
//! nobody took a request for `HELP_AFTER` and the process is not using
//! the CPU (the busy threads are blocked in their apps), the watchdog lets
//! a parked thread poll.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sync::Recover;

use super::options::GroupOptions;
use super::serve::{Apps, Connection};
use super::sys::{self, Epoll};

/// The listening socket's token; connections count up from 1.
const LISTENER: u64 = 0;

/// How often a waiting thread looks at `stop`, in ms.
const STOP_CHECK_MS: i32 = 100;

/// How long requests may wait while every awake thread is in its app
/// before another thread polls.
const HELP_AFTER: Duration = Duration::from_millis(1);

struct Shared {
    epoll: Epoll,
    listener: UnixListener,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next: AtomicU64,
    stop: Arc<AtomicBool>,
    options: GroupOptions,
    /// A thread waits on the epoll set.
    polling: AtomicBool,
    /// Parked threads, and the permits to poll the watchdog gave them.
    parked: Mutex<Parked>,
    gate: Condvar,
    /// When a thread last took a request (µs since `epoch`), and which.
    last_take_us: AtomicU64,
    last_taker: AtomicUsize,
    epoch: Instant,
}

#[derive(Default)]
struct Parked {
    waiting: usize,
    permits: usize,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Parks this thread until the watchdog lets it poll (or the group
    /// stops).
    fn park(&self) {
        let mut p = self.parked.lock().recover();
        p.waiting += 1;
        while p.permits == 0 && !self.stop.load(Ordering::Acquire) {
            p = self
                .gate
                .wait_timeout(p, Duration::from_millis(STOP_CHECK_MS as u64))
                .recover()
                .0;
        }
        p.permits = p.permits.saturating_sub(1);
        p.waiting -= 1;
    }

    /// Lets a parked thread poll when the awake ones are all blocked in
    /// their apps: nobody polls, nobody took a request for `HELP_AFTER`,
    /// and the process hardly used the CPU meanwhile. A thread that
    /// computes (or waits for a CPU the server's own process uses: the two
    /// often share one) gets no helper, which would only take turns with
    /// it for the GIL.
    fn watchdog(&self) {
        let mut cpu_then = sys::process_cpu_us();
        let mut then = self.now_us();
        while !self.stop.load(Ordering::Acquire) {
            let polling = self.polling.load(Ordering::Acquire);
            // While somebody polls, requests are being taken: look rarely.
            std::thread::sleep(if polling { HELP_AFTER * 20 } else { HELP_AFTER });
            let (cpu, now) = (sys::process_cpu_us(), self.now_us());
            let busy = cpu.saturating_sub(cpu_then) * 4 > now.saturating_sub(then);
            (cpu_then, then) = (cpu, now);
            let idle_for = now.saturating_sub(self.last_take_us.load(Ordering::Relaxed));
            if !busy
                && !self.polling.load(Ordering::Acquire)
                && idle_for >= HELP_AFTER.as_micros() as u64
            {
                let mut p = self.parked.lock().recover();
                if p.waiting > p.permits {
                    p.permits += 1;
                    drop(p);
                    self.gate.notify_one();
                }
            }
        }
        self.gate.notify_all();
    }
}

/// Serves `listener`'s connections with the group's Python threads until
/// `stop` is set; then lets the requests in progress finish, closes the
/// idle connections (the server sends a request it had written on one
/// again, on another) and returns.
pub fn run(
    listener: UnixListener,
    apps: Apps,
    options: &GroupOptions,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    epoll.add(listener.as_raw_fd(), LISTENER)?;
    let shared = Arc::new(Shared {
        epoll,
        listener,
        connections: Mutex::new(HashMap::new()),
        next: AtomicU64::new(LISTENER + 1),
        stop,
        options: options.clone(),
        polling: AtomicBool::new(false),
        parked: Mutex::new(Parked::default()),
        gate: Condvar::new(),
        last_take_us: AtomicU64::new(0),
        last_taker: AtomicUsize::new(usize::MAX),
        epoch: Instant::now(),
    });
    let apps = Arc::new(apps);
    let workers: Vec<_> = (0..options.threads.max(1))
        .map(|i| {
            let shared = shared.clone();
            let apps = apps.clone();
            let mut b = std::thread::Builder::new().name(format!("oxwsgi-group-{i}"));
            if let Some(size) = options.limits.stack_size {
                b = b.stack_size(size);
            }
            b.spawn(move || worker(&shared, &apps, i))
        })
        .collect::<io::Result<_>>()?;
    let watchdog = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("oxwsgi-dispatch".into())
            .spawn(move || shared.watchdog())?
    };
    for w in workers {
        let _ = w.join();
    }
    let _ = watchdog.join();
    // What is still open is idle; closing it tells the server.
    for (_, c) in shared.connections.lock().recover().drain() {
        let _ = shared.epoll.delete(c.fd());
    }
    Ok(())
}

/// How recent another thread's take must be for this one to step aside.
const STEP_ASIDE: Duration = Duration::from_millis(2);

/// A Python thread: polls for whichever socket is ready and serves it, or
/// parks.
fn worker(shared: &Shared, apps: &Apps, me: usize) {
    crate::embed::ensure_thread_state();
    let mut step_aside = false;
    while !shared.stop.load(Ordering::Acquire) {
        if step_aside
            || shared
                .polling
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            step_aside = false;
            shared.park();
            continue;
        }
        let waited = shared.epoll.wait_one(STOP_CHECK_MS);
        shared.polling.store(false, Ordering::Release);
        let token = match waited {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                log::error!(target: "oxwsgi", "waiting for requests failed: {e}");
                return;
            }
        };
        shared
            .last_take_us
            .store(shared.now_us(), Ordering::Relaxed);
        shared.last_taker.store(me, Ordering::Relaxed);
        if token == LISTENER {
            accept_all(shared);
            continue;
        }
        let Some(conn) = shared.connections.lock().recover().get(&token).cloned() else {
            continue;
        };
        serve(shared, apps, token, &conn);
        // Another thread took a request while this one served: the app did
        // not block it, and two threads would only take turns with the GIL.
        // This one parks; the watchdog wakes it if the other one blocks.
        step_aside = shared.last_taker.load(Ordering::Relaxed) != me
            && shared
                .now_us()
                .saturating_sub(shared.last_take_us.load(Ordering::Relaxed))
                < STEP_ASIDE.as_micros() as u64;
    }
}

/// Serves the requests `conn` has (more than one when the next was read
/// with the last), then arms it again or lets it go.
fn serve(shared: &Shared, apps: &Apps, token: u64, conn: &Connection) {
    loop {
        let keep = match conn.serve_one(apps, Instant::now()) {
            Ok(keep) => keep,
            Err(e) => {
                log::error!(target: "oxwsgi", "a connection from the server failed: {e}");
                false
            }
        };
        // Stopping: idle connections close (the server retries there).
        if !keep || shared.stop.load(Ordering::Acquire) {
            let _ = shared.epoll.delete(conn.fd());
            shared.connections.lock().recover().remove(&token);
            return;
        }
        if !conn.has_buffered() {
            break;
        }
    }
    if let Err(e) = shared.epoll.rearm(conn.fd(), token) {
        log::error!(target: "oxwsgi", "cannot wait on a connection again: {e}");
        shared.connections.lock().recover().remove(&token);
    }
}

fn accept_all(shared: &Shared) {
    loop {
        match shared.listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = adopt(shared, stream) {
                    log::error!(target: "oxwsgi", "a new connection failed: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!(target: "oxwsgi", "accept on the group's socket failed: {e}");
                break;
            }
        }
    }
    if let Err(e) = shared.epoll.rearm(shared.listener.as_raw_fd(), LISTENER) {
        log::error!(target: "oxwsgi", "cannot wait on the group's socket again: {e}");
    }
}

/// A new connection from the server, with the group's socket buffers.
fn adopt(shared: &Shared, stream: UnixStream) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let o = &shared.options;
    if let Some(n) = o.send_buffer_size {
        sys::set_buffer(fd, libc::SO_SNDBUF, n);
    }
    if let Some(n) = o.receive_buffer_size {
        sys::set_buffer(fd, libc::SO_RCVBUF, n);
    }
    let conn = Arc::new(Connection::new(stream, o.response_buffer_size)?);
    let token = shared.next.fetch_add(1, Ordering::Relaxed);
    shared
        .connections
        .lock()
        .recover()
        .insert(token, conn.clone());
    if let Err(e) = shared.epoll.add(conn.fd(), token) {
        shared.connections.lock().recover().remove(&token);
        return Err(e);
    }
    Ok(())
}

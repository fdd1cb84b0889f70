//! A daemon process's requests. The Python threads wait on one epoll set
//! holding every idle connection, each registered one-shot: the thread
//! woken for a connection serves its request on the spot and arms it
//! again, so a request costs one wake-up (no thread hands connections to
//! another), and an idle pooled connection never holds a thread: the
//! server may keep far more connections open than the daemon has threads
//! (every Apache child keeps its own). A request waits, if all threads are
//! busy, in its socket; the server's stamp in the head tells the queue
//! timeout how long.
//!
//! One more thread, without Python, accepts new connections and answers
//! each with `Accepted` at once, busy or not: a server that hears nothing
//! within its connect timeout knows that no daemon of the group is there
//! to serve, and answers 503 without having sent the request.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::Recover;

use crate::daemon::options::GroupOptions;
use crate::daemon::process::serve::{Apps, ServerConnection};
use crate::daemon::sys::{self, Epoll};

/// How often a waiting thread looks at `stop`, in ms.
const STOP_CHECK_MS: i32 = 100;

/// How long a new connection may take to introduce itself (the server
/// does it as it connects).
const HELLO_LIMIT: Duration = Duration::from_secs(5);

/// How long a daemon waits for the server in the middle of a frame (a
/// head sent in part, a body the app waits for) without a group's
/// `socket-timeout`: Apache's default `Timeout`, which mod_wsgi's
/// socket-timeout defaults to.
const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(300);

struct Shared {
    epoll: Epoll,
    listener: UnixListener,
    connections: Mutex<HashMap<u64, Arc<ServerConnection>>>,
    next: AtomicU64,
    stop: Arc<AtomicBool>,
    options: GroupOptions,
    /// The most connections kept open (below the descriptor limit, so the
    /// app keeps descriptors of its own).
    max_connections: usize,
    /// When a refused connection was last logged (a flood logs once in a
    /// while).
    refused_logged: Mutex<Option<Instant>>,
    /// When the connections were last looked at for ones that never
    /// introduced themselves.
    swept: Mutex<Instant>,
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
    if options.threads == 0 {
        // A group for service scripts: they run in the daemon's Python
        // (loaded at its start); no request is taken.
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(STOP_CHECK_MS as u64));
        }
        return Ok(());
    }
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    let shared = Arc::new(Shared {
        epoll,
        listener,
        connections: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
        stop,
        options: options.clone(),
        max_connections: max_connections(),
        refused_logged: Mutex::new(None),
        swept: Mutex::new(Instant::now()),
    });
    let apps = Arc::new(apps);
    let acceptor = {
        let shared = shared.clone();
        let apps = apps.clone();
        std::thread::Builder::new()
            .name("oxwsgi-accept".into())
            .spawn(move || acceptor(&shared, &apps))?
    };
    let workers: Vec<_> = (0..options.threads.max(1))
        .map(|i| {
            let shared = shared.clone();
            let apps = apps.clone();
            let mut b = std::thread::Builder::new().name(format!("oxwsgi-group-{i}"));
            if let Some(size) = options.limits.stack_size {
                b = b.stack_size(size);
            }
            b.spawn(move || worker(&shared, &apps))
        })
        .collect::<io::Result<_>>()?;
    for w in workers {
        let _ = w.join();
    }
    let _ = acceptor.join();
    // What is still open is idle, or was taken as the daemon began to go:
    // closing it tells the server (`close_for_good`).
    for (_, c) in shared.connections.lock().recover().drain() {
        let _ = shared.epoll.delete(c.fd());
        c.close_for_good();
    }
    Ok(())
}

/// A Python thread: waits for whichever socket is ready and serves it.
fn worker(shared: &Shared, apps: &Apps) {
    // The server hands a request over with a write that wakes this thread.
    // A normal thread, woken, would take the CPU from the server on the
    // spot (when they share one), serve that one request and give it back:
    // two process switches per request. As a batch thread it runs once
    // the server has handed over all it has, and serves them one after
    // another (on nginx's hello: 0.17 switches per request instead of 1.9,
    // and 17-25 % more requests).
    if let Err(e) = sys::batch_scheduling() {
        log::debug!(target: "oxwsgi", "batch scheduling refused: {e}");
    }
    crate::python::embed::ensure_thread_state();
    while !shared.stop.load(Ordering::Acquire) {
        let token = match shared.epoll.wait_one(STOP_CHECK_MS) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                log::error!(target: "oxwsgi", "waiting for requests failed: {e}");
                return;
            }
        };
        if shared.stop.load(Ordering::Acquire) {
            // Going: what came is not served here (`run` ends the
            // connections; the server sends it again).
            break;
        }
        let Some(conn) = shared.connections.lock().recover().get(&token).cloned() else {
            continue;
        };
        serve(shared, apps, token, &conn);
    }
}

/// Serves the requests `conn` has (more than one when the next was read
/// with the last), then arms it again or lets it go.
fn serve(shared: &Shared, apps: &Apps, token: u64, conn: &ServerConnection) {
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

/// Takes the group's new connections until `stop` (then they wait in the
/// socket's backlog for the daemon that replaces this one), and closes
/// the ones that never introduced themselves.
fn acceptor(shared: &Shared, apps: &Apps) {
    let fd = shared.listener.as_raw_fd();
    while !shared.stop.load(Ordering::Acquire) {
        match sys::wait_readable(fd, STOP_CHECK_MS) {
            // Going: what waits stays in the backlog for the replacement.
            Ok(true) if shared.stop.load(Ordering::Acquire) => break,
            Ok(true) => accept_all(shared, apps),
            Ok(false) => {}
            Err(e) => {
                log::error!(target: "oxwsgi", "waiting on the group's socket failed: {e}");
                return;
            }
        }
        sweep(shared);
    }
}

fn accept_all(shared: &Shared, apps: &Apps) {
    loop {
        match shared.listener.accept() {
            Ok((stream, _)) => {
                let admitted = apps.admits_peer(stream.as_raw_fd()).and_then(|()| {
                    let open = shared.connections.lock().recover().len();
                    if open < shared.max_connections {
                        Ok(())
                    } else {
                        Err(format!(
                            "{open} connections are open, the most this daemon keeps; refused one"
                        ))
                    }
                });
                let adopted = match admitted {
                    Ok(()) => {
                        adopt(shared, stream).map_err(|e| format!("a new connection failed: {e}"))
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = adopted {
                    refused(shared, &e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors (EMFILE) among others: what waits in
                // the backlog waits until a connection closes, without a
                // busy loop of wake-ups meanwhile.
                refused(shared, &format!("accept on the group's socket failed: {e}"));
                std::thread::sleep(Duration::from_millis(STOP_CHECK_MS as u64));
                break;
            }
        }
    }
}

/// Logs why a connection was refused, at most once every ten seconds.
fn refused(shared: &Shared, why: &str) {
    let mut last = shared.refused_logged.lock().recover();
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        *last = Some(Instant::now());
        log::error!(target: "oxwsgi", "{why}");
    }
}

/// Ends the connections that did not introduce themselves in time (a
/// connection that sends nothing holds no thread, but a descriptor).
fn sweep(shared: &Shared) {
    {
        let mut swept = shared.swept.lock().recover();
        if swept.elapsed() < Duration::from_secs(1) {
            return;
        }
        *swept = Instant::now();
    }
    let stale: Vec<Arc<ServerConnection>> = shared
        .connections
        .lock()
        .recover()
        .values()
        .filter(|c| c.accepted().elapsed() > HELLO_LIMIT && !c.admitted())
        .cloned()
        .collect();
    for c in stale {
        refused(
            shared,
            &format!(
                "a connection sent no introduction in {} s; closed",
                HELLO_LIMIT.as_secs()
            ),
        );
        c.shut_down();
    }
}

/// The most connections a daemon keeps: three quarters of its descriptor
/// limit.
fn max_connections() -> usize {
    let soft = sys::descriptor_limit();
    (soft - soft / 4).max(16)
}

/// A new connection from the server, with the group's socket buffers and
/// its timeouts for a frame sent in part.
fn adopt(shared: &Shared, stream: UnixStream) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let o = &shared.options;
    if let Some(n) = o.send_buffer_size {
        sys::set_buffer(fd, libc::SO_SNDBUF, n);
    }
    if let Some(n) = o.receive_buffer_size {
        sys::set_buffer(fd, libc::SO_RCVBUF, n);
    }
    // Until the server introduces the connection, a read (of the
    // introduction sent in part) waits no longer than it may take; then
    // the group's socket timeout.
    stream.set_read_timeout(Some(HELLO_LIMIT))?;
    crate::daemon::process::serve::greet(&stream)?;
    let conn = Arc::new(
        ServerConnection::new(stream, o.response_buffer_size)?
            .with_timeout(Some(o.socket_timeout.unwrap_or(DEFAULT_SOCKET_TIMEOUT))),
    );
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

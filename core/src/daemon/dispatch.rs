//! A daemon process's requests. The Python threads wait on one epoll set
//! holding the group's listening socket and every idle connection, each
//! registered one-shot: the thread woken for a connection serves its
//! request on the spot and arms it again, so a request costs one wake-up
//! (no thread hands connections to another), and an idle pooled
//! connection never holds a thread: the server may keep far more
//! connections open than the daemon has threads (every Apache child keeps
//! its own). A request waits, if all threads are busy, in its socket; the
//! server's stamp in the head tells the queue timeout how long.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sync::Recover;

use super::options::GroupOptions;
use super::serve::{Apps, Connection};
use super::sys::{self, Epoll};

/// The listening socket's token; connections count up from 1.
const LISTENER: u64 = 0;

/// How often a waiting thread looks at `stop`, in ms.
const STOP_CHECK_MS: i32 = 100;

struct Shared {
    epoll: Epoll,
    listener: UnixListener,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next: AtomicU64,
    stop: Arc<AtomicBool>,
    options: GroupOptions,
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
            b.spawn(move || worker(&shared, &apps))
        })
        .collect::<io::Result<_>>()?;
    for w in workers {
        let _ = w.join();
    }
    // What is still open is idle; closing it tells the server.
    for (_, c) in shared.connections.lock().recover().drain() {
        let _ = shared.epoll.delete(c.fd());
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
    crate::embed::ensure_thread_state();
    while !shared.stop.load(Ordering::Acquire) {
        let token = match shared.epoll.wait_one(STOP_CHECK_MS) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                log::error!(target: "oxwsgi", "waiting for requests failed: {e}");
                return;
            }
        };
        if token == LISTENER {
            accept_all(shared);
            continue;
        }
        let Some(conn) = shared.connections.lock().recover().get(&token).cloned() else {
            continue;
        };
        serve(shared, apps, token, &conn);
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

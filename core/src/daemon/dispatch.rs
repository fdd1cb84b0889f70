//! A daemon process's requests: one thread waits (poll) on the group's
//! listening socket and on every idle connection; a connection with a
//! request goes to one of the Python threads, which serves that request and
//! hands the connection back. An idle pooled connection therefore never
//! holds a Python thread: the server may keep far more connections open
//! than the daemon has threads (every Apache child keeps its own).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::sync::Recover;

use super::options::GroupOptions;
use super::serve::{Apps, Connection};
use super::sys::{self, POLLERR, POLLHUP, POLLIN, pollfd};

#[derive(Default)]
struct Queues {
    /// Connections with a request waiting, for the Python threads, with
    /// when the poller saw the request.
    ready: VecDeque<(Connection, Instant)>,
    /// Connections a thread finished a request on, back to the poller.
    returned: Vec<Connection>,
}

struct Shared {
    queues: Mutex<Queues>,
    work: Condvar,
    stop: Arc<AtomicBool>,
    /// Written by a thread that returns a connection, to wake the poller.
    wake: Mutex<UnixStream>,
}

/// Serves `listener`'s connections with the group's Python threads until
/// `stop` is set; then closes the idle connections (the server retries a
/// request it sent on one on another), lets the requests in progress
/// finish and returns.
pub fn run(
    listener: UnixListener,
    apps: Apps,
    options: &GroupOptions,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let (wake_rx, wake_tx) = UnixStream::pair()?;
    wake_rx.set_nonblocking(true)?;
    wake_tx.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        queues: Mutex::default(),
        work: Condvar::new(),
        stop,
        wake: Mutex::new(wake_tx),
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
    let result = poller(&listener, &wake_rx, &shared, options);
    shared.stop.store(true, Ordering::Release);
    shared.work.notify_all();
    for w in workers {
        let _ = w.join();
    }
    result
}

fn poller(
    listener: &UnixListener,
    wake: &UnixStream,
    shared: &Shared,
    options: &GroupOptions,
) -> io::Result<()> {
    let mut idle: Vec<Connection> = Vec::new();
    let mut fds: Vec<pollfd> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        fds.clear();
        for fd in [listener.as_raw_fd(), wake.as_raw_fd()] {
            fds.push(pollfd {
                fd,
                events: POLLIN,
                revents: 0,
            });
        }
        fds.extend(idle.iter().map(|c| pollfd {
            fd: c.fd(),
            events: POLLIN,
            revents: 0,
        }));
        // A tenth of a second at most, to notice `stop` soon.
        if sys::poll(&mut fds, 100)? == 0 {
            continue;
        }
        let mut ready = Vec::new();
        // Idle connections with a request (or closed: the thread sees EOF),
        // taken from the back so the indices stay right.
        for i in (0..idle.len()).rev() {
            if fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR) != 0 {
                ready.push(idle.swap_remove(i));
            }
        }
        if fds[1].revents != 0 {
            let mut sink = [0u8; 256];
            while matches!((&*wake).read(&mut sink), Ok(n) if n > 0) {}
            let back = std::mem::take(&mut shared.queues.lock().recover().returned);
            for c in back {
                if c.has_buffered() {
                    ready.push(c);
                } else {
                    idle.push(c);
                }
            }
        }
        if fds[0].revents != 0 {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => match accepted(stream, options) {
                        Ok(c) => idle.push(c),
                        Err(e) => log::error!(target: "oxwsgi", "a new connection failed: {e}"),
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::error!(target: "oxwsgi", "accept on the group's socket failed: {e}");
                        break;
                    }
                }
            }
        }
        if !ready.is_empty() {
            let n = ready.len();
            let now = Instant::now();
            shared
                .queues
                .lock()
                .recover()
                .ready
                .extend(ready.into_iter().map(|c| (c, now)));
            for _ in 0..n {
                shared.work.notify_one();
            }
        }
    }
    // Idle connections close here; those the threads hand back from now
    // on are closed by the threads.
    drop(std::mem::take(&mut shared.queues.lock().recover().returned));
    Ok(())
}

/// A new connection from the server, with the group's socket buffers.
fn accepted(stream: UnixStream, options: &GroupOptions) -> io::Result<Connection> {
    let fd = stream.as_raw_fd();
    if let Some(n) = options.send_buffer_size {
        sys::set_buffer(fd, libc::SO_SNDBUF, n);
    }
    if let Some(n) = options.receive_buffer_size {
        sys::set_buffer(fd, libc::SO_RCVBUF, n);
    }
    Connection::new(stream, options.response_buffer_size)
}

/// A Python thread: one request at a time, from whichever connection has one.
fn worker(shared: &Shared, apps: &Apps) {
    crate::embed::ensure_thread_state();
    loop {
        let (conn, ready) = {
            let mut q = shared.queues.lock().recover();
            loop {
                if let Some(c) = q.ready.pop_front() {
                    break c;
                }
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                q = shared.work.wait(q).recover();
            }
        };
        match conn.serve_one(apps, ready) {
            // Stopping: the poller no longer watches connections.
            Ok(true) if shared.stop.load(Ordering::Acquire) => {}
            Ok(true) => {
                shared.queues.lock().recover().returned.push(conn);
                let _ = shared.wake.lock().recover().write(&[1]);
                if shared.stop.load(Ordering::Acquire) {
                    // The poller may have closed the others already.
                    drop(std::mem::take(&mut shared.queues.lock().recover().returned));
                }
            }
            Ok(false) => {}
            Err(e) => log::error!(target: "oxwsgi", "a connection from the server failed: {e}"),
        }
    }
}

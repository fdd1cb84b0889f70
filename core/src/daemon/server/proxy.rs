//! The server's side: a request handed to a daemon process over a pooled
//! unix socket connection, its body sent as the daemon asks for it, and the
//! daemon's response passed to the server's `ResponseSink` as it comes.
//! Blocking I/O: for servers whose request threads may block (Apache); an
//! event loop (nginx) drives the same frames without blocking.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::request::{Body, BodyStream, Request};
use crate::response::responder::Outcome;
use crate::response::sink::{Chunk, ResponseSink};
use crate::sync::Recover;

use crate::daemon::protocol::auth::Token;
use crate::daemon::protocol::exchange::{Event, Lost};
use crate::daemon::protocol::frame::{self, AppRef, BodyKind, Kind};

/// A connection to a daemon, idle between requests.
pub struct DaemonConnection {
    stream: UnixStream,
    /// The group's socket timeout.
    timeout: Option<Duration>,
    /// A daemon took the connection (its `Accepted` came).
    accepted: bool,
}

impl DaemonConnection {
    /// Connects to the group at `path` and introduces the connection with
    /// the group's `token` (`auth::introduce`). No daemon has taken it
    /// yet: the first request waits for that.
    pub fn open(
        path: &Path,
        timeout: Option<Duration>,
        token: &Token,
    ) -> io::Result<DaemonConnection> {
        use std::os::fd::AsRawFd;
        let stream = UnixStream::connect(path)?;
        crate::daemon::protocol::auth::introduce(stream.as_raw_fd(), token)?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        Ok(DaemonConnection {
            stream,
            timeout,
            accepted: false,
        })
    }
}

/// The connections of one process group's socket: reused, so a request
/// costs no connect().
pub struct Pool {
    /// The group's name, for the log.
    name: String,
    path: PathBuf,
    token: Token,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    /// The largest response head taken from a daemon.
    head_limit: usize,
    idle: Mutex<Vec<DaemonConnection>>,
}

/// How a request is relayed, as mod_wsgi's per-directory switches say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Relay {
    /// `WSGIErrorOverride`: an error status from the app (400 or more)
    /// becomes the server's own error page (its `ErrorDocument`), the app's
    /// body dropped.
    pub error_override: bool,
    /// `WSGIIgnoreActivity`: the request does not reset the daemon's
    /// inactivity-timeout.
    pub ignore_activity: bool,
}

impl Pool {
    /// The pool of the group listening at `path`, whose daemons admit
    /// connections with `token`.
    pub fn new(path: PathBuf, timeout: Option<Duration>, token: Token) -> Pool {
        Pool {
            name: String::new(),
            path,
            token,
            timeout,
            connect_timeout: CONNECT_TIMEOUT,
            head_limit: frame::MAX_FRAME,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pool for group `name` of this server, with `options` (its
    /// socket and connect timeouts, its response head limit).
    pub fn for_group(
        path: PathBuf,
        name: &str,
        options: &crate::daemon::options::GroupOptions,
    ) -> io::Result<Pool> {
        let mut p = Pool::new(
            path,
            options.socket_timeout,
            crate::daemon::protocol::auth::group_token(name)?,
        )
        .with_connect_timeout(options.connect_timeout);
        p.head_limit = options.header_buffer_size;
        p.name = name.to_string();
        Ok(p)
    }

    /// How long a request waits for the group to be reachable (default
    /// `CONNECT_TIMEOUT`).
    pub fn with_connect_timeout(mut self, limit: Duration) -> Pool {
        self.connect_timeout = limit;
        self
    }

    fn get(&self) -> io::Result<DaemonConnection> {
        if let Some(c) = self.idle.lock().recover().pop() {
            return Ok(c);
        }
        self.open()
    }

    fn open(&self) -> io::Result<DaemonConnection> {
        DaemonConnection::open(&self.path, self.timeout, &self.token)
    }

    fn put(&self, c: DaemonConnection) {
        self.idle.lock().recover().push(c);
    }

    /// Serves `req` with `app` of the group, writing the response into
    /// `sink`.
    ///
    /// While the group cannot be reached (its daemons are being replaced:
    /// a graceful restart, a daemon that died, or none can start) the
    /// request waits, retrying for up to the connect timeout, then gets
    /// 503; it is sent only once a daemon took its connection. A connection that fails
    /// before the daemon answered anything is retried on a new one when
    /// that cannot run the app twice: a pooled connection the daemon closed
    /// while idle, or a GET, HEAD or OPTIONS. Otherwise the client gets 502,
    /// or a cut response once its headers went out.
    pub fn serve<R: Request + ?Sized>(
        &self,
        app: &AppRef,
        req: &mut R,
        sink: &mut dyn ResponseSink,
    ) -> Outcome {
        self.serve_with(app, req, sink, Relay::default())
    }

    /// As `serve`, relayed as `how` says.
    pub fn serve_with<R: Request + ?Sized>(
        &self,
        app: &AppRef,
        req: &mut R,
        sink: &mut dyn ResponseSink,
        how: Relay,
    ) -> Outcome {
        let error_override = how.error_override;
        let idempotent = crate::daemon::protocol::exchange::idempotent(req.method());
        let head_request = req.method() == b"HEAD";
        let body = req.take_body();
        let kind = body_kind(req, &body);
        let mut body = Some(body.into_stream());
        let mut head = frame::encode_head(app, req, kind);
        if how.ignore_activity {
            frame::mark_quiet(&mut head);
        }
        frame::stamp(&mut head, frame::monotonic_us());
        let deadline = Instant::now() + self.connect_timeout;
        let mut pause = Duration::from_millis(10);
        let mut first = true;
        loop {
            let Some(mut conn) = self.connection(first, deadline, &mut pause) else {
                return crate::response::responder::error_page(sink, 503);
            };
            first = false;
            let pooled = conn.accepted;
            let mut state = Exchange {
                conn: &mut conn,
                daemon: crate::daemon::protocol::exchange::Exchange::new(self.head_limit)
                    .for_head_request(head_request)
                    .on_new_connection(!pooled),
                retry: false,
                error_override,
                deadline,
            };
            match state.run(&head, &mut body, sink) {
                Ok(_) if state.retry && Instant::now() < deadline => {
                    log::debug!(target: "oxwsgi", "the daemon is restarting; sending the request again");
                    std::thread::sleep(pause);
                }
                Ok(_) if state.retry => {
                    log::error!(target: "oxwsgi", "the group at {} kept restarting; answering 503", self.path.display());
                    return crate::response::responder::error_page(sink, 503);
                }
                Ok(outcome) => {
                    if state.daemon.reusable() && !matches!(outcome, Outcome::ClientGone) {
                        self.put(conn);
                    }
                    return outcome;
                }
                Err(e) => {
                    let lost = state.daemon.lost(pooled, idempotent);
                    if let Some(outcome) = self.after_loss(lost, &e, deadline, &mut pause, sink) {
                        return outcome;
                    }
                }
            }
        }
    }

    /// A connection to the group, pooled first (`first`), else new, tried
    /// until `deadline`; `None` (logged) when none could be had.
    fn connection(
        &self,
        mut first: bool,
        deadline: Instant,
        pause: &mut Duration,
    ) -> Option<DaemonConnection> {
        loop {
            let opened = if first { self.get() } else { self.open() };
            first = false;
            match opened {
                Ok(c) => return Some(c),
                Err(e) if Instant::now() < deadline => {
                    log::debug!(target: "oxwsgi", "the daemon at {} is not there yet ({e}); waiting", self.path.display());
                    back_off(pause);
                }
                Err(e) => {
                    log::error!(target: "oxwsgi", "group {}: cannot reach the daemon at {}: {e}; answering 503", self.name, self.path.display());
                    return None;
                }
            }
        }
    }

    /// The connection failed (`e`) as `lost` says: `None` to try again,
    /// else the request's outcome (the client answered or cut).
    fn after_loss(
        &self,
        lost: Lost,
        e: &io::Error,
        deadline: Instant,
        pause: &mut Duration,
        sink: &mut dyn ResponseSink,
    ) -> Option<Outcome> {
        let in_time = Instant::now() < deadline;
        match lost {
            // No daemon took the connection: nothing was sent.
            Lost::Unsent if in_time => {
                log::debug!(target: "oxwsgi", "group {}: no daemon took the connection yet ({e}); waiting", self.name);
                back_off(pause);
                None
            }
            Lost::Unsent => {
                log::error!(target: "oxwsgi", "group {}: no daemon took the request within the connect timeout of {:?} ({e}); answering 503", self.name, self.connect_timeout);
                Some(crate::response::responder::error_page(sink, 503))
            }
            // Nothing came back: the daemon closed the connection or went
            // away before it answered.
            Lost::Resend if in_time => {
                log::debug!(target: "oxwsgi", "daemon connection lost before an answer ({e}); retrying");
                None
            }
            Lost::Cut => {
                log::error!(target: "oxwsgi", "group {}: the daemon's connection failed: {e}; cutting the response", self.name);
                sink.abort();
                Some(Outcome::Aborted)
            }
            _ => {
                log::error!(target: "oxwsgi", "group {}: the daemon's connection failed: {e}; answering 502", self.name);
                Some(crate::response::responder::error_page(sink, 502))
            }
        }
    }
}

/// Waits `pause` for the group, and twice as long the next time (up to
/// 200 ms).
fn back_off(pause: &mut Duration) {
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(200));
}

/// How long a request waits for its group to be reachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn body_kind<R: Request + ?Sized>(req: &R, body: &Body) -> BodyKind {
    if matches!(body, Body::Empty) {
        return BodyKind::None;
    }
    if req.body_is_chunked() {
        return BodyKind::Chunked;
    }
    let mut length = None;
    req.for_each_header(&mut |n, v| {
        if length.is_none() && n.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        }
    });
    match (length, body) {
        (Some(n), _) => BodyKind::Length(n),
        (None, Body::Memory(v)) => BodyKind::Length(v.len() as u64),
        _ => BodyKind::Chunked,
    }
}

/// One request on one connection.
struct Exchange<'c> {
    conn: &'c mut DaemonConnection,
    daemon: crate::daemon::protocol::exchange::Exchange,
    /// The daemon did not run the request: send it again.
    retry: bool,
    /// An error status becomes the server's error page (`serve_with`).
    error_override: bool,
    /// How long a new connection may wait for a daemon to take it.
    deadline: Instant,
}

impl Exchange<'_> {
    fn run(
        &mut self,
        head: &[u8],
        body: &mut Option<Box<dyn BodyStream>>,
        sink: &mut dyn ResponseSink,
    ) -> io::Result<Outcome> {
        if self.daemon.awaiting_accept() {
            self.await_accepted()?;
        }
        frame::write(&mut self.conn.stream, Kind::Head, head)?;
        let mut chunk = Vec::new();
        loop {
            let Some(event) = self.daemon.next_event()? else {
                let n = self.conn.stream.read(self.daemon.buffer())?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.daemon.filled(n);
                continue;
            };
            let to_client = match event {
                // Only `await_accepted` sees one.
                Event::Accepted => continue,
                Event::Read(want) => {
                    chunk.resize(want, 0);
                    let got = match body.as_mut() {
                        Some(r) => read_waiting(r, &mut chunk),
                        None => Ok(0),
                    };
                    match got {
                        Ok(n) => frame::write(&mut self.conn.stream, Kind::Body, &chunk[..n])?,
                        Err(e) => frame::write(
                            &mut self.conn.stream,
                            Kind::BodyError,
                            e.to_string().as_bytes(),
                        )?,
                    }
                    continue;
                }
                Event::Start(head) if self.error_override && head.status >= 400 => {
                    // The rest of the app's answer is not read: the
                    // connection goes with this request.
                    return Ok(crate::response::responder::error_page(sink, head.status));
                }
                Event::Start(head) => sink.start(head),
                Event::Data(bytes) => sink.write(Chunk::owned(bytes)),
                // More of the response is already here: it goes out with
                // the flush that follows it (a streamed response whose
                // daemon is ahead of its client costs one flush a batch,
                // not one a chunk).
                Event::Flush if self.more_waiting() => Ok(()),
                Event::Flush => sink.flush(),
                Event::End => {
                    return Ok(match sink.finish() {
                        Ok(()) => Outcome::Complete,
                        Err(_) => Outcome::ClientGone,
                    });
                }
                Event::Abort => {
                    sink.abort();
                    return Ok(Outcome::Aborted);
                }
                Event::Retry => {
                    self.retry = true;
                    return Ok(Outcome::Aborted);
                }
                Event::Error(status) => {
                    return Ok(crate::response::responder::error_page(sink, status));
                }
            };
            if to_client.is_err() {
                // The client is gone: dropping the connection tells the
                // daemon (its next write fails), which stops the app.
                return Ok(Outcome::ClientGone);
            }
        }
    }

    /// Waits until the connect deadline for a daemon to take the new
    /// connection.
    fn await_accepted(&mut self) -> io::Result<()> {
        let stream = &mut self.conn.stream;
        loop {
            match self.daemon.next_event()? {
                Some(Event::Accepted) => break,
                Some(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{other:?} from the daemon before it took the connection"),
                    ));
                }
                None => {}
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            let n = match stream.read(self.daemon.buffer()) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no daemon took the connection",
                    ));
                }
                other => other?,
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection before it took it",
                ));
            }
            self.daemon.filled(n);
        }
        stream.set_read_timeout(self.conn.timeout)?;
        self.conn.accepted = true;
        Ok(())
    }

    /// Whether the daemon's next frame is already read or in the socket.
    fn more_waiting(&self) -> bool {
        use std::os::fd::AsRawFd;
        self.daemon.has_buffered()
            || crate::daemon::sys::bytes_waiting(self.conn.stream.as_raw_fd())
    }
}

/// One read that waits for the client (at least one byte unless the body
/// ended), then more while more is already waiting, up to `buf`'s size: a
/// server reads a socket a few KiB at a time, and a frame per read would
/// cost the daemon a round trip each.
fn read_waiting(r: &mut Box<dyn BodyStream>, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = read_some(r, buf)?;
    while n > 0 && n < buf.len() && r.pending() {
        match read_some(r, &mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

fn read_some(r: &mut Box<dyn BodyStream>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

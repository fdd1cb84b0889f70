//! The server's side: a request handed to a daemon process over a pooled
//! unix socket connection, its body sent as the daemon asks for it, and the
//! daemon's response passed to the server's `ResponseSink` as it comes.
//! Blocking I/O: for servers whose request threads may block (Apache); an
//! event loop (nginx) drives the same frames without blocking.

use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::request::{Body, BodyStream, Request};
use crate::responder::Outcome;
use crate::sink::{Chunk, ResponseSink};
use crate::sync::Recover;

use super::frame::{self, AppRef, BodyKind, Kind};

/// A pooled connection's read buffer: heads and small frames come through
/// it; larger frames are read past it. Every Apache thread keeps its own
/// connections, so this is per thread and group.
const READ_BUFFER: usize = 16 << 10;

/// A connection to a daemon, idle between requests.
pub struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Connection {
    pub fn open(path: &Path, timeout: Option<Duration>) -> io::Result<Connection> {
        let writer = UnixStream::connect(path)?;
        writer.set_read_timeout(timeout)?;
        writer.set_write_timeout(timeout)?;
        Ok(Connection {
            reader: BufReader::with_capacity(READ_BUFFER, writer.try_clone()?),
            writer,
        })
    }
}

impl Connection {
    /// Whether the daemon's next frame is already read or in the socket.
    fn more_waiting(&self) -> bool {
        use std::os::fd::AsRawFd;
        if !self.reader.buffer().is_empty() {
            return true;
        }
        super::sys::bytes_waiting(self.writer.as_raw_fd())
    }
}

/// The connections of one process group's socket: reused, so a request
/// costs no connect().
pub struct Pool {
    path: PathBuf,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    /// The largest response head taken from a daemon.
    head_limit: usize,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub fn new(path: PathBuf, timeout: Option<Duration>) -> Pool {
        Pool {
            path,
            timeout,
            connect_timeout: CONNECT_TIMEOUT,
            head_limit: frame::MAX_FRAME,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pool for a group with `options` (its socket and connect
    /// timeouts, its response head limit).
    pub fn for_group(path: PathBuf, options: &super::options::GroupOptions) -> Pool {
        let mut p =
            Pool::new(path, options.socket_timeout).with_connect_timeout(options.connect_timeout);
        p.head_limit = options.header_buffer_size;
        p
    }

    /// How long a request waits for the group to be reachable (default
    /// `CONNECT_TIMEOUT`).
    pub fn with_connect_timeout(mut self, limit: Duration) -> Pool {
        self.connect_timeout = limit;
        self
    }

    fn get(&self) -> io::Result<Connection> {
        if let Some(c) = self.idle.lock().recover().pop() {
            return Ok(c);
        }
        Connection::open(&self.path, self.timeout)
    }

    fn put(&self, c: Connection) {
        self.idle.lock().recover().push(c);
    }

    /// Serves `req` with `app` of the group, writing the response into
    /// `sink`.
    ///
    /// While the group cannot be reached (its daemons are being replaced:
    /// a graceful restart, a daemon that died) the request waits, retrying
    /// for up to the connect timeout, then gets 503. A connection that fails
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
        let idempotent = matches!(req.method(), b"GET" | b"HEAD" | b"OPTIONS");
        let body = req.take_body();
        let kind = body_kind(req, &body);
        let mut body = Some(body.into_stream());
        let mut head = frame::encode_head(app, req, kind);
        frame::stamp(&mut head, frame::monotonic_us());
        let deadline = Instant::now() + self.connect_timeout;
        let mut pause = Duration::from_millis(10);
        let mut pooled = true;
        loop {
            let opened = if pooled {
                self.get()
            } else {
                Connection::open(&self.path, self.timeout)
            };
            let was_pooled = pooled;
            pooled = false;
            let mut conn = match opened {
                Ok(c) => c,
                Err(e) if Instant::now() < deadline => {
                    log::debug!(target: "oxwsgi", "the daemon at {} is not there yet ({e}); waiting", self.path.display());
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                    continue;
                }
                Err(e) => {
                    log::error!(target: "oxwsgi", "cannot reach the daemon at {}: {e}", self.path.display());
                    return crate::responder::error_page(sink, 503);
                }
            };
            let mut state = Exchange {
                conn: &mut conn,
                started: false,
                asked: false,
                head_limit: self.head_limit,
                reusable: true,
                retry: false,
            };
            match state.run(&head, &mut body, sink) {
                Ok(_) if state.retry && Instant::now() < deadline => {
                    log::debug!(target: "oxwsgi", "the daemon is restarting; sending the request again");
                    std::thread::sleep(pause);
                }
                Ok(_) if state.retry => {
                    log::error!(target: "oxwsgi", "the group at {} kept restarting; answering 503", self.path.display());
                    return crate::responder::error_page(sink, 503);
                }
                Ok(outcome) => {
                    if state.reusable && !matches!(outcome, Outcome::ClientGone) {
                        self.put(conn);
                    }
                    return outcome;
                }
                // Nothing came back: the daemon closed the connection or
                // went away before it answered.
                Err(e)
                    if !state.asked
                        && !state.started
                        && (was_pooled || idempotent)
                        && Instant::now() < deadline =>
                {
                    log::debug!(target: "oxwsgi", "daemon connection lost before an answer ({e}); retrying");
                }
                Err(e) => {
                    log::error!(target: "oxwsgi", "the daemon's connection failed: {e}");
                    if state.started {
                        sink.abort();
                        return Outcome::Aborted;
                    }
                    return crate::responder::error_page(sink, 502);
                }
            }
        }
    }
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
    conn: &'c mut Connection,
    /// The response head went to the client.
    started: bool,
    /// The daemon asked for body: its app runs.
    asked: bool,
    head_limit: usize,
    /// The exchange ended where the next can start.
    reusable: bool,
    /// The daemon did not run the request: send it again.
    retry: bool,
}

impl Exchange<'_> {
    fn run(
        &mut self,
        head: &[u8],
        body: &mut Option<Box<dyn BodyStream>>,
        sink: &mut dyn ResponseSink,
    ) -> io::Result<Outcome> {
        frame::write(&mut self.conn.writer, Kind::Head, head)?;
        let mut buf = Vec::new();
        let mut chunk = Vec::new();
        loop {
            let kind = frame::read(&mut self.conn.reader, &mut buf)?;
            self.asked = true;
            let to_client = match kind {
                Kind::Read => {
                    let want = buf
                        .get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        .unwrap_or(0)
                        .min(frame::MAX_READ);
                    chunk.resize(want, 0);
                    let got = match body.as_mut() {
                        Some(r) => read_waiting(r, &mut chunk),
                        None => Ok(0),
                    };
                    match got {
                        Ok(n) => frame::write(&mut self.conn.writer, Kind::Body, &chunk[..n])?,
                        Err(e) => frame::write(
                            &mut self.conn.writer,
                            Kind::BodyError,
                            e.to_string().as_bytes(),
                        )?,
                    }
                    continue;
                }
                Kind::ResponseHead if buf.len() > self.head_limit => {
                    log::error!(
                        target: "oxwsgi",
                        "the app's response head is {} bytes, more than the {} of header-buffer-size; answering 502",
                        buf.len(),
                        self.head_limit
                    );
                    // The rest of the response is still coming.
                    self.reusable = false;
                    return Ok(crate::responder::error_page(sink, 502));
                }
                Kind::ResponseHead => {
                    let head = frame::decode_response_head(&buf)?;
                    self.started = true;
                    sink.start(head)
                }
                Kind::Data => sink.write(Chunk::owned(std::mem::take(&mut buf))),
                // More of the response is already here: it goes out with
                // the flush that follows it (a streamed response whose
                // daemon is ahead of its client costs one flush a batch,
                // not one a chunk).
                Kind::Flush if self.conn.more_waiting() => Ok(()),
                Kind::Flush => sink.flush(),
                Kind::End => {
                    return Ok(match sink.finish() {
                        Ok(()) => Outcome::Complete,
                        Err(_) => Outcome::ClientGone,
                    });
                }
                Kind::Abort => {
                    sink.abort();
                    return Ok(Outcome::Aborted);
                }
                Kind::Retry if !self.started => {
                    self.retry = true;
                    self.reusable = false;
                    return Ok(Outcome::Aborted);
                }
                Kind::Error => {
                    let status = buf
                        .get(..2)
                        .map(|b| u16::from_le_bytes([b[0], b[1]]))
                        .unwrap_or(500);
                    return Ok(crate::responder::error_page(sink, status));
                }
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected {other:?} from the daemon"),
                    ));
                }
            };
            if to_client.is_err() {
                // The client is gone: dropping the connection tells the
                // daemon (its next write fails), which stops the app.
                return Ok(Outcome::ClientGone);
            }
        }
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

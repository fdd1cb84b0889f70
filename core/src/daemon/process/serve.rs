//! The daemon's side of a connection: requests in, one after another, each
//! run by the core's request engine (`handle`) exactly as in embedded mode;
//! the request body is pulled from the server as the app reads it, and the
//! response goes back as frames.

use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::request::{Body, BodyStream};
use crate::response::ResponseHead;
use crate::response::responder::Outcome;
use crate::response::sink::{Chunk, ResponseSink, TimeoutAction};
use crate::sync::Recover;

use crate::daemon::options::GroupOptions;
use crate::daemon::process::life::Life;
use crate::daemon::protocol::auth::{Admission, Token};
use crate::daemon::protocol::frame::{self, AppRef, BodyKind, Kind};

/// One connection from the server, shared by the request's body reader and
/// its sink (both used by the request's thread, one call at a time).
struct ConnectionState {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Frames not written yet: a response's head, body and end usually go
    /// out in one write, and a streamed chunk with its flush in one.
    out: Vec<u8>,
    /// Response bytes gathered before a write (larger payloads go out on
    /// their own).
    gather: usize,
    /// A write failed or the server sent what it should not: the
    /// connection ends with this request.
    broken: bool,
    /// The response head is in `out`, or written.
    head_queued: bool,
    /// The response head was written.
    head_written: bool,
    /// The request timed out and the server was answered for the app:
    /// nothing more goes out.
    answered: bool,
}

impl ConnectionState {
    /// Adds a frame to those to be written.
    fn queue(&mut self, kind: Kind, payload: &[u8]) -> io::Result<()> {
        if self.answered {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request timed out",
            ));
        }
        if kind == Kind::ResponseHead {
            self.head_queued = true;
        }
        if self.out.len() + frame::HEADER + payload.len() > self.gather {
            self.write_out()?;
            if payload.len() > self.gather {
                let r = frame::write(&mut self.writer, kind, payload);
                return self.fail_on_err(r);
            }
        }
        frame::write(&mut self.out, kind, payload)
    }

    /// Writes what was queued.
    fn write_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = std::io::Write::write_all(&mut self.writer, &self.out);
        self.out.clear();
        self.head_written |= self.head_queued;
        self.fail_on_err(r)
    }

    /// Queues a frame and writes everything queued.
    fn send(&mut self, kind: Kind, payload: &[u8]) -> io::Result<()> {
        self.queue(kind, payload)?;
        self.write_out()
    }

    fn fail_on_err(&mut self, r: io::Result<()>) -> io::Result<()> {
        if r.is_err() {
            self.broken = true;
        }
        r
    }
}

/// A daemon's apps: those the group was started with (preloaded), and those
/// the server names in requests, loaded on first use and kept.
pub struct Apps {
    listed: Vec<Arc<App>>,
    named: Mutex<Vec<(AppRef, Arc<App>)>>,
    multithread: bool,
    multiprocess: bool,
    /// The group's options (its defaults when the daemon is not a group's:
    /// tests).
    options: GroupOptions,
    life: Option<Arc<Life>>,
    /// The scripts' required owner (`script-user`, `script-group`).
    owner: Option<Owner>,
    /// Who may talk to this daemon; `None`: nobody (a daemon must be
    /// given its group's admission).
    admission: Option<Admission>,
    /// The only apps the server may name (`None`: any).
    mounts: Option<Vec<crate::daemon::spec::Mount>>,
}

/// Who a group's scripts must belong to.
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    User(u32),
    Group(u32),
}

impl Apps {
    pub fn new(listed: Vec<Arc<App>>, multithread: bool, multiprocess: bool) -> Apps {
        Apps {
            listed,
            named: Mutex::new(Vec::new()),
            multithread,
            multiprocess,
            options: GroupOptions::default(),
            life: None,
            owner: None,
            admission: None,
            mounts: None,
        }
    }

    /// Runs only the apps of `mounts` (those the configuration mounts for
    /// the group), when given.
    pub fn with_mounts(mut self, mounts: Option<Vec<crate::daemon::spec::Mount>>) -> Apps {
        self.mounts = mounts;
        self
    }

    /// Serves connections from the users of `a` that introduce themselves
    /// with its token.
    pub fn with_admission(mut self, a: Admission) -> Apps {
        self.admission = Some(a);
        self
    }

    /// Whether the process at the other end of a new connection may talk
    /// to this daemon.
    pub fn admits_peer(&self, fd: std::os::fd::RawFd) -> Result<(), String> {
        match &self.admission {
            Some(a) => a.admits_peer(fd),
            None => Err("this daemon admits nobody (it was given no token)".into()),
        }
    }

    /// Runs only scripts that belong to `owner`.
    pub fn with_owner(mut self, owner: Option<Owner>) -> Apps {
        self.owner = owner;
        self
    }

    /// Whether the script a request names may run here.
    fn check_owner(&self, r: &AppRef) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let (Some(owner), AppRef::Named { target, .. }) = (self.owner, r) else {
            return Ok(());
        };
        if !target.starts_with('/') {
            // A module, not a script.
            return Ok(());
        }
        let meta = std::fs::metadata(target).map_err(|e| format!("script {target}: {e}"))?;
        let ok = match owner {
            Owner::User(uid) => meta.uid() == uid,
            Owner::Group(gid) => meta.gid() == gid,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "script {target} is not owned by the group's script-user/script-group ({owner:?}; it is uid {}, gid {})",
                meta.uid(),
                meta.gid()
            ))
        }
    }

    /// Takes the group's per-request options (timeouts, the response
    /// buffer) for the apps the server names.
    pub fn with_options(mut self, o: &GroupOptions) -> Apps {
        self.options = o.clone();
        self
    }

    /// Counts requests in the daemon's life (maximum requests,
    /// inactivity).
    pub fn with_life(mut self, life: Arc<Life>) -> Apps {
        self.life = Some(life);
        self
    }

    fn get(&self, r: &AppRef) -> Result<Arc<App>, String> {
        let (target, callable, mount, group) = match r {
            AppRef::Index(n) => {
                return self.listed.get(*n as usize).cloned().ok_or_else(|| {
                    format!(
                        "the server asked for app {n}, this group has {}",
                        self.listed.len()
                    )
                });
            }
            AppRef::Named {
                target,
                callable,
                mount,
                group,
                ..
            } => (target, callable, mount, group),
        };
        // A listed app the server names (a script preloaded in the group).
        if let Some(app) = self.listed.iter().find(|a| {
            let o = a.options();
            o.spec.target() == *target
                && callable.as_ref().is_none_or(|c| *c == o.spec.callable)
                && o.mount == *mount
                && o.application_group == *group
        }) {
            return Ok(app.clone());
        }
        if let Some(mounts) = &self.mounts {
            if !mounts
                .iter()
                .any(|m| r.names(&m.target, &m.callable, &m.mount))
            {
                return Err(format!(
                    "refused a request for app {target} mounted at {mount:?}: the configuration \
                     mounts no such app for this group; nothing of it runs"
                ));
            }
        }
        let mut named = self.named.lock().recover();
        if let Some((_, app)) = named.iter().find(|(k, _)| k == r) {
            return Ok(app.clone());
        }
        let mut options =
            crate::AppOptions::new(crate::AppSpec::parse(target, callable.as_deref())?);
        options.mount = mount.clone();
        options.application_group = group.clone();
        options.multithread = self.multithread;
        options.multiprocess = self.multiprocess;
        self.options.apply_to(&mut options);
        let app = Arc::new(App::new(options));
        named.push((r.clone(), app.clone()));
        Ok(app)
    }
}

/// A connection from the server, between requests.
pub struct ServerConnection {
    conn: Arc<Mutex<ConnectionState>>,
    accepted: Instant,
    /// A request's head was read from it (it is a pooled connection then,
    /// to the server).
    served: AtomicBool,
    /// The server introduced the connection with the group's token.
    admitted: AtomicBool,
    /// How long reads wait for the server once it has (`with_timeout`).
    timeout: Option<Duration>,
}

impl ServerConnection {
    pub fn new(stream: UnixStream, gather: usize) -> io::Result<ServerConnection> {
        Ok(ServerConnection {
            conn: Arc::new(Mutex::new(ConnectionState {
                reader: BufReader::with_capacity(16 << 10, stream.try_clone()?),
                writer: stream,
                out: Vec::new(),
                gather,
                broken: false,
                head_queued: false,
                head_written: false,
                answered: false,
            })),
            accepted: Instant::now(),
            served: AtomicBool::new(false),
            admitted: AtomicBool::new(false),
            timeout: None,
        })
    }

    /// Reads the connection's first frame, which must be the server's
    /// introduction: a `Hello` of the token's size (read no further
    /// otherwise: an unknown peer allocates nothing) with the group's
    /// token. Then the connection waits for the server as long as the
    /// group's socket timeout says. False (logged) for anything else.
    fn admit(&self, c: &mut ConnectionState, apps: &Apps) -> io::Result<bool> {
        let Some(a) = &apps.admission else {
            log::error!(target: "oxwsgi", "this daemon admits nobody (it was given no token)");
            return Ok(false);
        };
        let (kind, len) = frame::read_header(&mut c.reader)?;
        let mut token = [0u8; Token::LEN];
        let introduced = kind == Kind::Hello && len == Token::LEN && {
            c.reader.read_exact(&mut token)?;
            a.token.matches(&token)
        };
        if !introduced {
            log::error!(
                target: "oxwsgi",
                "group {}: a connection did not introduce itself with the group's token (it sent {kind:?} of {len} bytes); closed, nothing of it runs",
                a.group,
            );
            return Ok(false);
        }
        self.admitted.store(true, Ordering::Release);
        c.writer.set_read_timeout(self.timeout)?;
        Ok(true)
    }

    /// Once the server introduced the connection, reads wait at most
    /// `timeout` for it (before, the dispatcher's shorter limit).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> ServerConnection {
        self.timeout = timeout;
        self
    }

    /// Whether the server introduced this connection.
    pub fn admitted(&self) -> bool {
        self.admitted.load(Ordering::Acquire)
    }

    /// When the connection was accepted.
    pub fn accepted(&self) -> Instant {
        self.accepted
    }

    /// Ends a connection of a daemon that is going. One that never carried
    /// a request gets `Retry` first: the server sends its first request
    /// only after `Accepted`, and would otherwise take the close for a
    /// failure of a request that may have run (a POST's 502); with `Retry`
    /// it sends it again, to another daemon. A pooled one just closes (the
    /// server resends what it wrote on an idle connection).
    pub fn close_for_good(&self) {
        let Ok(mut c) = self.conn.try_lock() else {
            return;
        };
        if !self.served.load(Ordering::Acquire) {
            use std::os::fd::AsRawFd;
            let _ = frame::send_now(c.writer.as_raw_fd(), Kind::Retry, b"");
        }
        let _ = c.writer.shutdown(std::net::Shutdown::Both);
        c.broken = true;
    }

    /// Ends the connection from another thread: the thread that serves it
    /// (or the next woken for it) sees it closed.
    pub fn shut_down(&self) {
        if let Ok(c) = self.conn.try_lock() {
            let _ = c.writer.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The socket, to wait for its next request.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.conn.lock().recover().writer.as_raw_fd()
    }

    /// Whether the next request's head is already read into the buffer
    /// (the socket may then never look readable again).
    pub fn has_buffered(&self) -> bool {
        !self.conn.lock().recover().reader.buffer().is_empty()
    }

    /// Serves the next request, which has waited for a thread since
    /// `ready` (or since the server stamped it, if that is earlier).
    /// `Ok(true)`: the connection may carry another; `Ok(false)`: the
    /// server closed it (or it broke).
    pub fn serve_one(&self, apps: &Apps, ready: Instant) -> io::Result<bool> {
        let head = match self.read_head(apps)? {
            Next::Gone => return Ok(false),
            // Back to waiting: the head has not come yet.
            Next::NotYet => return Ok(true),
            Next::Head(head) => head,
        };
        let frame::Head {
            app: app_ref,
            request: mut req,
            body,
            since_us,
            quiet,
        } = frame::decode_head(&head)?;
        let mut waited = ready.elapsed();
        if let Some(since) = since_us {
            waited = waited.max(Duration::from_micros(
                frame::monotonic_us().saturating_sub(since),
            ));
        }
        let Some(app) = self.app_to_run(apps, &app_ref)? else {
            return Ok(true);
        };
        // `WSGIScriptReloading Off`: the script is not even looked at.
        let reloads = !matches!(app_ref, AppRef::Named { reload: false, .. });
        if let Some(life) = apps
            .life
            .as_ref()
            .filter(|_| reloads && app.script_changed())
        {
            // A whole new process, as mod_wsgi's daemon mode: a module
            // reloaded in place would leave the project's other modules as
            // they were.
            life.end(
                crate::daemon::process::life::End::Recycle,
                &format!("the WSGI script of app {} changed", app.name()),
            );
            self.conn.lock().recover().send(Kind::Retry, b"")?;
            return Ok(false);
        }
        req.body = Some(match body {
            BodyKind::None | BodyKind::Length(0) => Body::Empty,
            _ => Body::Stream(Box::new(PullBody::new(self.conn.clone()))),
        });
        let sink = FrameSink {
            conn: self.conn.clone(),
        };
        {
            let mut c = self.conn.lock().recover();
            c.head_queued = false;
            c.head_written = false;
        }
        if let Some(life) = &apps.life {
            life.request_started();
        }
        let outcome = crate::handler::handle_after_wait(&app, &mut req, Box::new(sink), waited);
        if let Some(life) = &apps.life {
            if app.load_failed() {
                life.app_failed();
            } else {
                life.app_loaded();
            }
            life.request_finished(!quiet);
        }
        let c = self.conn.lock().recover();
        Ok(!c.broken && outcome != Outcome::ClientGone)
    }

    /// The next request's head, once the connection is admitted.
    fn read_head(&self, apps: &Apps) -> io::Result<Next> {
        let mut head = Vec::new();
        let mut c = self.conn.lock().recover();
        if !self.admitted() {
            match self.admit(&mut c, apps) {
                Ok(true) => {}
                Ok(false) => return Ok(Next::Gone),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::Gone),
                Err(e) => return Err(e),
            }
            use std::os::fd::AsRawFd;
            if c.reader.buffer().is_empty()
                && !crate::daemon::sys::bytes_waiting(c.writer.as_raw_fd())
            {
                return Ok(Next::NotYet);
            }
        }
        let kind = match frame::read(&mut c.reader, &mut head) {
            Ok(k) => k,
            // The server closed an idle connection.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::Gone),
            Err(e) => return Err(e),
        };
        drop(c);
        self.served.store(true, Ordering::Release);
        if kind != Kind::Head {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a request head, got {kind:?}"),
            ));
        }
        Ok(Next::Head(head))
    }

    /// The app the head names, if this daemon may run it; otherwise the
    /// server is answered (403: a script of another owner; 500: no such
    /// app, logged) and `None`.
    fn app_to_run(&self, apps: &Apps, app_ref: &AppRef) -> io::Result<Option<Arc<App>>> {
        if let Err(e) = apps.check_owner(app_ref) {
            log::error!(target: "oxwsgi", "{e}; answering 403");
            self.conn
                .lock()
                .recover()
                .send(Kind::Error, &403u16.to_le_bytes())?;
            return Ok(None);
        }
        match apps.get(app_ref) {
            Ok(app) => Ok(Some(app)),
            Err(e) => {
                let group = apps.admission.as_ref().map_or("", |a| &a.group);
                log::error!(target: "oxwsgi", "group {group}: {e}");
                self.conn
                    .lock()
                    .recover()
                    .send(Kind::Error, &500u16.to_le_bytes())?;
                Ok(None)
            }
        }
    }
}

/// What came on a connection between requests.
enum Next {
    /// The connection ends (the server closed it, or was refused).
    Gone,
    /// Nothing yet: back to waiting.
    NotYet,
    /// A request's head.
    Head(Vec<u8>),
}

/// Tells the server that a daemon took its new connection (`Accepted`):
/// it sends the request only then.
pub fn greet(stream: &UnixStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    frame::send_now(stream.as_raw_fd(), Kind::Accepted, b"")
}

/// Serves the requests of one connection until the server closes it, on
/// the calling thread. `apps` are the daemon's apps, by the number a head
/// names.
pub fn serve_connection(apps: &Apps, stream: UnixStream) -> io::Result<()> {
    greet(&stream)?;
    let conn = ServerConnection::new(stream, apps.options.response_buffer_size)?;
    while conn.serve_one(apps, Instant::now())? {}
    Ok(())
}

/// The request body, asked for as the app reads it. A read asks for at
/// least `READ_AHEAD` bytes and keeps what the app did not take for its
/// next reads: framework parsers read in 8-64 KiB pieces, and each ask is
/// a round trip to the server.
struct PullBody {
    conn: Arc<Mutex<ConnectionState>>,
    eof: bool,
    ahead: Vec<u8>,
    /// Where the unread part of `ahead` starts.
    at: usize,
}

/// The least a read asks the server for: the most a frame may carry, so a
/// 1 MiB body read in any pieces costs about four round trips.
const READ_AHEAD: usize = frame::MAX_READ;

impl PullBody {
    fn new(conn: Arc<Mutex<ConnectionState>>) -> PullBody {
        PullBody {
            conn,
            eof: false,
            ahead: Vec::new(),
            at: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.ahead.len() - self.at
    }
}

impl Read for PullBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.buffered() > 0 {
            let n = self.buffered().min(buf.len());
            buf[..n].copy_from_slice(&self.ahead[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        if self.eof {
            return Ok(0);
        }
        let mut c = self.conn.lock().recover();
        let want = READ_AHEAD as u32;
        c.send(Kind::Read, &want.to_le_bytes())?;
        let (kind, len) = frame::read_header(&mut c.reader)?;
        match kind {
            Kind::Body if len <= want as usize => {
                let direct = len.min(buf.len());
                c.reader.read_exact(&mut buf[..direct])?;
                if len > direct {
                    self.ahead.resize(len - direct, 0);
                    c.reader.read_exact(&mut self.ahead)?;
                    self.at = 0;
                }
                if len == 0 {
                    self.eof = true;
                }
                Ok(direct)
            }
            Kind::BodyError => {
                let mut why = vec![0; len];
                c.reader.read_exact(&mut why)?;
                self.eof = true;
                Err(io::Error::other(String::from_utf8_lossy(&why).into_owned()))
            }
            other => {
                c.broken = true;
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected request body, got {other:?} of {len} bytes"),
                ))
            }
        }
    }
}

impl BodyStream for PullBody {
    /// A read served from what was read ahead needs no round trip, so it
    /// may keep the GIL.
    fn ready(&self, want: usize) -> bool {
        self.buffered() >= want.max(1)
    }
}

/// The response, as frames to the server.
struct FrameSink {
    conn: Arc<Mutex<ConnectionState>>,
}

impl FrameSink {
    fn send(&self, kind: Kind, payload: &[u8]) -> io::Result<()> {
        self.conn.lock().recover().send(kind, payload)
    }

    /// Queues a frame; a later `send` writes it.
    fn queue(&self, kind: Kind, payload: &[u8]) -> io::Result<()> {
        self.conn.lock().recover().queue(kind, payload)
    }
}

/// At a request's timeout, from the watchdog thread: 504 to the server if
/// the response has not started, and the connection shut down either way,
/// so the server answers its client now (504, or a cut response) and the
/// app's thread fails its next write or body read. The request's thread
/// may hold the connection while it blocks on the socket (a body read, a
/// write to a slow client): the shutdown alone then unblocks it.
fn answer_timeout(conn: &Mutex<ConnectionState>, socket: &UnixStream) {
    let deadline = Instant::now() + Duration::from_millis(100);
    loop {
        let guard = match conn.try_lock() {
            Ok(c) => Some(c),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut c) = guard {
            if !c.head_written {
                c.out.clear();
                let _ = frame::write(&mut c.writer, Kind::Error, &504u16.to_le_bytes());
            }
            c.answered = true;
            c.broken = true;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

impl ResponseSink for FrameSink {
    fn timeout_action(&self) -> Option<TimeoutAction> {
        let conn = self.conn.clone();
        let socket = conn.lock().recover().writer.try_clone().ok()?;
        Some(Box::new(move || answer_timeout(&conn, &socket)))
    }

    fn start(&mut self, head: ResponseHead) -> io::Result<()> {
        self.queue(Kind::ResponseHead, &frame::encode_response_head(&head))
    }

    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        self.queue(Kind::Data, &chunk)
    }

    fn send_file(&mut self, file: std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        crate::response::sink::send_file_by_reading(self, file, offset, len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send(Kind::Flush, b"")
    }

    fn finish(&mut self) -> io::Result<()> {
        self.send(Kind::End, b"")
    }

    fn abort(&mut self) {
        let _ = self.send(Kind::Abort, b"");
    }

    fn error(&mut self, status: u16) -> io::Result<()> {
        self.send(Kind::Error, &status.to_le_bytes())
    }
}

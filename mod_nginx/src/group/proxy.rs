//! A request served by a process group (`wsgi_process_group`): the event loop's
//! side of the daemon protocol (`oxwsgi_core::daemon`). The request's head
//! goes to a daemon over a pooled connection (`pool`); what the daemon
//! sends is read when nginx's event loop says it is there, understood by
//! the core (`daemon::exchange`), and given to the same output as embedded
//! apps' responses (`output`: nginx's filters, its writer). Nothing here
//! blocks or waits on a thread:
//! - the response: reading from the daemon stops while nginx holds
//!   `RESPONSE_HIGH_WATER` bytes it has not sent, and goes on when the
//!   client has taken them (the daemon's socket fills, and its app waits);
//! - the request body: read from the client only when the daemon asks for
//!   some (`Read`), so it moves at the app's pace and the client's socket
//!   holds the rest;
//! - a client that goes away ends the request; its daemon connection is
//!   closed, never reused, so the daemon's next write fails, which stops
//!   the app and runs its `close()`;
//! - a group that is not there (its daemons are being replaced) is waited
//!   for, up to its connect timeout, then 503; a connection lost before the
//!   daemon answered is tried again when nothing can have run twice.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngx::ffi::{
    NGX_OK, ngx_close_connection, ngx_connection_t, ngx_event_t, ngx_http_request_t, ngx_int_t,
};
use oxwsgi_core::daemon::protocol::exchange::{self, Event, Exchange, Lost};
use oxwsgi_core::daemon::protocol::frame::{self, AppRef, BodyKind, Kind};
use oxwsgi_core::{App, Body, Chunk, guard};

use crate::group::pool;
use crate::output::ReqCtx;
use crate::output::channel::Channel;
use crate::output::msg::Msg;
use crate::request::NginxRequest;

/// Response bytes read from the daemon before they go to nginx's filters
/// (and before the high-water mark is looked at).
const BATCH_BYTES: usize = 64 << 10;

thread_local! {
    /// Read buffers of finished exchanges, kept for the next ones (a busy
    /// worker then neither allocates nor clears 16 KiB per request); the
    /// worker's own, as its requests all run on its event loop.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}
const SPARE_KEEP: usize = 32;
/// Larger buffers (a big frame grew them) go back to the allocator.
const SPARE_LARGEST: usize = 256 << 10;

fn new_exchange(head_limit: usize) -> Exchange {
    let buf = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    Exchange::with_buffer(head_limit, buf)
}

fn give_back(x: &mut Exchange) {
    let buf = x.take_buffer();
    if buf.capacity() == 0 || buf.capacity() > SPARE_LARGEST {
        return;
    }
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_KEEP {
            s.push(buf);
        }
    });
}

/// What the request's output and the link share: the request's side says
/// through it that the request is gone or that the client took what nginx
/// held. Apart from the link's memory, so that neither holds a reference
/// into the other while nginx calls back.
#[derive(Default)]
struct Shared {
    /// The request (and its `ReqCtx`) is alive.
    alive: Cell<bool>,
    /// Proxy code is running: the link is freed when it returns.
    busy: Cell<u32>,
    /// Reading from the daemon stopped for the client.
    paused: Cell<bool>,
    /// The daemon connection's read event, to resume reading.
    read_ev: Cell<*mut ngx_event_t>,
}

/// The request's hold on its link (a field of its `ReqCtx`): dropped with
/// the request, which ends the exchange.
pub struct ProxyRef {
    shared: Rc<Shared>,
    link: *mut Proxy,
}

impl ProxyRef {
    /// The link itself (for nginx's handlers of the request).
    pub fn link(&self) -> *mut Proxy {
        self.link
    }

    /// nginx sent what it held: read from the daemon again (on the next
    /// turn of the event loop, not inside nginx's write handling).
    pub fn room(&self) {
        let s = &self.shared;
        let ev = s.read_ev.get();
        if s.paused.replace(false) && !ev.is_null() {
            // SAFETY: read_ev is the live connection's read event while it
            // is set (cleared when the connection goes), on the event loop.
            unsafe { ngx::ffi::ngx_post_event(ev, &raw mut ngx::ffi::ngx_posted_events) };
        }
    }
}

/// Whether reading goes on after an event.
enum Step {
    Go,
    /// The request is answered, or waits for something else.
    Stop,
}

impl crate::output::Upstream for ProxyRef {
    fn room(&self) {
        ProxyRef::room(self);
    }
}

/// The group link of request `r`, if it has one.
///
/// # Safety
/// `r` is live, on the event loop thread.
unsafe fn proxy_of_request(r: *mut ngx_http_request_t) -> Option<*mut Proxy> {
    // SAFETY: r is live (proxy_of_request's contract).
    let ctx = unsafe { crate::output::ctx_of(r) };
    if ctx.is_null() {
        return None;
    }
    // SAFETY: a non-null context of ours is a live ReqCtx.
    let upstream = unsafe { (*ctx).upstream.as_deref() }?;
    let any: &dyn std::any::Any = upstream;
    any.downcast_ref::<ProxyRef>().map(ProxyRef::link)
}

impl Drop for ProxyRef {
    fn drop(&mut self) {
        self.shared.alive.set(false);
        if self.shared.busy.get() == 0 {
            // SAFETY: the link was leaked by `start` for this ProxyRef, and
            // no link code runs (busy is 0) that could still use it.
            drop(unsafe { Box::from_raw(self.link) });
        }
    }
}

pub struct Proxy {
    shared: Rc<Shared>,
    r: *mut ngx_http_request_t,
    /// Valid while `shared.alive`.
    ctx: *mut ReqCtx,
    group: usize,
    /// The group's response head limit and socket timeout.
    head_limit: usize,
    timeout: Duration,
    /// The connection to a daemon (null between attempts, or once the
    /// exchange is over).
    conn: *mut ngx_connection_t,
    /// The next connection may come from the pool (the first attempt).
    try_pool: bool,
    pooled: bool,
    idempotent: bool,
    /// A HEAD request (its response's Content-Length promises no body).
    head_request: bool,
    /// The request's head frame, kept to send it again.
    head: Vec<u8>,
    /// Frames for the daemon not written yet.
    out: Vec<u8>,
    sent: usize,
    x: Exchange,
    /// Request body read from nginx; the part not sent yet starts at
    /// `body_at`.
    body: Vec<u8>,
    body_at: usize,
    body_ended: bool,
    /// The daemon's unanswered `Read`.
    want: Option<usize>,
    deadline: Instant,
    pause: Duration,
    /// Waits before the next connection attempt.
    wait: ngx_event_t,
    /// `wait`'s stand-in connection (nginx's timer code reads an event's
    /// data as a connection); its data is the link.
    wait_conn: ngx_connection_t,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SAFETY: on the event loop; the timer and the connection are this
        // link's own.
        unsafe {
            if self.wait.timer_set() != 0 {
                ngx::ffi::ngx_del_timer(&mut self.wait);
            }
        }
        // The exchange did not end: the daemon must see the connection go.
        self.close_conn();
        give_back(&mut self.x);
    }
}

/// Starts serving `r` with `app` in group `group`: called once nginx
/// started reading the body. False when it could not (the caller answers
/// 500).
///
/// # Safety
/// `r` is live, on the event loop, reading its body unbuffered.
pub unsafe fn start(r: *mut ngx_http_request_t, app: &App, group: usize) -> bool {
    let Some((connect_timeout, head_limit, timeout, name)) = pool::with(group, |p| {
        (p.connect_timeout, p.head_limit, p.timeout, p.name.clone())
    }) else {
        return false;
    };
    // SAFETY: r is live on the event loop (start's contract).
    let Some((head, method)) = (unsafe { encode_request(r, app, &name) }) else {
        return false;
    };
    let channel = Arc::new(Channel::new(&crate::embedded::worker::NOTIFIER));
    // SAFETY: r is live on the event loop, as attach requires.
    let Some(ctx) =
        (unsafe { ReqCtx::attach(r, channel, None, crate::embedded::worker::draining) })
    else {
        return false;
    };
    let shared = Rc::new(Shared::default());
    shared.alive.set(true);
    let link = Box::into_raw(Box::new(Proxy {
        shared: shared.clone(),
        r,
        ctx,
        group,
        head_limit,
        timeout,
        conn: std::ptr::null_mut(),
        try_pool: true,
        pooled: false,
        idempotent: exchange::idempotent(&method),
        head_request: method == b"HEAD",
        head,
        out: Vec::new(),
        sent: 0,
        x: new_exchange(head_limit),
        body: Vec::new(),
        body_at: 0,
        body_ended: false,
        want: None,
        deadline: Instant::now() + connect_timeout,
        pause: Duration::from_millis(10),
        // SAFETY: ngx_event_t and ngx_connection_t are plain C data, for
        // which all zeroes is the state nginx gives a new one.
        wait: unsafe { std::mem::zeroed() },
        // SAFETY: as above.
        wait_conn: unsafe { std::mem::zeroed() },
    }));
    // SAFETY: ctx was just attached to the live r; link was just leaked,
    // and its event and stand-in connection live inside it.
    unsafe {
        (*ctx).upstream = Some(Box::new(ProxyRef { shared, link }));
        take_over(r, link);
        enter(link, |l| l.connect());
    }
    true
}

/// The request's head as the daemon reads it (the app it names, the
/// request, how its body comes, the group's name), and its method; `None`
/// (logged) when the request cannot be read.
///
/// # Safety
/// `r` is live, on the event loop.
unsafe fn encode_request(
    r: *mut ngx_http_request_t,
    app: &App,
    group: &str,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let o = app.options();
    let target = AppRef::Named {
        target: o.spec.target(),
        callable: Some(o.spec.callable.clone()),
        mount: o.mount.clone(),
        // A group restarts when its script changes, as mod_wsgi's daemons
        // (nginx has no WSGIScriptReloading to say otherwise).
        reload: true,
        group: o.application_group.clone(),
    };
    // SAFETY: r is live on the event loop (the contract).
    let request = match unsafe { NginxRequest::snapshot(r, Some(Body::Empty)) } {
        Ok(q) => q,
        Err(e) => {
            log::error!(target: "oxwsgi", "cannot read the request: {e}");
            return None;
        }
    };
    // SAFETY: as above.
    let kind = unsafe {
        let h = &(*r).headers_in;
        if h.chunked() != 0 {
            BodyKind::Chunked
        } else if h.content_length_n > 0 {
            BodyKind::Length(h.content_length_n as u64)
        } else {
            BodyKind::None
        }
    };
    let mut head = frame::encode_head(&target, &request, kind);
    frame::add_var(&mut head, b"mod_wsgi.process_group", group.as_bytes());
    frame::stamp(&mut head, frame::monotonic_us());
    Some((head, oxwsgi_core::Request::method(&request).to_vec()))
}

/// The link takes the request's events over: its wait timer, the body
/// nginx read so far, and the client's reads (the body as it comes).
///
/// # Safety
/// `r` is live, on the event loop; `link` was just made for it.
unsafe fn take_over(r: *mut ngx_http_request_t, link: *mut Proxy) {
    // SAFETY: the contract; the event and stand-in connection live inside
    // the link.
    unsafe {
        let l = &mut *link;
        l.wait_conn.fd = -1;
        l.wait_conn.data = link.cast();
        l.wait.data = (&raw mut l.wait_conn).cast();
        l.wait.handler = Some(on_wait);
        l.wait.log = (*(*r).connection).log;
        crate::request::body::take_bufs(r, &mut |b| l.body.extend_from_slice(b));
        l.body_ended = (*r).reading_body() == 0;
        (*r).read_event_handler = Some(if l.body_ended {
            ngx::ffi::ngx_http_test_reading
        } else {
            on_client_body
        });
        (*r).write_event_handler = Some(ngx::ffi::ngx_http_request_empty_handler);
    }
}

/// Runs link code; frees the link afterwards if the request went meanwhile.
///
/// # Safety
/// `link` is a live link, on the event loop.
unsafe fn enter(link: *mut Proxy, f: impl FnOnce(&mut Proxy)) {
    // SAFETY: link is live (enter's contract); `shared` is its own
    // allocation, kept by the clone.
    let shared = unsafe { (*link).shared.clone() };
    shared.busy.set(shared.busy.get() + 1);
    // SAFETY: live, and no other reference to it is used meanwhile: the
    // request's side touches only `shared`.
    f(unsafe { &mut *link });
    shared.busy.set(shared.busy.get() - 1);
    if shared.busy.get() == 0 && !shared.alive.get() {
        // SAFETY: the request went (its ProxyRef left the link to us) and no
        // link code runs any more.
        drop(unsafe { Box::from_raw(link) });
    }
}

impl Proxy {
    fn alive(&self) -> bool {
        self.shared.alive.get()
    }

    fn name(&self) -> String {
        pool::with(self.group, |p| p.name.clone()).unwrap_or_default()
    }

    /// Gives `msgs` to the request's output. False once the request is gone
    /// (nothing of it may be touched then).
    fn deliver(&mut self, msgs: VecDeque<Msg>) -> bool {
        if !msgs.is_empty() && self.alive() {
            // SAFETY: ctx is live while shared.alive, on the event loop.
            unsafe { crate::output::apply_msgs(self.ctx, msgs) };
        }
        self.alive()
    }

    /// Sends the request on a connection: a pooled one first, then new
    /// ones; waits while the group cannot be reached.
    fn connect(&mut self) {
        if !self.alive() {
            return;
        }
        let pooled = if self.try_pool {
            pool::take(self.group)
        } else {
            None
        };
        self.try_pool = false;
        let c = match pooled {
            Some(c) => c,
            // SAFETY: on the event loop, after the worker's pool started.
            None => match unsafe { pool::open(self.group) } {
                Ok(c) => c,
                Err(e) => return self.unreachable(e),
            },
        };
        self.pooled = pooled.is_some();
        self.conn = c;
        // SAFETY: c is a live connection of ours that no request uses; the
        // request's connection log lives as long as the request, and the
        // connection is handed back to the pool (with the cycle's log) or
        // closed before the request ends.
        unsafe {
            (*c).data = (self as *mut Proxy).cast();
            let log = (*(*self.r).connection).log;
            (*c).log = log;
            (*(*c).read).log = log;
            (*(*c).write).log = log;
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
            self.shared.read_ev.set((*c).read);
        }
        self.x = Exchange::with_buffer(self.head_limit, self.x.take_buffer())
            .for_head_request(self.head_request)
            .on_new_connection(!self.pooled);
        self.out.clear();
        self.sent = 0;
        self.want = None;
        if self.pooled {
            self.send_head();
        } else {
            // The head goes once a daemon took the connection.
            self.arm_read_timer();
        }
    }

    fn send_head(&mut self) {
        let _ = frame::write(&mut self.out, Kind::Head, &self.head);
        match self.write_out() {
            Ok(()) => self.arm_read_timer(),
            Err(e) => self.broken(e),
        }
    }

    /// The group cannot be reached (yet): wait, or answer 503 at the
    /// deadline.
    fn unreachable(&mut self, e: io::Error) {
        if Instant::now() < self.deadline {
            log::debug!(target: "oxwsgi", "group {}: not reachable yet ({e}); waiting", self.name());
            self.wait_a_little();
            return;
        }
        log::error!(
            target: "oxwsgi",
            "group {}: cannot reach its daemons: {e}; answering 503",
            self.name()
        );
        self.deliver([Msg::Error(503)].into());
    }

    fn wait_a_little(&mut self) {
        let ms = self.pause.as_millis() as ngx::ffi::ngx_msec_t;
        self.pause = (self.pause * 2).min(Duration::from_millis(200));
        // SAFETY: the link's own timer, on the event loop.
        unsafe { ngx::ffi::ngx_add_timer(&mut self.wait, ms) };
    }

    /// Lets the connection go: back to the pool when the exchange ended
    /// cleanly, closed otherwise.
    fn close_conn(&mut self) {
        let c = std::mem::replace(&mut self.conn, std::ptr::null_mut());
        self.shared.read_ev.set(std::ptr::null_mut());
        self.shared.paused.set(false);
        if c.is_null() {
            return;
        }
        // SAFETY: c is this link's live connection, which nothing else uses.
        unsafe {
            if self.x.reusable() && self.out.len() == self.sent {
                pool::put(self.group, c);
            } else {
                ngx_close_connection(c);
            }
        }
    }

    /// The connection failed before the exchange ended.
    fn broken(&mut self, e: io::Error) {
        // Not reusable: the exchange is not over.
        self.close_conn();
        match self.x.lost(self.pooled, self.idempotent) {
            Lost::Unsent => self.unreachable(e),
            Lost::Resend if Instant::now() < self.deadline => {
                log::debug!(target: "oxwsgi", "group {}: connection lost before an answer ({e}); sending again", self.name());
                if self.pooled {
                    // A connection the daemon closed while it was idle.
                    self.connect();
                } else {
                    self.wait_a_little();
                }
            }
            Lost::Cut => {
                log::error!(target: "oxwsgi", "group {}: the daemon's connection failed: {e}", self.name());
                self.deliver([Msg::Abort].into());
            }
            _ => {
                log::error!(target: "oxwsgi", "group {}: the daemon's connection failed: {e}; answering 502", self.name());
                self.deliver([Msg::Error(502)].into());
            }
        }
    }

    /// Writes what waits for the daemon; waits for the socket when it is
    /// full.
    fn write_out(&mut self) -> io::Result<()> {
        let c = self.conn;
        if c.is_null() {
            return Ok(());
        }
        while self.sent < self.out.len() {
            let rest = &self.out[self.sent..];
            // SAFETY: writing from a live slice to the connection's socket.
            let n = unsafe {
                libc::send(
                    (*c).fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                self.sent += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // SAFETY: the live connection's write event, on the
                    // event loop.
                    unsafe {
                        let wev = (*c).write;
                        (*wev).set_ready(0);
                        if ngx::ffi::ngx_handle_write_event(wev, 0) != NGX_OK as ngx_int_t {
                            return Err(io::Error::other("cannot watch the daemon's socket"));
                        }
                        ngx::ffi::ngx_add_timer(wev, self.timeout.as_millis() as _);
                    }
                    return Ok(());
                }
                _ => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        // SAFETY: the live connection's write event, on the event loop.
        unsafe {
            let wev = (*c).write;
            if (*wev).timer_set() != 0 {
                ngx::ffi::ngx_del_timer(wev);
            }
        }
        Ok(())
    }

    /// The daemon's read timer runs while the daemon owes an answer: not
    /// while reading is paused for the client, nor while the daemon waits
    /// for the client's body (nginx's own timers watch the client then).
    /// Until a daemon took a new connection, it runs to the connect
    /// deadline.
    fn arm_read_timer(&mut self) {
        let c = self.conn;
        if c.is_null() {
            return;
        }
        let waiting = !self.shared.paused.get() && self.want.is_none();
        let limit = if self.x.awaiting_accept() {
            self.deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        } else {
            self.timeout
        };
        // SAFETY: the live connection's read event, on the event loop.
        unsafe {
            let rev = (*c).read;
            if waiting {
                ngx::ffi::ngx_add_timer(rev, limit.as_millis() as _);
            } else if (*rev).timer_set() != 0 {
                ngx::ffi::ngx_del_timer(rev);
            }
        }
    }

    /// Reads and applies what the daemon sent, as far as the client keeps
    /// up.
    fn read(&mut self) {
        let c = self.conn;
        if c.is_null() {
            return;
        }
        // SAFETY: the live connection's read event.
        if unsafe { (*(*c).read).timedout() } != 0 {
            // SAFETY: as above; the flag is ours to clear.
            unsafe { (*(*c).read).set_timedout(0) };
            return self.timed_out();
        }
        let mut msgs = VecDeque::new();
        let mut bytes = 0;
        let failed = loop {
            if self.shared.paused.get() {
                break None;
            }
            let event = match self.x.next_event() {
                Ok(Some(e)) => e,
                Ok(None) => match self.recv() {
                    Ok(true) => continue,
                    Ok(false) => break None,
                    Err(e) => break Some(e),
                },
                Err(e) => break Some(e),
            };
            if let Step::Stop = self.take(event, &mut msgs, &mut bytes) {
                return;
            }
        };
        if !self.deliver(msgs) {
            return;
        }
        if let Some(e) = failed {
            return self.broken(e);
        }
        self.pause_if_full();
        self.arm_read_timer();
    }

    /// The read timer fired: before `Accepted`, at the connect deadline
    /// (503: nothing was sent, so nothing of it ran); after, at the socket
    /// timeout (504, or the response cut if it started).
    fn timed_out(&mut self) {
        if self.x.awaiting_accept() {
            self.close_conn();
            log::error!(
                target: "oxwsgi",
                "group {}: no daemon took the request within connect_timeout ({:?}); answering 503",
                self.name(),
                pool::with(self.group, |p| p.connect_timeout).unwrap_or_default()
            );
            self.deliver([Msg::Error(503)].into());
            return;
        }
        log::error!(
            target: "oxwsgi",
            "group {}: the daemon sent nothing for {:?} (socket_timeout); answering 504",
            self.name(),
            self.timeout
        );
        // The exchange is not over: the connection closes.
        let started = self.x.started();
        self.close_conn();
        self.deliver([if started { Msg::Abort } else { Msg::Error(504) }].into());
    }

    /// One event of the daemon's: messages for the output gathered in
    /// `msgs` (delivered in batches of `BATCH_BYTES`), the body sent when
    /// asked for, a retry or the end handled.
    fn take(&mut self, event: Event, msgs: &mut VecDeque<Msg>, bytes: &mut usize) -> Step {
        match event {
            Event::Accepted => {
                self.send_head();
                if !self.alive() || self.conn.is_null() {
                    return Step::Stop;
                }
            }
            Event::Read(n) => {
                // What came before goes first: the body may fail the
                // request, and the response must not be lost then.
                if !self.deliver(std::mem::take(msgs)) {
                    return Step::Stop;
                }
                self.want = Some(n);
                self.supply_body();
                if !self.alive() || self.conn.is_null() {
                    return Step::Stop;
                }
            }
            Event::Start(head) => msgs.push_back(Msg::Start(head)),
            Event::Data(v) => {
                *bytes += v.len();
                msgs.push_back(Msg::Data(Chunk::owned(v)));
            }
            Event::Flush => msgs.push_back(Msg::Flush),
            Event::End => msgs.push_back(Msg::Finish),
            Event::Abort => msgs.push_back(Msg::Abort),
            Event::Error(status) => msgs.push_back(Msg::Error(status)),
            Event::Retry => {
                self.close_conn();
                if Instant::now() < self.deadline {
                    log::debug!(target: "oxwsgi", "group {}: the daemon is restarting; sending the request again", self.name());
                    self.wait_a_little();
                } else {
                    log::error!(target: "oxwsgi", "group {}: its daemons kept restarting; answering 503", self.name());
                    self.deliver([Msg::Error(503)].into());
                }
                return Step::Stop;
            }
        }
        if self.x.is_over() {
            // The connection is free before the client has it all.
            self.close_conn();
            self.deliver(std::mem::take(msgs));
            return Step::Stop;
        }
        if *bytes >= BATCH_BYTES {
            *bytes = 0;
            if !self.deliver(std::mem::take(msgs)) {
                return Step::Stop;
            }
            self.pause_if_full();
        }
        Step::Go
    }

    /// Stops reading from the daemon while nginx holds a full response
    /// window (the request's output resumes it: `ProxyRef::room`).
    fn pause_if_full(&mut self) {
        // SAFETY: ctx is live while shared.alive, on the event loop.
        if self.alive() && !unsafe { (*self.ctx).has_room() } {
            self.shared.paused.set(true);
        }
    }

    /// One read from the daemon into the exchange: true when bytes came,
    /// false when there are none for now; an error at the end of the
    /// stream (the daemon closed it mid-exchange).
    fn recv(&mut self) -> io::Result<bool> {
        let c = self.conn;
        loop {
            let buf = self.x.buffer();
            // SAFETY: reading into a live buffer from the connection's
            // socket.
            let n = unsafe { libc::recv((*c).fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                self.x.filled(n as usize);
                return Ok(true);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // SAFETY: the live connection's read event: nginx tells
                    // us again when more comes.
                    unsafe { (*(*c).read).set_ready(0) };
                    return Ok(false);
                }
                _ => return Err(e),
            }
        }
    }

    /// Answers the daemon's `Read` with what the client has sent, reading
    /// from the client now if nothing is kept; or waits for the client.
    fn supply_body(&mut self) {
        let Some(n) = self.want else { return };
        // As much as the client has sent, up to what was asked: a frame per
        // buffer nginx reads would cost the daemon a round trip each.
        while self.body_kept() < n && !self.body_ended {
            let before = self.body_kept();
            if let Err(rc) = self.read_client() {
                // The request ends with nginx's status (or is cut): the
                // connection closes with it, which fails the app's read.
                if self.alive() {
                    // SAFETY: ctx is live while shared.alive.
                    unsafe { crate::output::end_after_body_error(&mut *self.ctx, rc) };
                }
                return;
            }
            if self.body_kept() == before {
                break;
            }
        }
        if self.body_kept() == 0 && !self.body_ended {
            // The client's timers run meanwhile, not the daemon's.
            self.arm_read_timer();
            return;
        }
        let k = n.min(self.body_kept());
        let _ = frame::write(
            &mut self.out,
            Kind::Body,
            &self.body[self.body_at..self.body_at + k],
        );
        self.body_at += k;
        if self.body_at == self.body.len() {
            self.body.clear();
            self.body_at = 0;
        }
        self.want = None;
        // Until the daemon asks again, the client may wait.
        if !self.body_ended {
            // SAFETY: the request is live (alive).
            unsafe { crate::request::body::let_client_wait(self.r) };
        }
        if let Err(e) = self.write_out() {
            return self.broken(e);
        }
        self.arm_read_timer();
    }

    /// Body bytes read from the client and not sent to the daemon yet.
    fn body_kept(&self) -> usize {
        self.body.len() - self.body_at
    }

    /// Reads what the client has sent into `body`; nginx's status when
    /// reading failed.
    fn read_client(&mut self) -> Result<(), ngx_int_t> {
        let r = self.r;
        // SAFETY: r is live (the link runs only while the request does, or
        // returns first) and reads its body unbuffered, on the event loop.
        unsafe {
            if (*r).reading_body() == 0 {
                self.body_ended = true;
                return Ok(());
            }
            let rc = ngx::ffi::ngx_http_read_unbuffered_request_body(r);
            if rc == ngx::ffi::NGX_ERROR as ngx_int_t
                || rc >= ngx::ffi::NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t
            {
                return Err(rc);
            }
            if self.body_at > 0 {
                self.body.drain(..self.body_at);
                self.body_at = 0;
            }
            let body = &mut self.body;
            crate::request::body::take_bufs(r, &mut |b| body.extend_from_slice(b));
            if rc == NGX_OK as ngx_int_t || (*r).reading_body() == 0 {
                self.body_ended = true;
                // From now on, watch for the client leaving.
                (*r).read_event_handler = Some(ngx::ffi::ngx_http_test_reading);
            }
        }
        Ok(())
    }
}

/// # Safety
/// `ev` is an event of a daemon connection with a link as its data.
unsafe fn proxy_of(ev: *mut ngx_event_t) -> *mut Proxy {
    // SAFETY: by proxy_of's contract.
    unsafe {
        (*(*ev).data.cast::<ngx_connection_t>())
            .data
            .cast::<Proxy>()
    }
}

/// The daemon sent something (or the read timer fired).
unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    guard::entry("a group connection's read event", (), || {
        // SAFETY: nginx calls this with the read event of a connection a
        // link set it on; the link lives while the connection is its.
        unsafe { enter(proxy_of(ev), |l| l.read()) }
    })
}

/// The daemon's socket has room again (or the write timer fired).
unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    guard::entry("a group connection's write event", (), || {
        // SAFETY: as in on_read, for the write event.
        unsafe {
            let timedout = (*ev).timedout() != 0;
            enter(proxy_of(ev), |l| {
                let done = if timedout {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the daemon took nothing (socket_timeout)",
                    ))
                } else {
                    l.write_out()
                };
                if let Err(e) = done {
                    l.broken(e);
                }
            })
        }
    })
}

/// Time to try the group again.
unsafe extern "C" fn on_wait(ev: *mut ngx_event_t) {
    guard::entry("a group connection's wait", (), || {
        // SAFETY: the wait event's data is the link's stand-in connection,
        // whose data is the link; the link deletes the timer when it goes.
        unsafe { enter(proxy_of(ev), |l| l.connect()) }
    })
}

/// The client sent more of the body (or its read timer fired).
unsafe extern "C" fn on_client_body(r: *mut ngx_http_request_t) {
    guard::entry("a group request's body event", (), || {
        // SAFETY: nginx calls this with a live request whose context is a
        // ReqCtx with a link (`start` set this handler after attaching it).
        unsafe {
            let Some(link) = proxy_of_request(r) else {
                return;
            };
            enter(link, |l| {
                if l.want.is_some() {
                    l.supply_body();
                } else {
                    // The daemon has not asked: leave it in the socket, and
                    // do not let the client time out for the app's pace.
                    if (*(*(*r).connection).read).timedout() == 0 {
                        crate::request::body::let_client_wait(r);
                    }
                }
            })
        }
    })
}

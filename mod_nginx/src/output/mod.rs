//! The event loop's side of a response: applies a channel's messages to the
//! request through nginx's own header and body filters (so nginx's gzip,
//! limit_rate, HTTP/2, SSI and the access log all apply), drives writing with
//! backpressure, and finalises the request.
//!
//! Body chunks are not copied: each becomes an nginx buffer over the chunk's
//! memory, and the chunk is kept until nginx has consumed the buffer.
//!
//! `channel`: what a Python thread (or a group's daemon, through `group`)
//! sends back, with backpressure, woken through the worker's `Notifier`;
//! `msg`: the messages and the response's high-water mark.

pub mod channel;
pub mod msg;

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ngx::ffi::{
    NGX_ERROR, NGX_HTTP_FLUSH, NGX_HTTP_REQUEST_TIME_OUT, NGX_OK, ngx_buf_t, ngx_chain_t,
    ngx_file_t, ngx_http_core_loc_conf_t, ngx_http_finalize_request, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_run_posted_requests, ngx_http_send_header, ngx_http_send_special,
    ngx_int_t, ngx_list_push, ngx_pcalloc, ngx_str_t, ngx_table_elt_t, ngx_uint_t,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use oxwsgi_core::response::latin1;
use oxwsgi_core::{Chunk, ResponseHead, guard};

use crate::output::channel::Channel;
use crate::output::msg::{Msg, RESPONSE_HIGH_WATER};
use crate::request::body;
use oxwsgi_core::request::body_pipe::BodyPipe;

/// What nginx still needs alive for a buffer it has not consumed (held only
/// for its lifetime, never read).
#[allow(dead_code)]
enum Held {
    Chunk(Chunk),
    File(File),
}

/// The output state of one request, in the request's pool.
pub struct ReqCtx {
    r: *mut ngx_http_request_t,
    channel: Arc<Channel>,
    /// The request body, while it streams to the app.
    body: Option<Arc<BodyPipe>>,
    header_sent: bool,
    /// HEAD or a bodiless status: body messages are dropped.
    discard_body: bool,
    /// Finalised: the rest belongs to nginx.
    finished: bool,
    /// Buffers given to nginx, oldest first, with what keeps them valid.
    held: VecDeque<(*mut ngx_buf_t, Held)>,
    /// Buffer structs nginx is done with, reused for later chunks.
    spare: Vec<*mut ngx_buf_t>,
    /// When the request was handed to Python, for the debug trace.
    queued: std::time::Instant,
    /// What feeds the response besides the channel: a group's daemon, for
    /// a `wsgi_process_group` request (dropped with the request, which ends it).
    pub upstream: Option<Box<dyn Upstream>>,
    /// Whether this worker is about to exit (a response then asks its
    /// client not to send another request on the connection).
    draining: fn() -> bool,
}

/// A source of a request's response besides its Python thread (a group's
/// daemon, `link`), told when nginx has taken what it held.
pub trait Upstream: std::any::Any {
    /// nginx sent what it held: the upstream may read again.
    fn room(&self);
}

impl ReqCtx {
    /// Logs a step of this request at the debug level (`error_log ...
    /// debug`), with its URI and the time since it was handed to Python.
    /// Off, it costs one atomic load.
    fn trace(&self, step: std::fmt::Arguments<'_>) {
        if !log::log_enabled!(target: "oxwsgi", log::Level::Debug) {
            return;
        }
        // SAFETY: the request outlives its context (its pool owns both), and
        // this runs on the event loop thread, which owns the request.
        let uri = unsafe { (*self.r).unparsed_uri.as_bytes() };
        log::debug!(
            target: "oxwsgi",
            "{}: {step}, {:?} after it was queued",
            String::from_utf8_lossy(uri),
            self.queued.elapsed()
        );
    }

    /// Creates the output state of `r` in its pool and ties `channel` to it.
    ///
    /// # Safety
    /// `r` is a live request on the event loop thread.
    pub unsafe fn attach(
        r: *mut ngx_http_request_t,
        channel: Arc<Channel>,
        body: Option<Arc<BodyPipe>>,
        draining: fn() -> bool,
    ) -> Option<*mut ReqCtx> {
        // SAFETY: r is live; its pool outlives every use of the context, and
        // the pool runs the context's Drop when the request is freed.
        unsafe {
            let req = ngx::http::Request::from_ngx_http_request(r);
            let ctx = req.pool().allocate(ReqCtx {
                r,
                channel: channel.clone(),
                body,
                header_sent: false,
                discard_body: false,
                finished: false,
                held: VecDeque::new(),
                spare: Vec::new(),
                queued: std::time::Instant::now(),
                upstream: None,
                draining,
            });
            if ctx.is_null() {
                return None;
            }
            req.set_module_ctx(ctx.cast(), crate::Module::module_ref());
            channel.target.store(ctx.cast(), Ordering::Release);
            Some(ctx)
        }
    }

    fn held_bytes(&self) -> usize {
        self.held
            .iter()
            .map(|(b, _)| {
                // SAFETY: held buffers are ours and alive until released.
                unsafe { buf_size(*b) }
            })
            .sum()
    }

    /// Releases what nginx has consumed and tells a waiting Python thread
    /// about the room that made.
    fn release_consumed(&mut self) {
        while let Some(&(b, _)) = self.held.front() {
            // SAFETY: as in held_bytes.
            if unsafe { buf_size(b) } != 0 {
                break;
            }
            self.held.pop_front();
            self.spare.push(b);
        }
        let in_nginx = self.held_bytes();
        let mut st = self.channel.lock();
        st.in_nginx = in_nginx;
        let room = st.pending + in_nginx <= RESPONSE_HIGH_WATER;
        drop(st);
        if room {
            // Cheap when nobody waits; a Python thread may be waiting either
            // for nginx to send or for this delivery to take its queue.
            self.channel.wake_writer();
            if let Some(upstream) = &self.upstream {
                upstream.room();
            }
        }
    }

    /// Whether nginx holds less response than the high-water mark.
    pub fn has_room(&self) -> bool {
        self.held_bytes() <= RESPONSE_HIGH_WATER
    }

    /// A fresh (or reused) zeroed buffer struct from the request's pool.
    unsafe fn new_buf(&mut self) -> *mut ngx_buf_t {
        // SAFETY: spare buffers were ours and are no longer referenced by
        // nginx (consumed); a new one comes zeroed from the live pool.
        unsafe {
            if let Some(b) = self.spare.pop() {
                ptr::write_bytes(b, 0, 1);
                return b;
            }
            ngx_pcalloc((*self.r).pool, std::mem::size_of::<ngx_buf_t>()).cast()
        }
    }
}

impl Drop for ReqCtx {
    fn drop(&mut self) {
        self.channel
            .target
            .store(ptr::null_mut(), Ordering::Release);
        // Also fails a body the app is still waiting for.
        self.channel.close();
    }
}

/// # Safety
/// `b` is a valid buffer.
unsafe fn buf_size(b: *mut ngx_buf_t) -> usize {
    // SAFETY: b is a valid buffer (buf_size's contract), whose pos/last
    // (or file positions) describe one allocation.
    unsafe {
        let b = &*b;
        if b.in_file() != 0 {
            (b.file_last - b.file_pos).max(0) as usize
        } else if b.pos.is_null() {
            0
        } else {
            b.last.offset_from(b.pos).max(0) as usize
        }
    }
}

/// A request for a page the module makes itself: GET or HEAD, its body
/// discarded; nginx's status to answer otherwise.
///
/// # Safety
/// `r` is live, on the event loop thread.
pub(crate) unsafe fn page_request(r: *mut ngx_http_request_t) -> Result<(), ngx_int_t> {
    // SAFETY: r is live on the event loop (page_request's contract).
    unsafe {
        let method = (*r).method as u32;
        if method != ngx::ffi::NGX_HTTP_GET && method != ngx::ffi::NGX_HTTP_HEAD {
            return Err(ngx::ffi::NGX_HTTP_NOT_ALLOWED as ngx_int_t);
        }
        let rc = ngx::ffi::ngx_http_discard_request_body(r);
        if rc != NGX_OK as ngx_int_t {
            return Err(rc);
        }
    }
    Ok(())
}

/// Answers `r` with a page the module makes itself (the status page, a
/// health answer): `status`, `headers` and Content-Length, then `body`.
///
/// # Safety
/// `r` is live, on the event loop thread, its body discarded and its
/// header not sent yet.
pub(crate) unsafe fn send_page(
    r: *mut ngx_http_request_t,
    status: u16,
    mut headers: Vec<(String, String)>,
    body: &[u8],
) -> ngx_int_t {
    headers.push(("Content-Length".to_string(), body.len().to_string()));
    let head = ResponseHead {
        status,
        status_line: match status {
            200 => "200 OK".to_string(),
            s => oxwsgi_core::response::sink::error_text(s).0.to_string(),
        },
        headers,
    };
    // SAFETY: r is live on the event loop (send_page's contract); the
    // buffer is made in its pool and filled before it is passed on.
    unsafe {
        if set_headers(r, &head).is_none() {
            return ngx::ffi::NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let rc = ngx::ffi::ngx_http_send_header(r);
        if rc == ngx::ffi::NGX_ERROR as ngx_int_t
            || rc > NGX_OK as ngx_int_t
            || (*r).header_only() != 0
        {
            return rc;
        }
        let b = ngx::ffi::ngx_create_temp_buf((*r).pool, body.len().max(1));
        if b.is_null() {
            return ngx::ffi::NGX_ERROR as ngx_int_t;
        }
        ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(if (*r).main == r { 1 } else { 0 });
        (*b).set_last_in_chain(1);
        let mut out = ngx::ffi::ngx_chain_t {
            buf: b,
            next: ptr::null_mut(),
        };
        ngx::ffi::ngx_http_output_filter(r, &mut out)
    }
}

/// Puts the app's status and headers into `r->headers_out`.
///
/// # Safety
/// `r` is live, on the event loop thread, and its header not sent yet.
pub(crate) unsafe fn set_headers(r: *mut ngx_http_request_t, head: &ResponseHead) -> Option<()> {
    // SAFETY: r is live; every string is copied into its pool first.
    unsafe {
        let out = &mut (*r).headers_out;
        out.status = head.status as usize;
        let pool = (*r).pool;
        out.status_line = ngx_str_t::from_bytes(pool, &head.status_line_bytes())?;
        if head.bodiless() {
            // nginx infers this from the status only when it writes the
            // status line itself; with the app's line it must be told, or
            // its filters would frame (and send) a body after the header.
            (*r).set_header_only(1);
        }
        for (name, value) in &head.headers {
            if name.eq_ignore_ascii_case("Content-Type") {
                let ct = latin1(value);
                out.content_type = ngx_str_t::from_bytes(pool, &ct)?;
                out.content_type_len = ct
                    .iter()
                    .position(|&b| b == b';')
                    .map_or(ct.len(), |i| ct[..i].trim_ascii_end().len());
                out.content_type_lowcase = ptr::null_mut();
                continue;
            }
            if name.eq_ignore_ascii_case("Content-Length") {
                // Validated by the core; nginx writes it from content_length_n.
                out.content_length_n = value.trim().parse().unwrap_or(-1);
                continue;
            }
            let h: *mut ngx_table_elt_t = ngx_list_push(&mut out.headers).cast();
            if h.is_null() {
                return None;
            }
            // Key, value, lowercase key and hash, all in the request pool.
            ngx::ffi::add_to_ngx_table(h, pool, name, latin1(value))?;
            // The fields nginx's own filters consult.
            let slot = match name.to_ascii_lowercase().as_str() {
                "location" => Some(&mut out.location),
                "content-encoding" => Some(&mut out.content_encoding),
                "last-modified" => Some(&mut out.last_modified),
                "etag" => Some(&mut out.etag),
                "server" => Some(&mut out.server),
                "date" => Some(&mut out.date),
                "content-range" => Some(&mut out.content_range),
                "expires" => Some(&mut out.expires),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = h;
            }
        }
        Some(())
    }
}

/// Delivers what a Python thread queued on `channel` to its request.
///
/// # Safety
/// On the event loop thread.
pub unsafe fn deliver(channel: &Arc<Channel>) {
    let msgs = channel.take_msgs();
    let target = channel.target.load(Ordering::Acquire);
    if target.is_null() {
        // The request is gone; the Python side sees the channel closed.
        return;
    }
    // SAFETY: target is the live ReqCtx of this channel (Drop clears it), and
    // we are on the event loop thread, the only one that touches it.
    unsafe { apply_msgs(target.cast(), msgs) };
}

/// Applies `msgs` (from a Python thread's channel or a group's daemon) to
/// the request of `ctx`, then runs the requests nginx posted meanwhile.
///
/// # Safety
/// `ctx` is live, on the event loop thread; it may be freed when this
/// returns (the request ended).
pub unsafe fn apply_msgs(ctx: *mut ReqCtx, msgs: VecDeque<Msg>) {
    // SAFETY: ctx is live (apply_msgs' contract), and so are its request
    // and the connection, which outlives the request's pool cleanup within
    // this call, as nginx's own handlers assume.
    unsafe {
        let c = (*(*ctx).r).connection;
        apply(&mut *ctx, msgs);
        ngx_http_run_posted_requests(c);
    }
}

/// The chain one batch of messages builds for a single output filter call.
struct Batch {
    out: *mut ngx_chain_t,
    /// The last `next` field of the chain (points into `out` or a link).
    tail: *mut *mut ngx_chain_t,
    /// The newest buffer of this batch, which a flush marks.
    last: *mut ngx_buf_t,
    finishing: bool,
    /// A flush with no buffer of this batch to carry it (the data went out
    /// in an earlier batch, held back by postpone_output).
    lone_flush: bool,
}

/// Whether the request is still ours after a message.
enum Step {
    Go,
    /// The request was finalised: its context may be freed already.
    Ended,
}

/// # Safety
/// `ctx` is live, on the event loop thread.
unsafe fn apply(ctx: &mut ReqCtx, msgs: VecDeque<Msg>) {
    let mut batch = Batch {
        out: ptr::null_mut(),
        tail: ptr::null_mut(),
        last: ptr::null_mut(),
        finishing: false,
        lone_flush: false,
    };
    // `batch` stays in place from here on (only borrowed, never moved), so
    // the tail may point into it.
    batch.tail = &mut batch.out;
    for msg in msgs {
        if ctx.finished {
            break;
        }
        // SAFETY: ctx and its request are live on the event loop thread
        // (apply's contract) and not finalised (checked above).
        let step = unsafe {
            match msg {
                Msg::Start(head) => ctx.on_start(&head),
                Msg::Data(chunk) => ctx.on_data(chunk, &mut batch),
                Msg::File { file, offset, len } => ctx.on_file(file, offset, len, &mut batch),
                Msg::Flush => {
                    batch.on_flush();
                    Step::Go
                }
                Msg::Finish => {
                    batch.finishing = true;
                    Step::Go
                }
                Msg::ReadBody => match read_body(ctx) {
                    true => Step::Ended,
                    false => Step::Go,
                },
                Msg::Abort => ctx.on_abort(&batch),
                Msg::Timeout if ctx.header_sent => ctx.on_abort(&batch),
                Msg::Timeout => {
                    finish(ctx, ngx::ffi::NGX_HTTP_GATEWAY_TIME_OUT as ngx_int_t);
                    Step::Ended
                }
                Msg::Error(status) => {
                    // nginx sends its own error page.
                    finish(ctx, status as ngx_int_t);
                    Step::Ended
                }
            }
        };
        if let Step::Ended = step {
            return;
        }
    }
    if !ctx.finished {
        // SAFETY: as above.
        unsafe { ctx.send(&mut batch) };
    }
}

impl Batch {
    fn on_flush(&mut self) {
        if self.last.is_null() {
            self.lone_flush = true;
        } else {
            // SAFETY: `last` is a buffer of this batch, alive in the pool.
            unsafe { (*self.last).set_flush(1) };
        }
    }
}

impl ReqCtx {
    /// The app's status and headers, through nginx's header filters.
    ///
    /// # Safety
    /// The request is live, on the event loop, its header not sent yet (the
    /// core sends headers once).
    unsafe fn on_start(&mut self, head: &ResponseHead) -> Step {
        let r = self.r;
        // SAFETY: by on_start's contract; set_headers copies into the pool.
        let rc = unsafe {
            if (self.draining)() {
                // This worker is about to exit: the client must not send
                // its next request on this connection.
                (*r).set_keepalive(0);
            }
            if set_headers(r, head).is_none() {
                NGX_ERROR as ngx_int_t
            } else {
                ngx_http_send_header(r)
            }
        };
        self.header_sent = true;
        self.trace(format_args!("headers sent, status {}", head.status));
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t {
            // SAFETY: finalising the live request once.
            unsafe { finish(self, rc) };
            return Step::Ended;
        }
        // SAFETY: reading a flag of the live request.
        if unsafe { (*r).header_only() } != 0 {
            self.discard_body = true;
        }
        Step::Go
    }

    /// A chunk of body, as an nginx buffer over the chunk's own memory.
    ///
    /// # Safety
    /// The request is live, on the event loop, not finalised.
    unsafe fn on_data(&mut self, chunk: Chunk, batch: &mut Batch) -> Step {
        if self.discard_body || chunk.is_empty() {
            return Step::Go;
        }
        // SAFETY: a new buffer over the chunk's memory, which stays alive in
        // `held` until nginx has consumed the buffer.
        unsafe {
            let b = self.new_buf();
            if b.is_null() {
                finish(self, NGX_ERROR as ngx_int_t);
                return Step::Ended;
            }
            let p = chunk.as_ptr() as *mut u8;
            (*b).start = p;
            (*b).pos = p;
            (*b).last = p.add(chunk.len());
            (*b).end = (*b).last;
            (*b).set_memory(1);
            if !hand_over(self, &mut batch.tail, b, Held::Chunk(chunk)) {
                return Step::Ended;
            }
            batch.last = b;
        }
        Step::Go
    }

    /// A file range, as an nginx file buffer (sendfile where enabled).
    ///
    /// # Safety
    /// The request is live, on the event loop, not finalised.
    unsafe fn on_file(&mut self, file: File, offset: u64, len: u64, batch: &mut Batch) -> Step {
        if self.discard_body || len == 0 {
            return Step::Go;
        }
        let r = self.r;
        // SAFETY: a file buffer over our own duplicate of the app's
        // descriptor, kept open in `held` until nginx has sent it; the
        // structs come from the live request's pool.
        unsafe {
            let b = self.new_buf();
            let f: *mut ngx_file_t =
                ngx_pcalloc((*r).pool, std::mem::size_of::<ngx_file_t>()).cast();
            if b.is_null() || f.is_null() {
                finish(self, NGX_ERROR as ngx_int_t);
                return Step::Ended;
            }
            (*f).fd = file.as_raw_fd();
            (*f).log = (*(*r).connection).log;
            (*f).name = ngx_str_t {
                len: 0,
                data: ptr::null_mut(),
            };
            (*b).file = f;
            (*b).file_pos = offset as i64;
            (*b).file_last = (offset + len) as i64;
            (*b).set_in_file(1);
            if !hand_over(self, &mut batch.tail, b, Held::File(file)) {
                return Step::Ended;
            }
            batch.last = b;
        }
        Step::Go
    }

    /// The app failed after its headers: what it produced goes out first,
    /// then NGX_ERROR cuts the connection, so the client sees the body is
    /// incomplete (no final chunk, or fewer bytes than promised).
    ///
    /// # Safety
    /// The request is live, on the event loop, not finalised.
    unsafe fn on_abort(&mut self, batch: &Batch) -> Step {
        let r = self.r;
        // SAFETY: by on_abort's contract; `batch.out` is a chain of our
        // buffers (or null).
        unsafe {
            if !batch.out.is_null() {
                ngx_http_output_filter(r, batch.out);
            }
            ngx_http_send_special(r, NGX_HTTP_FLUSH as ngx_uint_t);
            finish(self, NGX_ERROR as ngx_int_t);
        }
        Step::Ended
    }

    /// Passes the batch's chain to nginx's output filters (with the last
    /// buffer when the response is complete), then finalises or waits for
    /// the client as nginx's own writer does.
    ///
    /// # Safety
    /// The request is live, on the event loop, not finalised.
    unsafe fn send(&mut self, batch: &mut Batch) {
        let r = self.r;
        if batch.finishing && self.discard_body {
            // SAFETY: finalising the live request once.
            unsafe { finish(self, NGX_OK as ngx_int_t) };
            return;
        }
        if batch.finishing {
            // SAFETY: an empty buffer from the live pool that ends the
            // response, appended to this batch's chain.
            unsafe {
                let b = self.new_buf();
                if b.is_null() {
                    finish(self, NGX_ERROR as ngx_int_t);
                    return;
                }
                if (*r).main == r {
                    (*b).set_last_buf(1);
                }
                (*b).set_last_in_chain(1);
                (*b).set_sync(1);
                if !append(r, &mut batch.tail, b) {
                    finish(self, NGX_ERROR as ngx_int_t);
                    return;
                }
            }
        }
        if batch.out.is_null() && !batch.finishing && !batch.lone_flush {
            return;
        }
        self.trace(format_args!(
            "{} to nginx's output filters",
            match (batch.finishing, batch.out.is_null()) {
                (true, _) => "the last part",
                (false, true) => "a flush",
                (false, false) => "a part of the body",
            }
        ));
        // SAFETY: r is live; `out` is a chain of our buffers (or nothing,
        // with a flush of what nginx holds).
        let rc = unsafe {
            if batch.out.is_null() {
                ngx_http_send_special(r, NGX_HTTP_FLUSH as ngx_uint_t)
            } else {
                ngx_http_output_filter(r, batch.out)
            }
        };
        self.release_consumed();
        if batch.finishing || rc == NGX_ERROR as ngx_int_t {
            // SAFETY: finalising the live request once; with NGX_AGAIN
            // nginx's own writer sends the rest.
            unsafe { finish(self, rc) };
            return;
        }
        // SAFETY: r is live, on the event loop.
        unsafe { arm_writer(self) };
    }
}

/// Keeps what `b` points into alive and appends `b` to the chain; on
/// failure the request is ended.
///
/// # Safety
/// As `append`, with `ctx.r` as the request.
unsafe fn hand_over(
    ctx: &mut ReqCtx,
    tail: &mut *mut *mut ngx_chain_t,
    b: *mut ngx_buf_t,
    held: Held,
) -> bool {
    ctx.held.push_back((b, held));
    // SAFETY: ctx.r is live (hand_over's contract) and `tail` points at
    // the last `next` field of the chain being built.
    if unsafe { append(ctx.r, tail, b) } {
        return true;
    }
    // SAFETY: ctx.r is live; ending it once.
    unsafe { finish(ctx, NGX_ERROR as ngx_int_t) };
    false
}

/// Appends `b` to the chain being built.
///
/// # Safety
/// `r` is live; `tail` points at the chain's last `next` field.
unsafe fn append(
    r: *mut ngx_http_request_t,
    tail: &mut *mut *mut ngx_chain_t,
    b: *mut ngx_buf_t,
) -> bool {
    // SAFETY: a chain link from the live pool.
    unsafe {
        let cl = ngx::ffi::ngx_alloc_chain_link((*r).pool);
        if cl.is_null() {
            return false;
        }
        (*cl).buf = b;
        (*cl).next = ptr::null_mut();
        **tail = cl;
        *tail = &mut (*cl).next;
    }
    true
}

/// Hands the request back to nginx for the last time.
///
/// # Safety
/// `ctx.r` is live; called once per request.
unsafe fn finish(ctx: &mut ReqCtx, rc: ngx_int_t) {
    ctx.finished = true;
    ctx.trace(format_args!("finalised ({rc})"));
    let r = ctx.r;
    if rc == NGX_ERROR as ngx_int_t || rc >= ngx::ffi::NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        // No more output will be taken: the Python side must stop.
        ctx.channel.close();
    }
    // SAFETY: r is live; restoring nginx's default write handling.
    unsafe {
        (*r).write_event_handler = Some(ngx::ffi::ngx_http_request_empty_handler);
        ngx_http_finalize_request(r, rc);
    }
}

/// Waits for the client to take more (send timeout, nginx's low-water mark),
/// like nginx's own writer does.
///
/// # Safety
/// `ctx.r` is live, on the event loop thread.
unsafe fn arm_writer(ctx: &mut ReqCtx) {
    let r = ctx.r;
    // SAFETY: r, its connection and its write event are live.
    unsafe {
        let c = (*r).connection;
        let wev = (*c).write;
        let Some(clcf) = loc_conf(r) else { return };
        let buffered = (*r).buffered() != 0 || (*c).buffered() != 0 || !(*r).postponed.is_null();
        if buffered {
            (*r).write_event_handler = Some(on_write);
            if (*wev).delayed() == 0 {
                ngx::ffi::ngx_add_timer(wev, clcf.send_timeout);
            }
            if ngx::ffi::ngx_handle_write_event(wev, clcf.send_lowat) != NGX_OK as ngx_int_t {
                finish(ctx, NGX_ERROR as ngx_int_t);
            }
        } else if (*wev).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(wev);
        }
    }
}

/// # Safety
/// `r` is live.
unsafe fn loc_conf<'a>(r: *mut ngx_http_request_t) -> Option<&'a ngx_http_core_loc_conf_t> {
    // SAFETY: r is live (loc_conf's contract); its loc_conf array holds
    // the core module's location configuration.
    unsafe { NgxHttpCoreModule::location_conf(ngx::http::Request::from_ngx_http_request(r)) }
}

/// Reads more of a streaming request body into its pipe; ends the request
/// with nginx's status when reading fails (timeout, too large, bad chunk).
/// Returns true when it ended the request: `ctx` may then be freed already
/// and must not be touched again.
///
/// # Safety
/// `ctx` and its request are live, on the event loop thread.
pub unsafe fn read_body(ctx: &mut ReqCtx) -> bool {
    if ctx.finished {
        return false;
    }
    let Some(pipe) = ctx.body.clone() else {
        return false;
    };
    // SAFETY: ctx and its request are live on the event loop thread
    // (read_body's contract), and the request reads its body unbuffered.
    unsafe {
        if let Some(rc) = body::read_more(ctx.r, &pipe) {
            end_after_body_error(ctx, rc);
            return true;
        }
        if (*ctx.r).reading_body() == 0 {
            // All of it is in: from now on, watch for the client leaving.
            (*ctx.r).read_event_handler = Some(ngx::ffi::ngx_http_test_reading);
        }
    }
    false
}

/// The request's read event while its body streams.
pub unsafe extern "C" fn on_body_readable(r: *mut ngx_http_request_t) {
    guard::entry("the body read event", (), || {
        // SAFETY: nginx calls this for a live request on the event loop; our
        // module context is a ReqCtx when set.
        unsafe {
            let ctx = ctx_of(r);
            if !ctx.is_null() {
                read_body(&mut *ctx);
            }
        }
    });
}

/// Ends the request after reading its body failed with nginx's `rc` (a
/// response already begun is cut).
///
/// # Safety
/// `ctx` and its request are live, on the event loop thread; the context
/// may be freed when this returns.
pub unsafe fn end_after_body_error(ctx: &mut ReqCtx, rc: ngx_int_t) {
    if ctx.finished {
        return;
    }
    let rc = if ctx.header_sent {
        NGX_ERROR as ngx_int_t
    } else {
        rc
    };
    // SAFETY: by the contract; finalising once.
    unsafe { finish(ctx, rc) };
}

/// The output state of request `r` (null before `attach`).
///
/// # Safety
/// `r` is live.
pub unsafe fn ctx_of(r: *mut ngx_http_request_t) -> *mut ReqCtx {
    let index = crate::Module::module_ref().ctx_index;
    // SAFETY: r->ctx has an entry for every http module.
    unsafe { (*(*r).ctx.add(index)).cast::<ReqCtx>() }
}

/// The request's write event while a response streams: push what nginx
/// holds, release consumed chunks (waking the app), or time out.
unsafe extern "C" fn on_write(r: *mut ngx_http_request_t) {
    guard::entry("the write event", (), || {
        // SAFETY: nginx calls this for a live request on the event loop.
        unsafe { write_ready(r) }
    });
}

/// # Safety
/// `r` is live, on the event loop thread.
unsafe fn write_ready(r: *mut ngx_http_request_t) {
    // SAFETY: r is live; our module context is a ReqCtx when set.
    unsafe {
        let ctx = ctx_of(r);
        if ctx.is_null() {
            return;
        }
        let ctx = &mut *ctx;
        if ctx.finished {
            return;
        }
        let c = (*r).connection;
        let wev = (*c).write;
        if (*wev).timedout() != 0 {
            log::info!(target: "oxwsgi", "client timed out while receiving the response");
            (*c).set_timedout(1);
            finish(ctx, NGX_HTTP_REQUEST_TIME_OUT as ngx_int_t);
            return;
        }
        if (*wev).delayed() != 0 {
            if let Some(clcf) = loc_conf(r) {
                if ngx::ffi::ngx_handle_write_event(wev, clcf.send_lowat) != NGX_OK as ngx_int_t {
                    finish(ctx, NGX_ERROR as ngx_int_t);
                }
            }
            return;
        }
        let rc = ngx_http_output_filter(r, ptr::null_mut());
        ctx.release_consumed();
        if rc == NGX_ERROR as ngx_int_t {
            finish(ctx, rc);
            return;
        }
        arm_writer(ctx);
    }
}

//! Request bodies that stream: nginx reads the body unbuffered (no temporary
//! file) and the event loop hands each piece to the Python thread through a
//! `BodyPipe`. When the app falls behind by `BODY_HIGH_WATER` bytes the
//! event loop stops reading (the client's TCP window then fills); the app's
//! next read below `BODY_LOW_WATER` asks it to resume.
//!
//! The buffers the event loop copies into are reused once the app has read
//! them (`spare`): a burst of uploads then reuses the same memory, warm in
//! the cache, instead of growing the heap, having glibc give it back, and
//! faulting it in again page by page.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use ngx::ffi::{
    NGX_ERROR, NGX_HTTP_SPECIAL_RESPONSE, NGX_OK, ngx_chain_t,
    ngx_http_read_unbuffered_request_body, ngx_http_request_t, ngx_int_t,
};

use crate::channel::{Channel, FailsWith};
use crate::msg::Msg;

use oxwsgi_core::sync::Recover;

/// The smallest buffer nginx reads a request body into for an app unless
/// `wsgi_body_buffer_size` says otherwise. nginx's own default
/// (`client_body_buffer_size`, 8k) means a recv() per 8 KiB; apps read
/// uploads in 64 KiB pieces.
pub const DEFAULT_BODY_BUFFER: u64 = 64 << 10;

/// What a request may have buffered for its app before nginx stops reading
/// from the client (the rest waits in the kernel's socket buffers), and
/// where reading resumes. A few of nginx's body buffers (64 KiB by
/// default): enough that the app rarely waits, little enough that a burst
/// of uploads queued for a Python thread does not sit in the heap.
const BODY_HIGH_WATER: usize = 256 << 10;
const BODY_LOW_WATER: usize = 128 << 10;

/// Body buffers kept for reuse, per worker process.
static SPARE: Mutex<Spare> = Mutex::new(Spare {
    buffers: Vec::new(),
    bytes: 0,
});
/// The most memory `SPARE` keeps.
const SPARE_MAX: usize = 4 << 20;

struct Spare {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

/// A copy of `data` in a reused buffer when one fits.
fn copy_to_buffer(data: &[u8]) -> Vec<u8> {
    let reused = {
        let mut spare = SPARE.lock().recover();
        match spare.buffers.last() {
            Some(b) if b.capacity() >= data.len() => {
                let b = spare.buffers.pop();
                spare.bytes -= b.as_ref().map_or(0, Vec::capacity);
                b
            }
            _ => None,
        }
    };
    // New buffers are made at least the default body buffer's size, so that
    // a small first piece (what came with the headers) is reusable later.
    let mut v =
        reused.unwrap_or_else(|| Vec::with_capacity(data.len().max(DEFAULT_BODY_BUFFER as usize)));
    v.clear();
    v.extend_from_slice(data);
    v
}

/// Keeps a buffer the app has read for the next copy.
fn give_back(v: Vec<u8>) {
    if v.capacity() == 0 {
        return;
    }
    let mut spare = SPARE.lock().recover();
    if spare.bytes + v.capacity() <= SPARE_MAX {
        spare.bytes += v.capacity();
        spare.buffers.push(v);
    }
}

#[derive(Default)]
struct PipeState {
    chunks: VecDeque<Vec<u8>>,
    buffered: usize,
    eof: bool,
    /// Why the body stopped (client error, request gone).
    error: Option<String>,
    /// The event loop stopped reading until the app catches up.
    paused: bool,
}

#[derive(Default)]
pub struct BodyPipe {
    state: Mutex<PipeState>,
    more: Condvar,
}

impl BodyPipe {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().recover()
    }
}

impl FailsWith for BodyPipe {
    /// The request went away: a waiting reader gets an error.
    fn fail(&self, why: &str) {
        let mut st = self.lock();
        if !st.eof && st.error.is_none() {
            st.error = Some(why.to_string());
        }
        drop(st);
        self.more.notify_all();
    }
}

/// The app's side: a blocking reader (the core releases the GIL around it).
pub struct PipeReader {
    pipe: Arc<BodyPipe>,
    channel: Arc<Channel>,
    current: Vec<u8>,
    pos: usize,
}

impl PipeReader {
    pub fn new(pipe: Arc<BodyPipe>, channel: Arc<Channel>) -> PipeReader {
        PipeReader {
            pipe,
            channel,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl PipeReader {
    /// Makes sure `current` has unread bytes, waiting for the event loop if
    /// need be. False at the end of the body.
    fn refill(&mut self) -> io::Result<bool> {
        if self.pos < self.current.len() {
            return Ok(true);
        }
        let mut resume = false;
        let next = {
            let mut st = self.pipe.lock();
            loop {
                if let Some(c) = st.chunks.pop_front() {
                    st.buffered -= c.len();
                    if st.paused && st.buffered < BODY_LOW_WATER {
                        st.paused = false;
                        resume = true;
                    }
                    break Some(c);
                }
                if st.eof {
                    break None;
                }
                if let Some(e) = &st.error {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e.clone()));
                }
                st = self.pipe.more.wait(st).recover();
            }
        };
        if resume {
            let _ = self.channel.send_control(Msg::ReadBody);
        }
        match next {
            Some(c) => {
                give_back(std::mem::replace(&mut self.current, c));
                self.pos = 0;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn unread(&self, max: usize) -> &[u8] {
        let n = max.min(self.current.len() - self.pos);
        &self.current[self.pos..self.pos + n]
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.refill()? {
            return Ok(0);
        }
        let src = self.unread(buf.len());
        let n = src.len();
        buf[..n].copy_from_slice(src);
        self.pos += n;
        Ok(n)
    }
}

// The bytes are copied out of the pipe's chunks: straight into the app's
// bytes object, which need not be zeroed first.
impl oxwsgi_core::BodyStream for PipeReader {
    fn read_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        Some(self.refill().map(|more| {
            if !more {
                return 0;
            }
            let src = self.unread(buf.len());
            let n = src.len();
            for (d, s) in buf.iter_mut().zip(src) {
                d.write(*s);
            }
            self.pos += n;
            n
        }))
    }

    fn ready(&self, want: usize) -> bool {
        let unread = self.current.len() - self.pos;
        if unread >= want {
            return true;
        }
        let st = self.pipe.lock();
        st.eof || st.error.is_some() || unread + st.buffered >= want
    }
}

/// Moves what nginx read into the pipe and marks nginx's buffers consumed
/// (so it can reuse them for the next read).
///
/// # Safety
/// `r` is live, on the event loop, reading its body unbuffered.
unsafe fn take_bufs(r: *mut ngx_http_request_t, st: &mut PipeState) -> bool {
    let mut got = false;
    // SAFETY: r is live on the event loop and reading its body unbuffered, so
    // its request_body and the buffer chain in it are nginx's current ones,
    // touched by no other thread.
    unsafe {
        let rb = (*r).request_body;
        if rb.is_null() {
            return false;
        }
        let mut cl: *mut ngx_chain_t = (*rb).bufs;
        while !cl.is_null() {
            let b = (*cl).buf;
            if !(*b).pos.is_null() && (*b).last > (*b).pos {
                let len = (*b).last.offset_from((*b).pos) as usize;
                let data = copy_to_buffer(std::slice::from_raw_parts((*b).pos, len));
                st.buffered += len;
                st.chunks.push_back(data);
                got = true;
                (*b).pos = (*b).last;
            }
            cl = (*cl).next;
        }
        (*rb).bufs = std::ptr::null_mut();
    }
    got
}

/// Takes the part of the body nginx already has (right after
/// `ngx_http_read_client_request_body`), and whether it is all of it.
///
/// # Safety
/// As `take_bufs`.
pub unsafe fn start(r: *mut ngx_http_request_t, pipe: &BodyPipe) {
    let mut st = pipe.lock();
    // SAFETY: r is live, on the event loop, right after nginx started
    // reading its body unbuffered: what take_bufs needs.
    unsafe {
        take_bufs(r, &mut st);
        if (*r).reading_body() == 0 {
            st.eof = true;
        }
    }
}

/// Reads what the client has sent, unless the app is too far behind.
/// Returns an HTTP status when reading failed (the request must end with it).
///
/// # Safety
/// `r` is live, on the event loop, reading its body unbuffered.
pub unsafe fn read_more(r: *mut ngx_http_request_t, pipe: &BodyPipe) -> Option<ngx_int_t> {
    let mut failed = None;
    {
        let mut st = pipe.lock();
        loop {
            if st.eof || st.error.is_some() {
                break;
            }
            if st.buffered >= BODY_HIGH_WATER {
                st.paused = true;
                // The client is not slow: do not let it time out meanwhile.
                // SAFETY: r's connection and read event are live.
                unsafe {
                    let rev = (*(*r).connection).read;
                    if (*rev).timer_set() != 0 {
                        ngx::ffi::ngx_del_timer(rev);
                    }
                }
                break;
            }
            // SAFETY: r is live on the event loop and in unbuffered body
            // reading mode, which is when nginx allows this call.
            let rc = unsafe { ngx_http_read_unbuffered_request_body(r) };
            if rc == NGX_ERROR as ngx_int_t || rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
                st.error = Some(format!("reading the request body failed ({rc})"));
                failed = Some(rc);
                break;
            }
            // SAFETY: r is still live on the event loop, reading unbuffered.
            let got = unsafe { take_bufs(r, &mut st) };
            // SAFETY: reading a flag of the live request r on its event loop.
            if rc == NGX_OK as ngx_int_t || unsafe { (*r).reading_body() } == 0 {
                st.eof = true;
                break;
            }
            if !got {
                // Nothing more for now: nginx calls the read handler when
                // the client sends more.
                break;
            }
        }
    }
    pipe.more.notify_all();
    failed
}

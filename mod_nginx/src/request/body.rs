//! Request bodies that stream: nginx reads the body unbuffered (no temporary
//! file) and the event loop feeds each piece to the app's thread through
//! the core's `BodyPipe` (backpressure, reused buffers, the reader: see
//! `oxwsgi_core::request::body_pipe`). This file is the nginx side: nginx's body
//! reader, its buffer chain, and its read timer while the app catches up.

use ngx::ffi::{
    NGX_ERROR, NGX_HTTP_SPECIAL_RESPONSE, NGX_OK, ngx_chain_t,
    ngx_http_read_unbuffered_request_body, ngx_http_request_t, ngx_int_t,
};
use oxwsgi_core::request::body_pipe::{BodyPipe, Next};

use crate::output::channel::FailsWith;

/// The buffer nginx reads a request body through for an app unless
/// `wsgi_body_buffer_size` says otherwise. nginx's own default
/// (`client_body_buffer_size`, 8k) means a recv() per 8 KiB; apps read
/// uploads in 64 KiB pieces.
pub const DEFAULT_BODY_BUFFER: u64 = 64 << 10;

impl FailsWith for BodyPipe {
    /// The request went away: a waiting reader gets an error.
    fn fail(&self, why: &str) {
        BodyPipe::fail(self, why);
    }
}

/// Hands what nginx read to `take` and marks nginx's buffers consumed (so
/// it can reuse them for the next read).
///
/// # Safety
/// `r` is live, on the event loop, reading its body unbuffered.
pub unsafe fn take_bufs(r: *mut ngx_http_request_t, take: &mut dyn FnMut(&[u8])) -> bool {
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
                take(std::slice::from_raw_parts((*b).pos, len));
                got = true;
                (*b).pos = (*b).last;
            }
            cl = (*cl).next;
        }
        (*rb).bufs = std::ptr::null_mut();
    }
    got
}

/// Stops the client's body read timer while the app, not the client, is
/// behind: a client that is not slow must not time out meanwhile.
///
/// # Safety
/// `r` is live, on the event loop.
pub unsafe fn let_client_wait(r: *mut ngx_http_request_t) {
    // SAFETY: r's connection and read event are live (the contract).
    unsafe {
        let rev = (*(*r).connection).read;
        if (*rev).timer_set() != 0 {
            ngx::ffi::ngx_del_timer(rev);
        }
    }
}

/// Takes the part of the body nginx already has (right after
/// `ngx_http_read_client_request_body`), and whether it is all of it.
///
/// # Safety
/// As `take_bufs`.
pub unsafe fn start(r: *mut ngx_http_request_t, pipe: &BodyPipe) {
    let mut feed = pipe.feed();
    // SAFETY: r is live, on the event loop, right after nginx started
    // reading its body unbuffered: what take_bufs needs.
    unsafe {
        take_bufs(r, &mut |b| feed.push(b));
        if (*r).reading_body() == 0 {
            feed.end();
        }
    }
}

/// Reads what the client has sent, unless the app is too far behind.
/// Returns an HTTP status when reading failed (the request must end with it).
///
/// # Safety
/// `r` is live, on the event loop, reading its body unbuffered.
pub unsafe fn read_more(r: *mut ngx_http_request_t, pipe: &BodyPipe) -> Option<ngx_int_t> {
    let mut feed = pipe.feed();
    loop {
        match feed.next_step() {
            Next::Done => return None,
            Next::Paused => {
                // SAFETY: r is live (read_more's contract).
                unsafe { let_client_wait(r) };
                return None;
            }
            Next::Read => {}
        }
        // SAFETY: r is live on the event loop and in unbuffered body
        // reading mode, which is when nginx allows this call.
        let rc = unsafe { ngx_http_read_unbuffered_request_body(r) };
        if rc == NGX_ERROR as ngx_int_t || rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            feed.fail(&format!("reading the request body failed ({rc})"));
            return Some(rc);
        }
        // SAFETY: r is still live on the event loop, reading unbuffered.
        let got = unsafe { take_bufs(r, &mut |b| feed.push(b)) };
        // SAFETY: reading a flag of the live request r on its event loop.
        if rc == NGX_OK as ngx_int_t || unsafe { (*r).reading_body() } == 0 {
            feed.end();
            return None;
        }
        if !got {
            // Nothing more for now: nginx calls the read handler when the
            // client sends more.
            return None;
        }
    }
}

//! Where a request crosses from nginx towards Python: the content handler of
//! `wsgi_app` locations reads the body with nginx's reader, then hands a
//! snapshot of the request to the worker's Python threads.

use std::sync::Arc;

use ngx::ffi::{
    NGX_DONE, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE,
    NGX_HTTP_SPECIAL_RESPONSE, ngx_http_finalize_request, ngx_http_read_client_request_body,
    ngx_http_request_t, ngx_int_t,
};
use ngx::http::HttpModuleLocationConf;
use oxwsgi_core::{Body, guard};

use crate::Module;
use crate::embedded::worker::{self, Job};
use crate::output::ReqCtx;
use crate::output::channel::Channel;
use crate::output::msg::Msg;
use crate::request::NginxRequest;
use crate::request::body;
use oxwsgi_core::request::body_pipe::{BodyPipe, PipeReader};

/// The content handler of a `wsgi_app` location.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let failed = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    guard::entry("the content handler", failed, || {
        guard::failpoint("content_handler");
        // SAFETY: r is the live request of the content phase.
        let in_group = unsafe {
            Module::location_conf(ngx::http::Request::from_ngx_http_request(r))
                .is_some_and(|lc| lc.group.is_some())
        };
        if !in_group && !worker::ready() {
            log::error!(
                target: "oxwsgi",
                "Python is not running in this worker (its start failed: see the error log above)"
            );
            return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
        }
        // SAFETY: r is the live request nginx is running the content phase of.
        // Unbuffered: the app gets the body as it arrives (a group's daemon
        // as it asks), and a large one never goes through a temporary file.
        let rc = unsafe {
            (*r).set_request_body_no_buffering(1);
            read_body_with_our_buffer(
                r,
                if in_group {
                    group_body_ready
                } else {
                    body_ready
                },
            )
        };
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return rc;
        }
        NGX_DONE as ngx_int_t
    })
}

/// Starts nginx's body reader with a buffer of `wsgi_body_buffer_size`:
/// nginx sizes the buffer from the location's `client_body_buffer_size`
/// when reading starts (HTTP/1 and HTTP/2 alike), so that value is set for
/// the call and put back; for the location's other uses (and other
/// handlers) it means what nginx documents.
///
/// # Safety
/// `r` is the live request of the content phase, on the event loop.
unsafe fn read_body_with_our_buffer(
    r: *mut ngx_http_request_t,
    ready: unsafe extern "C" fn(*mut ngx_http_request_t),
) -> ngx_int_t {
    // SAFETY: r is the live request of the content phase, on the event
    // loop; the core location conf is the
    // request's, and nothing else reads it during this synchronous call on
    // the event loop thread (the only thread that touches configuration).
    unsafe {
        let req = ngx::http::Request::from_ngx_http_request(r);
        let ours = Module::location_conf(req);
        let core: *mut ngx::ffi::ngx_http_core_loc_conf_t =
            ngx::http::NgxHttpCoreModule::location_conf_mut(req)
                .map_or(std::ptr::null_mut(), |c| c as *mut _);
        let (Some(ours), false) = (ours, core.is_null()) else {
            return ngx_http_read_client_request_body(r, Some(ready));
        };
        let configured = (*core).client_body_buffer_size;
        (*core).client_body_buffer_size = ours.body_buffer();
        let rc = ngx_http_read_client_request_body(r, Some(ready));
        (*core).client_body_buffer_size = configured;
        rc
    }
}

/// The body is in (memory or a temporary file): queue the request.
unsafe extern "C" fn body_ready(r: *mut ngx_http_request_t) {
    let queued = guard::entry("the body handler", false, || {
        // SAFETY: nginx calls this on the event loop with the live request.
        unsafe { queue(r) }
    });
    if !queued {
        // SAFETY: nginx called body_ready with r, live on the event loop;
        // this finalises the reference read_client_request_body took.
        unsafe { ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t) };
    }
}

/// A `wsgi_process_group` request's body reader started: the exchange with the
/// group begins.
unsafe extern "C" fn group_body_ready(r: *mut ngx_http_request_t) {
    let started = guard::entry("the group body handler", false, || {
        // SAFETY: nginx calls this on the event loop with the live request,
        // reading its body unbuffered; the location's conf is its own.
        unsafe {
            let req = ngx::http::Request::from_ngx_http_request(r);
            let Some((app, group)) =
                Module::location_conf(req).and_then(|lc| Some((lc.app.clone()?, lc.group?)))
            else {
                return false;
            };
            crate::group::proxy::start(r, &app, group)
        }
    });
    if !started {
        // SAFETY: as in body_ready.
        unsafe { ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t) };
    }
}

/// # Safety
/// `r` is live, on the event loop, with its body read.
unsafe fn queue(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: r is live on the event loop with its body read (queue's
    // contract); the wrapper borrows it for this call only.
    let req = unsafe { ngx::http::Request::from_ngx_http_request(r) };
    let Some(app) = Module::location_conf(req).and_then(|lc| lc.app.clone()) else {
        return false;
    };
    let channel = Arc::new(Channel::new(&worker::NOTIFIER));
    // SAFETY: r is live; still in unbuffered mode means the body is still
    // arriving.
    let streaming = unsafe { (*r).request_body_no_buffering() } != 0;
    let pipe = streaming.then(|| Arc::new(BodyPipe::default()));
    if let Some(p) = &pipe {
        let _ = channel.body.set(p.clone());
    }
    let body = pipe.as_ref().map(|p| {
        // SAFETY: r is live on the event loop and reads its body
        // unbuffered (request_body_no_buffering is still set).
        unsafe { body::start(r, p) };
        // The app caught up after a pause: the event loop reads on.
        let ch = channel.clone();
        let resume = Box::new(move || {
            let _ = ch.send_control(Msg::ReadBody);
        });
        Body::Stream(Box::new(PipeReader::new(p.clone(), resume)))
    });
    // SAFETY: r and its connection are live on the event loop; the
    // snapshot copies what it keeps.
    let request = match unsafe { NginxRequest::snapshot(r, body) } {
        Ok(q) => q,
        Err(e) => {
            log::error!(target: "oxwsgi", "cannot read the request body back: {e}");
            return false;
        }
    };
    // SAFETY: r is live on the event loop thread, as attach requires.
    let Some(ctx) = (unsafe { ReqCtx::attach(r, channel.clone(), pipe, worker::draining) }) else {
        return false;
    };
    // SAFETY: r is live. While the body streams, nginx calls us when more
    // arrives; after that, a client that goes away while Python works is
    // noticed (nginx finalises with 499 and the channel closes).
    unsafe {
        (*r).read_event_handler = Some(if streaming {
            crate::output::on_body_readable
        } else {
            ngx::ffi::ngx_http_test_reading
        });
        (*r).write_event_handler = Some(ngx::ffi::ngx_http_request_empty_handler);
        // Read what is already waiting in the socket: with edge-triggered
        // events nginx is not told about it again. If that ended the request
        // (a bad body), nginx has answered: no app to run.
        if streaming && crate::output::read_body(&mut *ctx) {
            return true;
        }
    }
    worker::submit(Job {
        app,
        request,
        channel,
        queued_at: std::time::Instant::now(),
    })
}

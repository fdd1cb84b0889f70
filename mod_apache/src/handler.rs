//! The content handler: where a request crosses from Apache into Python
//! (embedded), or goes to its process group; the status and health pages.

use std::ffi::{CStr, c_int};

use oxwsgi_core::{Outcome, guard};

use crate::ffi::{self, request_rec};
use crate::{auth, child, conf, cstr, group, logging, request, route, sink, status, writer};

/// Asks the WSGIDispatchScript in force, if any, where request `r` runs;
/// `Err` is the status to answer when it failed (logged).
///
/// # Safety
/// `r` is the live request of the handler.
unsafe fn dispatch(r: *mut request_rec) -> Result<oxwsgi_core::auth_script::Dispatch, c_int> {
    // SAFETY: r is live (the contract).
    let Some((script, group)) = (unsafe { conf::dispatch_script(r) }) else {
        return Ok(Default::default());
    };
    if !child::python_running() {
        log::error!(
            target: "oxwsgi",
            "WSGIDispatchScript {script}: Python does not run in Apache's children \
             (WSGIRestrictEmbedded On?)"
        );
        return Err(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int);
    }
    // SAFETY: r is live, on its handler's thread (the contract).
    let vars = unsafe { auth::vars(r) };
    oxwsgi_core::auth_script::dispatch(&oxwsgi_core::auth_script::Asked {
        script: std::path::Path::new(script),
        group: &group,
        vars: &vars,
    })
    .ok_or(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int)
}

/// Where a request crosses from Apache into Python.
pub unsafe extern "C" fn handler(r: *mut request_rec) -> c_int {
    guard::entry(
        "the handler",
        ffi::HTTP_INTERNAL_SERVER_ERROR as c_int,
        || {
            guard::failpoint("handler");
            // SAFETY: Apache passes a live request on this thread.
            unsafe {
                if (*r).handler.is_null() {
                    return ffi::DECLINED as c_int;
                }
                let name = CStr::from_ptr((*r).handler);
                if let Some(rc) = page(r, name) {
                    return rc;
                }
                let c = conf::get();
                let (route, group) = match routed(r, name, &c) {
                    Ok(routed) => routed,
                    Err(rc) => return rc,
                };
                if group.is_none() && !child::python_running() {
                    log::error!(target: "oxwsgi", "Python is not running in this child (see the error log)");
                    return ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
                }
                let Some(app) = route::app_of(r, &c, &route) else {
                    return ffi::HTTP_NOT_FOUND as c_int;
                };
                match group {
                    Some(group) => group::proxy(r, &group, &app, &c, &route),
                    None => embedded(r, &app, &route),
                }
            }
        },
    )
}

/// The module's own pages: the status page and the health answers.
///
/// # Safety
/// `r` is the live request of the handler, `name` its handler's name.
unsafe fn page(r: *mut request_rec, name: &CStr) -> Option<c_int> {
    // SAFETY: r is live on this thread (the contract).
    unsafe {
        if name == status::HANDLER_NAME {
            return Some(status::respond(r));
        }
        let probe = if name == status::HEALTH_READY {
            oxwsgi_core::ops::health::Probe::Ready
        } else if name == status::HEALTH_LIVE {
            oxwsgi_core::ops::health::Probe::Live
        } else {
            return None;
        };
        Some(status::respond_health(
            r,
            probe,
            &route::failed_apps(&conf::get()),
        ))
    }
}

/// How request `r` reaches its app, and the process group that runs it
/// (`None`: embedded); `Err` is the status to answer (logged).
///
/// # Safety
/// `r` is the live request of the handler, `name` its handler's name.
unsafe fn routed<'c>(
    r: *mut request_rec,
    name: &CStr,
    c: &'c conf::Config,
) -> Result<(route::Route<'c>, Option<String>), c_int> {
    // SAFETY: r is live on this thread (the contract); its connection and
    // filename are Apache's for the request's life.
    unsafe {
        let handler = if name == route::HANDLER_NAME {
            None
        } else {
            // A handler name a WSGIHandlerScript in force defines.
            let found = conf::handler_script(r, c, &name.to_string_lossy());
            Some(found.ok_or(ffi::DECLINED as c_int)?)
        };
        let proto = (*r).proto_num.max(0) as u32;
        let multiplexed = !(*(*r).connection).master.is_null();
        if !oxwsgi_core::request::version_supported(proto / 1000, proto % 1000, multiplexed) {
            // Apache's own parser lets "HTTP/9.9" through (and any version
            // under HttpProtocolOptions Unsafe). A client that speaks
            // another protocol gets no second request either.
            (*(*r).connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
            return Err(ffi::HTTP_VERSION_NOT_SUPPORTED as c_int);
        }
        let inline = match handler {
            Some(h) => Some(&h.inline),
            None => route::inline_of(r, c),
        };
        // A script mapped by a handler (SetHandler, AddHandler: a tenant's
        // .htaccess can) runs only where the server's configuration allows
        // scripts, as with mod_wsgi; an alias is the configuration's own
        // word, and so is a handler script (only the server's
        // configuration defines one).
        if inline.is_none() && ffi::ap_allow_options(r) & ffi::OPT_EXECCGI as c_int == 0 {
            log::error!(
                target: "oxwsgi",
                "Options ExecCGI is off in this directory: {}",
                cstr::cstr_str((*r).filename)
            );
            return Err(ffi::HTTP_FORBIDDEN as c_int);
        }
        let route = route::Route {
            inline,
            handler,
            dispatched: dispatch(r)?,
        };
        // A dispatch script's choice wins, then an alias's process-group=,
        // then WSGIProcessGroup.
        let group = match (
            &route.dispatched.process_group,
            inline.and_then(|i| i.group()),
        ) {
            (Some(chosen), _) => conf::resolve_group(r, chosen),
            (None, Some(inline)) => inline.and_then(|g| conf::resolve_group(r, g)),
            (None, None) => conf::process_group_of(r),
        };
        if !conf::process_allowed(r, group) {
            log::error!(
                target: "oxwsgi",
                "Daemon process called '{}' cannot be accessed by this WSGI application \
                 as not a member of allowed groups (WSGIRestrictProcess)",
                group.unwrap_or("")
            );
            return Err(ffi::HTTP_INTERNAL_SERVER_ERROR as c_int);
        }
        let group = group.map(str::to_owned);
        Ok((route, group))
    }
}

/// Runs the app in this child's Python.
///
/// # Safety
/// `r` is the live request of the handler.
unsafe fn embedded(
    r: *mut request_rec,
    app: &std::sync::Arc<oxwsgi_core::App>,
    route: &route::Route<'_>,
) -> c_int {
    // SAFETY: r is live on this thread (the contract).
    let writer = unsafe { writer::WriteBehind::for_request(r) };
    // SAFETY: as above.
    let mut req = match unsafe { request::from_request_rec(r, &writer, None, route, app) } {
        Ok(q) => q,
        Err(status) => return status,
    };
    let (sink, status) = sink::ApacheSink::new(r, writer.clone());
    logging::enter(r, &writer);
    let outcome = oxwsgi_core::handle(app, &mut req, Box::new(sink));
    // The request is Apache's again only once the writer is done.
    let _ = writer.sync();
    log::debug!(target: "oxwsgi", "handler done: {outcome:?}, the writer finished");
    logging::leave();
    match outcome {
        Outcome::Error(_) => status.load(std::sync::atomic::Ordering::Relaxed) as c_int,
        _ => ffi::OK as c_int,
    }
}

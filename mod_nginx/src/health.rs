//! `wsgi_health live|ready;`: a location that answers load balancers'
//! and orchestrators' health checks (the core's `health`), and
//! `wsgi_drain_time TIME;`: on a graceful stop (`nginx -s quit`), each
//! worker first answers readiness 503 for that long, still serving
//! everything, then stops as nginx would have at once: a load balancer's
//! health check takes the host out before its connections close.
//!
//! nginx gives a module no hook before a graceful stop. The master tells
//! a worker to stop gracefully with a QUIT message on the worker's
//! channel (a socket pair), whose handler sets `ngx_quit`: a worker that
//! drains wraps that handler, takes the QUIT message itself, answers
//! readiness 503 for the drain time, then sets `ngx_quit` as nginx's
//! handler would have. When the master replaces this worker for a reload
//! (it started newer workers first) the message goes through at once:
//! readiness must not flap on every reload.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{
    NGX_HTTP_INTERNAL_SERVER_ERROR, ngx_command_t, ngx_conf_t, ngx_connection_t, ngx_cycle_t,
    ngx_event_t, ngx_http_request_t, ngx_int_t,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_conf_log_error;
use oxwsgi_core::guard;
use oxwsgi_core::ops::health::{self, Probe};

use crate::Module;
use crate::conf::LocConf;

/// `wsgi_health live|ready;`
pub unsafe extern "C" fn set_health(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry(
        "the wsgi_health directive",
        crate::DIRECTIVE_PANICKED,
        || {
            // SAFETY: cf is the configuration being parsed, with this TAKE1
            // directive's argument in cf->args.
            let (name, value) = unsafe { crate::conf::args(cf) };
            let Some(probe) = value.ok().as_deref().and_then(Probe::parse) else {
                ngx_conf_log_error!(
                    ngx::ffi::NGX_LOG_EMERG,
                    cf,
                    "\"{name}\": expected live (the server answers) or ready (its apps loaded, not draining)"
                );
                return NGX_CONF_ERROR;
            };
            // SAFETY: the command's conf offset is the location's, so nginx
            // passes this location's LocConf.
            unsafe { (*conf.cast::<LocConf>()).health = Some(probe) };
            // Readiness reads the groups' daemons from the metrics memory,
            // which then must exist, as for the status page.
            // SAFETY: cf is the configuration being parsed, in an http
            // block, whose main conf exists.
            if let Some(main) = unsafe { Module::main_conf_mut(&*cf) } {
                main.status = true;
            }
            // SAFETY: called by nginx inside a location: cf's context is that
            // location's, where the core module's conf exists.
            unsafe { crate::conf::answer_location_with(cf, handler) }
        },
    )
}

unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard::entry(
        "the health handler",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || {
            // SAFETY: nginx calls the content handler with a live request
            // on the event loop thread.
            unsafe { respond(r) }
        },
    )
}

/// # Safety
/// `r` is a live request on the event loop thread.
unsafe fn respond(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: r is live on the event loop (respond's contract).
    unsafe {
        if let Err(rc) = crate::output::page_request(r) {
            return rc;
        }
        let req = ngx::http::Request::from_ngx_http_request(r);
        let probe = Module::location_conf(req)
            .and_then(|c| c.health)
            .unwrap_or(Probe::Live);
        let main = Module::main_conf(req);
        let failed: Vec<String> = main
            .map(|m| {
                m.apps
                    .iter()
                    .filter(|a| a.load_failed())
                    .map(|a| a.name().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let down = match main
            .filter(|m| !m.groups.is_empty())
            .and_then(crate::status::region)
        {
            Some(region) => health::groups_down(&oxwsgi_core::ops::group_metrics::snapshot(region)),
            None => Vec::new(),
        };
        let blocked = health::not_ready(&failed, &down);
        let (status, body) = health::answer(probe, blocked.as_deref());
        crate::output::send_page(
            r,
            status,
            vec![
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body.as_bytes(),
        )
    }
}

/// nginx's handler of the worker's channel, and the drain (its length
/// and timer): set once per worker, for its life (leaked: nginx's timer
/// tree points into it). Event loop only.
struct Drain {
    time: Duration,
    channel_handler: Option<unsafe extern "C" fn(*mut ngx_event_t)>,
    timer: ngx_event_t,
    timer_conn: ngx_connection_t,
}

static DRAIN: AtomicPtr<Drain> = AtomicPtr::new(std::ptr::null_mut());

/// `ngx_channel_t`'s size (command, pid, slot, fd, padded): one message.
const CHANNEL_MESSAGE: usize = 32;

/// In a new worker: drains for `time` when a graceful stop comes. nginx
/// adds the worker's channel to its event loop only after the modules'
/// init_process: the handler is wrapped on the loop's first turn.
///
/// # Safety
/// On the worker's event loop thread, in init_process, with its cycle.
pub unsafe fn start(cycle: *mut ngx_cycle_t, time: Duration) {
    if time.is_zero() {
        return;
    }
    // SAFETY: a new allocation, leaked for the worker's life; its event
    // is armed on the worker's event loop (init_process runs there).
    unsafe {
        let drain = Box::into_raw(Box::new(Drain {
            time,
            channel_handler: None,
            timer: std::mem::zeroed(),
            timer_conn: std::mem::zeroed(),
        }));
        (*drain).timer_conn.fd = -1;
        (*drain).timer.data = (&raw mut (*drain).timer_conn).cast();
        (*drain).timer.handler = Some(wrap_channel);
        (*drain).timer.log = (*cycle).log;
        DRAIN.store(drain, Ordering::Release);
        ngx::ffi::ngx_add_timer(&mut (*drain).timer, 1);
    }
}

/// The loop's first turn: the channel's connection exists now.
unsafe extern "C" fn wrap_channel(_: *mut ngx_event_t) {
    guard::entry("watching the worker's channel", (), || {
        let drain = DRAIN.load(Ordering::Acquire);
        // SAFETY: on the event loop; DRAIN lives for the worker's life;
        // ngx_cycle's connections are its array of connection_n entries,
        // the channel's among them (fd == ngx_channel) with nginx's
        // handler set.
        unsafe {
            let cycle = ngx::ffi::ngx_cycle;
            let fd = ngx::ffi::ngx_channel;
            let d = &mut *drain;
            d.timer.handler = Some(on_drained);
            for i in 0..(*cycle).connection_n {
                let c = (*cycle).connections.add(i);
                if (*c).fd != fd || (*c).read.is_null() {
                    continue;
                }
                if let Some(h) = (*(*c).read).handler {
                    d.channel_handler = Some(h);
                    (*(*c).read).handler = Some(on_channel);
                    return;
                }
            }
            log::warn!(target: "oxwsgi", "wsgi_drain_time: the worker's channel was not found; this worker stops without draining");
        }
    })
}

/// The master wrote on the worker's channel: a QUIT for a stop begins the
/// drain; everything else is nginx's.
unsafe extern "C" fn on_channel(ev: *mut ngx_event_t) {
    let drain = DRAIN.load(Ordering::Acquire);
    if drain.is_null() {
        return;
    }
    guard::entry("the worker's channel", (), || {
        // SAFETY: nginx calls this with the channel's read event, whose
        // data is its connection, on the event loop; DRAIN lives for the
        // worker's life.
        unsafe {
            let c = (*ev).data.cast::<ngx_connection_t>();
            let d = &mut *drain;
            let Some(channel_handler) = d.channel_handler else {
                return;
            };
            if (*ev).timedout() == 0 && !health::draining() && next_is_quit((*c).fd) {
                if replaced_by_newer_workers() {
                    // A reload: nginx's handler takes the QUIT at once.
                } else {
                    let mut msg = [0u8; CHANNEL_MESSAGE];
                    libc::recv((*c).fd, msg.as_mut_ptr().cast(), msg.len(), 0);
                    health::start_draining();
                    log::info!(
                        target: "oxwsgi",
                        "graceful stop: readiness answers 503 for {:?} (wsgi_drain_time), then this worker stops",
                        d.time
                    );
                    ngx::ffi::ngx_add_timer(
                        &mut d.timer,
                        d.time.as_millis() as ngx::ffi::ngx_msec_t,
                    );
                }
            }
            // What else waits (nginx reads until the socket is empty: the
            // event is edge-triggered).
            channel_handler(ev);
        }
    })
}

/// Whether the next message on the channel is a QUIT (peeked: left there).
fn next_is_quit(fd: i32) -> bool {
    let mut command = [0u8; 8];
    // SAFETY: peeks 8 bytes into a live local from the channel socket; no
    // control buffer, so a descriptor a message carries stays with it.
    let n = unsafe {
        libc::recv(
            fd,
            command.as_mut_ptr().cast(),
            command.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 8 && u64::from_ne_bytes(command) == u64::from(ngx::ffi::NGX_CMD_QUIT)
}

/// The drain is over: the graceful stop nginx was asked for.
unsafe extern "C" fn on_drained(_: *mut ngx_event_t) {
    guard::entry("the end of a drain", (), || {
        // SAFETY: on the event loop, as nginx's channel handler sets it;
        // the worker's cycle looks at it when this turn of the loop ends.
        unsafe { ngx::ffi::ngx_quit = 1 };
    })
}

/// How much later than this worker another must have started to be of a
/// newer generation: the master forks the workers of one configuration in
/// a loop, within a tick or two of each other (ticks are 10 ms); a reload
/// comes later than 100 ms after a start.
const GENERATION_TICKS: u64 = 10;

/// Whether the master started processes well after this one: on a reload
/// it starts the new configuration's workers (and groups' manager) before
/// it stops the old ones; on a stop it starts none. Any child of the master
/// counts, whatever its title: a worker just forked still bears the
/// master's until it sets its own.
fn replaced_by_newer_workers() -> bool {
    let me = std::process::id() as i32;
    let master = std::os::unix::process::parent_id() as i32;
    let Some((_, mine)) = parent_and_start(me) else {
        return false;
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != me)
        .filter_map(parent_and_start)
        .any(|(parent, start)| parent == master && start > mine + GENERATION_TICKS)
}

/// A process's parent and when it started (clock ticks since boot), from
/// one read of /proc/PID/stat (the fields after the command's closing
/// parenthesis: state, ppid, ... starttime is the 20th).
fn parent_and_start(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

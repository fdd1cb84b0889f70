//! ngx_http_oxwsgi_module: WSGI apps served inside nginx, on oxwsgi-core.
//!
//! Python never runs on the event loop. A request travels like this:
//!
//! ```text
//! directives -> conf           the wsgi_* directives, checked at nginx -t
//! handler                      the content handler: snapshots the request
//!   |                          (request/, its body through request::body)
//!   +-> embedded/worker        a Python thread of this worker runs the app
//!   +-> group/proxy            or the group's daemon does, over a pooled
//!   |                          connection (group/pool); group/master starts
//!   |                          the groups' manager in nginx's master
//!   v
//! output/                      what comes back (output::channel, msg) into
//!                              nginx's header and body filters
//! status, health               the metrics zone and wsgi_status; wsgi_health
//!                              and the drain before a graceful stop
//! log                          the `log` facade onto nginx's error log
//! ```
//!
//! Dependencies point one way (build/circles.py): `directives` and this
//! file on top, then `handler`, the two paths (`embedded`, `group`),
//! `output`, `request`, and `conf` below the parts that read it.

// In the unit-test build the entry points the server calls are not exported
// (nothing there could resolve the server's symbols), so they are unused.
#![cfg_attr(test, allow(dead_code))]

mod conf;
mod directives;
mod embedded;
mod group;
mod handler;
mod health;
mod log;
mod output;
mod request;
mod status;

use std::ptr;

use ngx::ffi::{NGX_HTTP_MODULE, ngx_cycle_t, ngx_http_module_t, ngx_int_t, ngx_module_t};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};
use oxwsgi_core::guard;

pub(crate) struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is only written by nginx while loading
        // configuration, on the main thread, never concurrently with this read.
        unsafe { &*ptr::addr_of!(ngx_http_oxwsgi_module) }
    }
}

impl Module {
    pub(crate) fn module_ref() -> &'static ngx_module_t {
        <Module as HttpModule>::module()
    }
}

// SAFETY: the location configuration of this module is a `conf::LocConf`,
// created by `create_loc_conf` below.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = conf::LocConf;
}

// SAFETY: the main configuration of this module is a `conf::MainConf`,
// created by `create_main_conf` below.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = conf::MainConf;
}

static NGX_HTTP_OXWSGI_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: Some(postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: Some(conf::init_main_conf),
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(conf::merge_loc_conf),
};

// The exported tables are the roots from which the linker keeps everything
// that calls into nginx; the unit-test executable has no nginx to resolve
// those calls against, so there they are left out and only the code a test
// reaches is linked.
#[cfg(not(test))]
ngx::ngx_modules!(ngx_http_oxwsgi_module);

#[cfg_attr(not(test), used)]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_oxwsgi_module: ngx_module_t = ngx_module_t {
    ctx: &raw const NGX_HTTP_OXWSGI_MODULE_CTX as _,
    // SAFETY: taking the address of the command table; nginx reads it.
    commands: unsafe { &raw mut directives::COMMANDS[0] },
    type_: NGX_HTTP_MODULE as _,
    init_module: Some(init_module),
    init_process: Some(init_process),
    exit_process: Some(exit_process),
    ..ngx_module_t::default()
};

/// What a directive handler returns after a panic: nginx prints it after
/// the directive's name (the panic's own message went to stderr, and to the
/// error log once a worker runs).
pub(crate) const DIRECTIVE_PANICKED: *mut std::ffi::c_char =
    c"internal error (panic) in oxwsgi".as_ptr().cast_mut();

/// After the whole http block is read (apps built): the metrics zone, when
/// anything here uses oxwsgi.
unsafe extern "C" fn postconfiguration(cf: *mut ngx::ffi::ngx_conf_t) -> ngx::ffi::ngx_int_t {
    guard::entry(
        "the configuration's end",
        ngx::ffi::NGX_ERROR as ngx::ffi::ngx_int_t,
        || {
            // SAFETY: nginx calls postconfiguration with the configuration of
            // the http block just read, whose main conf exists.
            let Some(main) = (unsafe { Module::main_conf_mut(&*cf) }) else {
                return ngx::ffi::NGX_ERROR as ngx::ffi::ngx_int_t;
            };
            if main.apps.is_empty() && !main.status {
                return ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t;
            }
            // SAFETY: cf is the configuration being read, in its http block.
            match unsafe { status::add_zone(cf, main) } {
                Ok(()) => ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t,
                Err(()) => ngx::ffi::NGX_ERROR as ngx::ffi::ngx_int_t,
            }
        },
    )
}

/// A configuration is loaded (in the master): its process groups start.
unsafe extern "C" fn init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    guard::entry(
        "loading the configuration",
        ngx::ffi::NGX_ERROR as ngx_int_t,
        || {
            // SAFETY: nginx passes the cycle it initialises, in the master;
            // its main conf exists when the http block does.
            let metrics = unsafe { Module::main_conf(&*cycle) }.and_then(status::region);
            // SAFETY: as above.
            match unsafe { group::master::start(cycle, metrics) } {
                Ok(()) => ngx::ffi::NGX_OK as ngx_int_t,
                Err(e) => {
                    // SAFETY: the cycle's log is valid while it is initialised.
                    let log = unsafe { (*cycle).log };
                    ngx::ngx_log_error!(ngx::ffi::NGX_LOG_EMERG, log, "oxwsgi: {e}");
                    ngx::ffi::NGX_ERROR as ngx_int_t
                }
            }
        },
    )
}

/// A worker process starts: Python starts here, never in the master.
unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // Only the master holds the groups' lifeline.
    group::master::forget_in_worker();
    // A worker without Python still serves everything else; WSGI locations
    // answer 503 and the error log says why.
    guard::entry("worker start", (), || {
        // SAFETY: nginx passes the new cycle of this worker.
        unsafe {
            // Group requests log too, in workers that run no Python.
            log::install();
            group::pool::start(cycle);
            if let Some(m) = Module::main_conf(&*cycle) {
                health::start(cycle, m.drain_time.flatten().unwrap_or_default());
            }
            embedded::worker::start(cycle)
        }
    });
    ngx::ffi::NGX_OK as ngx_int_t
}

/// A worker process exits: stop the Python threads, then finalise Python.
unsafe extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    guard::entry("worker exit", (), || {
        group::pool::close_all();
        // SAFETY: nginx passes the cycle of this exiting worker.
        unsafe { embedded::worker::stop(cycle) }
    })
}

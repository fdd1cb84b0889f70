//! A child process: Python starts in it (never in the parent), with the
//! apps it preloads, and stops when the child exits.

use std::ffi::c_int;
use std::ptr;
use std::sync::OnceLock;

use oxwsgi_core::Interpreter;
use oxwsgi_core::guard;
use oxwsgi_core::sync::Recover;

use crate::ffi::{self, apr_pool_t, server_rec};
use crate::{conf, group, logging, route, status};

/// Whether Python runs in this child (its apps, and the auth scripts, may
/// be called).
pub fn python_running() -> bool {
    PYTHON_STARTED.get() == Some(&true)
}

/// The interpreter of this child process; shut down when the child exits.
static PYTHON: std::sync::Mutex<Option<Interpreter>> = std::sync::Mutex::new(None);
static PYTHON_STARTED: OnceLock<bool> = OnceLock::new();

unsafe extern "C" fn child_exit(_: *mut std::ffi::c_void) -> ffi::apr_status_t {
    guard::entry("child exit", 0, || {
        let taken = PYTHON.lock().recover().take();
        if let Some(i) = taken {
            i.shutdown();
        }
        0
    })
}

/// A child process starts: Python starts here, never in the parent.
pub unsafe extern "C" fn child_init(pool: *mut apr_pool_t, s: *mut server_rec) {
    guard::entry("child_init", (), || {
        group::forget_groups_in_child();
        let c = conf::get();
        // SetHandler wsgi-script can appear anywhere: Python starts in every
        // child of a server that loads the module.
        // SAFETY: Apache passes the live main server to child_init.
        logging::install_logger(unsafe { logging::logs_debug(s) });
        if c.restrict_embedded {
            log::info!(target: "oxwsgi", "WSGIRestrictEmbedded On: this child runs no Python");
            let _ = PYTHON_STARTED.set(false);
            return;
        }
        offer_mod_wsgi();
        let started = start_python(&c);
        let ok = started.is_some();
        *PYTHON.lock().recover() = started;
        // SAFETY: Apache passes the live main server to child_init.
        if let Some(region) = unsafe { status::region(s) } {
            let threads = mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1);
            oxwsgi_core::ops::metrics::attach(region, threads as usize, None);
        }
        let _ = PYTHON_STARTED.set(ok);
        if ok {
            // SAFETY: the child's pool outlives every request; its cleanup
            // runs on the child's main thread after the workers stopped.
            unsafe {
                ffi::apr_pool_cleanup_register(
                    pool,
                    ptr::null(),
                    Some(child_exit),
                    Some(ffi::apr_pool_cleanup_null),
                );
            }
        }
    })
}

/// What Apache's MPM says of `what` (an `AP_MPMQ_*`).
pub fn mpm_query(what: u32) -> c_int {
    let mut v: c_int = 0;
    // SAFETY: ap_mpm_query writes one int.
    unsafe { ffi::ap_mpm_query(what as c_int, &mut v) };
    v
}

/// `import mod_wsgi` in this child, with the counts mod_wsgi gives: the
/// process slots used so far (else the most there may be), the threads of
/// a child.
fn offer_mod_wsgi() {
    let processes = match mpm_query(ffi::AP_MPMQ_MAX_DAEMON_USED) {
        -1 => mpm_query(ffi::AP_MPMQ_MAX_DAEMONS),
        n => n,
    };
    let positive = |n: c_int| usize::try_from(n).unwrap_or(1).max(1);
    oxwsgi_core::python::interpreter::offer_mod_wsgi(oxwsgi_core::python::interpreter::ModWsgi {
        process_group: String::new(),
        maximum_processes: positive(processes),
        threads_per_process: positive(mpm_query(ffi::AP_MPMQ_MAX_THREADS)),
    });
}

/// This child's Python, with the apps it preloads; `None` (logged) if it
/// cannot start.
fn start_python(c: &conf::Config) -> Option<Interpreter> {
    // WSGIImportScript's scripts load with the aliases' apps.
    let imports: Vec<_> = c
        .imports
        .iter()
        .filter(|i| i.group.is_none())
        .filter_map(|i| route::import_app(c, i))
        .collect();
    // As mod_wsgi, a child preloads the aliases that say where they run:
    // `process-group=%{GLOBAL}` with an `application-group=` that does not
    // depend on the request. Others load on first use, in the interpreter
    // their request names (%{RESOURCE} by default): loading them ahead
    // into another would run them twice.
    let apps = c
        .aliases
        .iter()
        .filter(|a| {
            a.inline.group() == Some(None)
                && a.inline
                    .application_group
                    .as_deref()
                    .and_then(conf::fixed_application_group)
                    .is_some()
        })
        .filter_map(|a| a.app.as_deref());
    Interpreter::start_in_worker(
        c.python_home.clone(),
        c.python_path.clone(),
        apps.chain(imports.iter().map(|a| &**a)),
    )
    .map_err(|e| log::error!(target: "oxwsgi", "{e}"))
    .ok()
}

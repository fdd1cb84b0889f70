//! mod_oxwsgi: WSGI apps inside Apache httpd 2.4, on oxwsgi-core, with
//! mod_wsgi's directive names.
//!
//! - `ffi`: httpd/APR bindings (bindgen) and the C shim (directive table,
//!   logging with the module index, the module's per-directory config);
//!   `cstr`: Apache's C strings as Rust bytes and text;
//! - `conf`: the directives and the configuration they build;
//! - `route`: translate_name (WSGIScriptAlias, WSGIScriptAliasMatch) and
//!   finding a request's app (the apps made on first use are kept there);
//! - `handler`: the content handler, where a request crosses into Python
//!   or goes to its process group; `child`: Python in a child process;
//! - `request`: a `request_rec` seen as the core's `Request`, with its body
//!   read through Apache's input filters;
//! - `sink`: the core's `ResponseSink` onto Apache's output filters;
//!   `writer`: streamed chunks sent by a writer thread while the app goes on;
//! - `group`: daemon mode: the process groups the parent runs, and the
//!   requests children proxy to them;
//! - `auth`: the `wsgi` and `wsgi-group` auth providers (auth scripts);
//! - `status`: the metrics' shared memory, the `wsgi-status` page and the
//!   health answers; `drain`: `WSGIDrainTime` (readiness 503 before a
//!   graceful stop); `logging`: the `log` facade onto the error log;
//! - this file: the module record and the hooks the parent runs.
//!
//! Dependencies run one way (build/circles.py checks), each module on
//! those after it: this file, `handler`, `auth`, `child`, `group`,
//! `request`, `route`, `conf`, `sink`, `logging`, `writer`, `status`, and
//! `ffi`, `cstr` at the bottom.
//!
//! Apache request threads call into Python directly (no hand-off): the core
//! holds the GIL only while Python runs.

// In the unit-test build the entry points the server calls are not exported
// (nothing there could resolve the server's symbols), so they are unused.
#![cfg_attr(test, allow(dead_code))]

mod auth;
mod child;
mod conf;
mod cstr;
mod drain;
mod ffi;
mod group;
mod handler;
mod logging;
mod request;
mod route;
mod sink;
mod status;
mod writer;

use std::ffi::c_int;
use std::ptr;

use oxwsgi_core::guard;

use crate::ffi::{apr_pool_t, module_struct, server_rec};

#[cfg_attr(not(test), unsafe(no_mangle))]
#[allow(non_upper_case_globals)]
pub static mut wsgi_module: module_struct = module_struct {
    version: ffi::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    // mod_wsgi's names, so `<IfModule mod_wsgi.c>` and `<IfModule
    // wsgi_module>` blocks apply (the package conflicts with mod_wsgi).
    name: c"mod_wsgi.c".as_ptr(),
    dynamic_load_handle: ptr::null_mut(),
    next: ptr::null_mut(),
    magic: ffi::MODULE_MAGIC_COOKIE as _,
    rewrite_args: None,
    create_dir_config: Some(conf::create_dir_config),
    merge_dir_config: Some(conf::merge_dir_config),
    create_server_config: None,
    merge_server_config: None,
    // SAFETY: the address of the shim's directive table, which Apache reads.
    cmds: &raw const ffi::oxwsgi_cmds,
    register_hooks: Some(register_hooks),
    flags: 0,
};

unsafe extern "C" fn register_hooks(p: *mut apr_pool_t) {
    guard::entry("register_hooks", (), || {
        // SAFETY: registering our hooks while Apache loads the module, on its
        // main thread; the hook functions are 'static.
        unsafe { register() };
        // SAFETY: p is the pool Apache passes to register_hooks; the
        // providers are static data of the shim.
        unsafe { ffi::oxwsgi_register_auth_providers(p) };
    })
}

/// # Safety
/// Called from register_hooks only, while Apache loads the module.
unsafe fn register() {
    // SAFETY: Apache is loading this module on its main thread (register's
    // contract), when the hook registration functions may be called; the
    // hook functions are 'static.
    unsafe {
        ffi::ap_hook_pre_config(
            Some(pre_config),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_check_config(
            Some(check_config),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_post_config(
            Some(post_config),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_monitor(
            Some(group::monitor),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_child_status(
            Some(child_status),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_child_init(
            Some(child::child_init),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_translate_name(
            Some(route::translate_name),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_FIRST as c_int,
        );
        ffi::ap_hook_access_checker(
            Some(auth::access_checker),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_handler(
            Some(handler::handler),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
    }
}

/// Apache reads its configuration twice: start each pass afresh.
unsafe extern "C" fn pre_config(
    _: *mut apr_pool_t,
    _: *mut apr_pool_t,
    _: *mut apr_pool_t,
) -> c_int {
    guard::entry("pre_config", ffi::OK as c_int, || {
        conf::reset();
        ffi::OK as c_int
    })
}

/// The configuration is read (also for `apache2ctl -t`): what one
/// directive cannot check alone, since another may come later in the file.
unsafe extern "C" fn check_config(
    _: *mut apr_pool_t,
    _: *mut apr_pool_t,
    _: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guard::entry(
        "check_config",
        ffi::HTTP_INTERNAL_SERVER_ERROR as c_int,
        // SAFETY: Apache passes the main server of the configuration read.
        || match unsafe { conf::get().check(s) }.and_then(|()| {
            // SAFETY: geteuid has no preconditions; Apache's User is read
            // by now (mod_unixd, at configuration).
            let workers = unsafe { (libc::geteuid() == 0).then_some(ffi::ap_unixd_config.user_id) };
            let c = conf::get();
            c.daemons.iter().try_for_each(|(name, o)| {
                let mut o = o.clone();
                let checked = (|| {
                    if workers.is_some() && o.user.is_none() {
                        // As the daemons will: Apache's User.
                        // SAFETY: Apache's static unixd configuration, read
                        // by now.
                        let user = unsafe { cstr::cstr_str(ffi::ap_unixd_config.user_name) };
                        o.add(name, &format!("user={user}"))?;
                    }
                    o.check_isolation(workers)?;
                    o.check_reach(&c.scripts_of_group(name))
                })();
                checked.map_err(|e| format!("WSGIDaemonProcess {name}: {e}"))
            })
        }) {
            Ok(()) => {
                if let Some(w) = conf::get().socket_place_warning() {
                    eprintln!("oxwsgi: warning: {w}");
                }
                ffi::OK as c_int
            }
            Err(e) => {
                eprintln!("oxwsgi: {e}");
                ffi::HTTP_INTERNAL_SERVER_ERROR as c_int
            }
        },
    )
}

/// The configuration is complete: build the apps (in the parent, before
/// any child forks; Python starts only in the children).
unsafe extern "C" fn post_config(
    pconf: *mut apr_pool_t,
    _: *mut apr_pool_t,
    _: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guard::entry(
        "post_config",
        ffi::HTTP_INTERNAL_SERVER_ERROR as c_int,
        || {
            let supported = |what| child::mpm_query(what) != ffi::AP_MPMQ_NOT_SUPPORTED as c_int;
            let threaded = supported(ffi::AP_MPMQ_IS_THREADED);
            let forked = supported(ffi::AP_MPMQ_IS_FORKED);
            // SAFETY: Apache passes the main server to post_config, in the
            // parent.
            let metrics = unsafe { status::create(s) };
            let built = metrics.and_then(|()| conf::build_apps(threaded, forked));
            // Every Python of this server (the children's, the daemons')
            // starts with them; children and daemons inherit it.
            oxwsgi_core::python::interpreter::set_python_settings(conf::get().python.clone());
            // SAFETY: the main server, in the parent.
            let region = unsafe { status::region(s) };
            drain::prepare(conf::get().drain_time, region);
            // SAFETY: post_config's own configuration pool and main server,
            // in the parent (the metrics, made just above, are inherited by
            // the daemons the parent forks).
            match built.and_then(|()| unsafe { group::start(pconf, s, region) }) {
                Ok(()) => ffi::OK as c_int,
                Err(e) => {
                    eprintln!("oxwsgi: {e}");
                    ffi::HTTP_INTERNAL_SERVER_ERROR as c_int
                }
            }
        },
    )
}

/// The parent started (or lost) a child: the MPM has set its signal
/// handlers for this generation by now, so the drain's goes in front.
unsafe extern "C" fn child_status(
    _: *mut server_rec,
    _: ffi::pid_t,
    _: ffi::ap_generation_t,
    _: c_int,
    state: ffi::mpm_child_status,
) {
    guard::entry("the child_status hook", (), || {
        if state == ffi::mpm_child_status_MPM_CHILD_STARTED {
            drain::interpose();
        }
    })
}

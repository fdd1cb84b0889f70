//! mod_oxwsgi: WSGI apps inside Apache httpd 2.4, on oxwsgi-core, with
//! mod_wsgi's directive names.
//!
//! - `ffi`: httpd/APR bindings (bindgen) and the C shim (directive table,
//!   logging with the module index);
//! - `conf`: the directives and the configuration they build;
//! - `request`: a `request_rec` seen as the core's `Request`, with its body
//!   read through Apache's input filters;
//! - `status`: the metrics' shared memory and the `wsgi-status` handler;
//! - `auth`: the `wsgi` and `wsgi-group` auth providers (auth scripts);
//! - `daemon`: daemon mode: the process groups the parent runs, and the
//!   requests children hand to them;
//! - `drain`: `WSGIDrainTime`: readiness 503 before a graceful stop (the
//!   parent's handler in front of the MPM's signal);
//! - `sink`: the core's `ResponseSink` onto Apache's output filters;
//!   `writer`: streamed chunks sent by a writer thread while the app goes on;
//! - this file: the module record, the hooks (translate_name maps
//!   WSGIScriptAlias, the handler crosses into Python, child_init starts it).
//!
//! Apache request threads call into Python directly (no hand-off): the core
//! holds the GIL only while Python runs.

// In the unit-test build the entry points the server calls are not exported
// (nothing there could resolve the server's symbols), so they are unused.
#![cfg_attr(test, allow(dead_code))]

mod auth;
mod conf;
mod daemon;
mod drain;
mod ffi;
mod request;
mod sink;
mod status;
mod writer;

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;
use std::sync::OnceLock;

use oxwsgi_core::sync::Recover;
use oxwsgi_core::{Interpreter, Outcome, guard};

use crate::ffi::{apr_pool_t, module_struct, request_rec, server_rec};

const HANDLER_NAME: &CStr = c"wsgi-script";

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
            Some(daemon::monitor),
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
            Some(child_init),
            ptr::null(),
            ptr::null(),
            ffi::APR_HOOK_MIDDLE as c_int,
        );
        ffi::ap_hook_translate_name(
            Some(translate_name),
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
            Some(handler),
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
                        let user = unsafe { cstr_str(ffi::ap_unixd_config.user_name) };
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
            let query = |what: u32| {
                let mut v: c_int = 0;
                // SAFETY: ap_mpm_query writes one int.
                unsafe { ffi::ap_mpm_query(what as c_int, &mut v) };
                v
            };
            let threaded = query(ffi::AP_MPMQ_IS_THREADED) != ffi::AP_MPMQ_NOT_SUPPORTED as c_int;
            let forked = query(ffi::AP_MPMQ_IS_FORKED) != ffi::AP_MPMQ_NOT_SUPPORTED as c_int;
            // SAFETY: Apache passes the main server to post_config, in the
            // parent.
            let metrics = unsafe { status::create(s) };
            let built = metrics.and_then(|()| conf::build_apps(threaded, forked));
            // Every Python of this server (the children's, the daemons')
            // starts with them; children and daemons inherit it.
            oxwsgi_core::interpreter::set_python_settings(conf::get().python.clone());
            // SAFETY: the main server, in the parent.
            let region = unsafe { status::region(s) };
            drain::prepare(conf::get().drain_time, region);
            // SAFETY: post_config's own configuration pool and main server,
            // in the parent (the metrics, made just above, are inherited by
            // the daemons the parent forks).
            match built.and_then(|()| unsafe { daemon::start(pconf, s, region) }) {
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

/// Whether Python runs in this child (its apps, and the auth scripts, may
/// be called).
pub(crate) fn python_running() -> bool {
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
unsafe extern "C" fn child_init(pool: *mut apr_pool_t, s: *mut server_rec) {
    guard::entry("child_init", (), || {
        daemon::forget_groups_in_child();
        let c = conf::get();
        // SetHandler wsgi-script can appear anywhere: Python starts in every
        // child of a server that loads the module.
        // SAFETY: Apache passes the live main server to child_init.
        install_logger(unsafe { logs_debug(s) });
        if c.restrict_embedded {
            log::info!(target: "oxwsgi", "WSGIRestrictEmbedded On: this child runs no Python");
            let _ = PYTHON_STARTED.set(false);
            return;
        }
        // WSGIImportScript's scripts load with the aliases' apps.
        let imports: Vec<_> = c
            .imports
            .iter()
            .filter(|i| i.group.is_none())
            .filter_map(|i| import_app(&c, i))
            .collect();
        // As mod_wsgi, a child preloads the aliases that say where they run:
        // `process-group=%{GLOBAL}` with an `application-group=` that does
        // not depend on the request. Others load on first use, in the
        // interpreter their request names (%{RESOURCE} by default):
        // loading them ahead into another would run them twice.
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
        let query = |what: u32| {
            let mut v: c_int = 0;
            // SAFETY: ap_mpm_query writes one int.
            unsafe { ffi::ap_mpm_query(what as c_int, &mut v) };
            v
        };
        // As mod_wsgi counts them: the process slots used so far (else
        // the most there may be), the threads of a child.
        let processes = match query(ffi::AP_MPMQ_MAX_DAEMON_USED) {
            -1 => query(ffi::AP_MPMQ_MAX_DAEMONS),
            n => n,
        };
        let positive = |n: c_int| usize::try_from(n).unwrap_or(1).max(1);
        oxwsgi_core::interpreter::offer_mod_wsgi(oxwsgi_core::interpreter::ModWsgi {
            process_group: String::new(),
            maximum_processes: positive(processes),
            threads_per_process: positive(query(ffi::AP_MPMQ_MAX_THREADS)),
        });
        let started = match Interpreter::start_in_worker(
            c.python_home.clone(),
            c.python_path.clone(),
            apps.chain(imports.iter().map(|a| &**a)),
        ) {
            Ok(i) => Some(i),
            Err(e) => {
                log::error!(target: "oxwsgi", "{e}");
                None
            }
        };
        let ok = started.is_some();
        *PYTHON.lock().recover() = started;
        // SAFETY: Apache passes the live main server to child_init.
        if let Some(region) = unsafe { status::region(s) } {
            let mut threads: c_int = 1;
            // SAFETY: ap_mpm_query writes one int.
            unsafe { ffi::ap_mpm_query(ffi::AP_MPMQ_MAX_THREADS as c_int, &mut threads) };
            oxwsgi_core::metrics::attach(region, threads.max(1) as usize, None);
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

/// Maps a WSGIScriptAlias'ed URL to its app.
unsafe extern "C" fn translate_name(r: *mut request_rec) -> c_int {
    guard::entry("translate_name", ffi::DECLINED as c_int, || {
        // SAFETY: Apache passes a live request; r->uri is a C string.
        let uri = unsafe { cstr_bytes((*r).uri) };
        let c = conf::get();
        // SAFETY: r is the live request Apache passed; r->server is its
        // (virtual) server.
        let scope = c.scope(unsafe { conf::server_key((*r).server) });
        let Some(index) = c.alias_for(scope, uri) else {
            // SAFETY: r is the live request of this translate_name call.
            return unsafe { translate_match(r, &c, scope) };
        };
        // SAFETY: r is the live request of this hook, used by this thread
        // only; the handler name is static and the alias index is
        // kept in the request's notes for the handler.
        unsafe {
            (*r).handler = HANDLER_NAME.as_ptr();
            let key = c"oxwsgi-alias";
            let value = CString::new(index.to_string()).expect("digits");
            ffi::apr_table_setn(
                (*r).notes,
                key.as_ptr(),
                ffi::apr_pstrdup((*r).pool, value.as_ptr()),
            );
            let script =
                CString::new(conf::get().aliases[index].script.as_str()).unwrap_or_default();
            (*r).filename = ffi::apr_pstrdup((*r).pool, script.as_ptr());
        }
        ffi::OK as c_int
    })
}

/// WSGIScriptAliasMatch: the script path comes from the regex's groups and
/// SCRIPT_NAME is the part of the URL the regex matched.
///
/// # Safety
/// `r` is the live request of translate_name.
unsafe fn translate_match(r: *mut request_rec, c: &conf::Config, scope: usize) -> c_int {
    for (index, m) in c
        .matches
        .iter()
        .enumerate()
        .filter(|(_, m)| m.server == scope)
    {
        let mut groups = [ffi::ap_regmatch_t {
            rm_so: -1,
            rm_eo: -1,
        }; 10];
        // SAFETY: r->uri is a C string; groups has room for 10 matches; the
        // substitution is allocated in the request pool.
        unsafe {
            if ffi::ap_regexec(m.regex.0, (*r).uri, groups.len(), groups.as_mut_ptr(), 0) != 0 {
                continue;
            }
            let script = ffi::ap_pregsub(
                (*r).pool,
                m.replacement.as_ptr(),
                (*r).uri,
                groups.len(),
                groups.as_mut_ptr(),
            );
            if script.is_null() {
                continue;
            }
            let end = groups[0].rm_eo.max(0) as usize;
            let mount = ffi::apr_pstrmemdup((*r).pool, (*r).uri, end);
            ffi::apr_table_setn((*r).notes, c"oxwsgi-mount".as_ptr(), mount);
            let value = CString::new(index.to_string()).expect("digits");
            ffi::apr_table_setn(
                (*r).notes,
                c"oxwsgi-match".as_ptr(),
                ffi::apr_pstrdup((*r).pool, value.as_ptr()),
            );
            (*r).filename = script;
            (*r).handler = HANDLER_NAME.as_ptr();
        }
        return ffi::OK as c_int;
    }
    ffi::DECLINED as c_int
}

/// An app made on first use: a script reached without a WSGIScriptAlias
/// (SetHandler wsgi-script, WSGIScriptAliasMatch), or an alias whose
/// directory names another WSGICallableObject.
struct ScriptApp {
    script: String,
    mount: String,
    callable: Option<String>,
    group: String,
    app: std::sync::Arc<oxwsgi_core::App>,
}

static SCRIPT_APPS: std::sync::Mutex<Vec<ScriptApp>> = std::sync::Mutex::new(Vec::new());

/// The apps of this child whose last load failed (readiness).
fn failed_apps(c: &conf::Config) -> Vec<String> {
    let aliases = c.aliases.iter().filter_map(|a| a.app.clone());
    let made = SCRIPT_APPS
        .lock()
        .recover()
        .iter()
        .map(|a| a.app.clone())
        .collect::<Vec<_>>();
    aliases
        .chain(made)
        .filter(|a| a.load_failed())
        .map(|a| a.name().to_string())
        .collect()
}

fn script_app(
    c: &conf::Config,
    script: &str,
    mount: &str,
    callable: Option<&str>,
    group: &str,
) -> Option<std::sync::Arc<oxwsgi_core::App>> {
    let mut apps = SCRIPT_APPS.lock().recover();
    if let Some(known) = apps.iter().find(|a| {
        a.script == script
            && a.mount == mount
            && a.callable.as_deref() == callable
            && a.group == group
    }) {
        return Some(known.app.clone());
    }
    let app = match c.defaults.as_ref()?.app(script, mount, callable, group) {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            log::error!(target: "oxwsgi", "{script}: {e}");
            return None;
        }
    };
    apps.push(ScriptApp {
        script: script.to_string(),
        mount: mount.to_string(),
        callable: callable.map(str::to_string),
        group: group.to_string(),
        app: app.clone(),
    });
    Some(app)
}

/// A WSGIImportScript's script as an app to preload: loaded for what its
/// import does (it needs no callable).
fn import_app(c: &conf::Config, import: &conf::Import) -> Option<std::sync::Arc<oxwsgi_core::App>> {
    let script = &import.script;
    let group = &import.application_group;
    let mut options = match c.defaults.as_ref()?.app(script, "", None, group) {
        Ok(a) => a.options().clone(),
        Err(e) => {
            log::error!(target: "oxwsgi", "{script}: {e}");
            return None;
        }
    };
    options.import_only = true;
    Some(std::sync::Arc::new(oxwsgi_core::App::new(options)))
}

/// How a request reaches its app: the options of its alias or handler
/// script, and what a dispatch script chose over them.
#[derive(Default)]
pub(crate) struct Route<'c> {
    /// The alias's (or alias match's) options, or the handler script's.
    pub inline: Option<&'c conf::Inline>,
    /// The WSGIHandlerScript serving the request (`None`: a WSGI script).
    pub handler: Option<&'c conf::HandlerScript>,
    /// The WSGIDispatchScript's answers.
    pub dispatched: oxwsgi_core::auth_script::Dispatch,
}

/// The callable handler scripts are called by (mod_wsgi's).
const HANDLER_CALLABLE: &str = "handle_request";

/// The app of a request: its WSGIScriptAlias, the handler script serving
/// it, or the script Apache mapped the URL to (SCRIPT_NAME is the URL up
/// to the script).
///
/// # Safety
/// `r` is the live request of the handler.
unsafe fn app_of(
    r: *mut request_rec,
    c: &conf::Config,
    route: &Route<'_>,
) -> Option<std::sync::Arc<oxwsgi_core::App>> {
    // SAFETY: r is the live request of the handler (app_of's contract);
    // notes, filename, uri and path_info
    // are C strings (or null).
    unsafe {
        let inline = route.inline;
        // A dispatch script's choice, then a handler script's callable, then
        // an alias's own callable-object=, then the directory's.
        let callable = match (&route.dispatched.callable_object, route.handler) {
            (Some(chosen), _) => Some(chosen.as_str()),
            (None, Some(_)) => Some(HANDLER_CALLABLE),
            (None, None) => match inline.and_then(|i| i.callable.as_deref()) {
                Some(own) => Some(own),
                None => conf::callable_of(r),
            },
        };
        let raw_group = match &route.dispatched.application_group {
            Some(chosen) => Some(chosen.as_str()),
            None => conf::configured_application_group(r, inline),
        };
        if let Some(index) = note_index(r, c"oxwsgi-alias").filter(|_| route.handler.is_none()) {
            let alias = c.aliases.get(index)?;
            let app = alias.app.clone()?;
            let own = app.options();
            let group =
                conf::application_group_of(r, raw_group, own.mount.as_str(), c.case_insensitive);
            return if callable.is_some_and(|name| name != own.spec.callable)
                || group != own.application_group
            {
                script_app(c, &alias.script, &alias.prefix, callable, &group)
            } else {
                Some(app)
            };
        }
        let script = match route.handler {
            Some(h) => h.script.as_str(),
            None => CStr::from_ptr((*r).filename.cast_const().as_ref()?)
                .to_str()
                .ok()?,
        };
        let note = ffi::apr_table_get((*r).notes, c"oxwsgi-mount".as_ptr());
        let mount = if !note.is_null() && route.handler.is_none() {
            String::from_utf8_lossy(cstr_bytes(note)).into_owned()
        } else {
            let uri = cstr_bytes((*r).uri);
            let extra = cstr_bytes((*r).path_info);
            String::from_utf8_lossy(&uri[..uri.len() - extra.len().min(uri.len())]).into_owned()
        };
        let group = conf::application_group_of(r, raw_group, &mount, c.case_insensitive);
        script_app(c, script, &mount, callable, &group)
    }
}

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
    if !python_running() {
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

/// A number translate_name left in the request's notes.
///
/// # Safety
/// `r` is a live request.
unsafe fn note_index(r: *mut request_rec, key: &CStr) -> Option<usize> {
    // SAFETY: r is live (the contract); the note is a C string or null.
    unsafe {
        let note = ffi::apr_table_get((*r).notes, key.as_ptr());
        if note.is_null() {
            return None;
        }
        CStr::from_ptr(note).to_str().ok()?.parse().ok()
    }
}

/// The inline options of the alias (or alias match) serving `r`.
///
/// # Safety
/// `r` is a live request.
unsafe fn inline_of(r: *mut request_rec, c: &conf::Config) -> Option<&conf::Inline> {
    // SAFETY: r is live (the contract).
    unsafe {
        if let Some(i) = note_index(r, c"oxwsgi-alias") {
            return c.aliases.get(i).map(|a| &a.inline);
        }
        note_index(r, c"oxwsgi-match").and_then(|i| c.matches.get(i).map(|m| &m.inline))
    }
}

/// Where a request crosses from Apache into Python.
unsafe extern "C" fn handler(r: *mut request_rec) -> c_int {
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
                if name == status::HANDLER_NAME {
                    return status::respond(r);
                }
                if name == status::HEALTH_READY || name == status::HEALTH_LIVE {
                    let probe = if name == status::HEALTH_READY {
                        oxwsgi_core::health::Probe::Ready
                    } else {
                        oxwsgi_core::health::Probe::Live
                    };
                    return status::respond_health(r, probe, &failed_apps(&conf::get()));
                }
                let c = conf::get();
                let handler = if name == HANDLER_NAME {
                    None
                } else {
                    // A handler name a WSGIHandlerScript in force defines.
                    match conf::handler_script(r, &c, &name.to_string_lossy()) {
                        Some(h) => Some(h),
                        None => return ffi::DECLINED as c_int,
                    }
                };
                let proto = (*r).proto_num.max(0) as u32;
                let multiplexed = !(*(*r).connection).master.is_null();
                if !oxwsgi_core::request::version_supported(proto / 1000, proto % 1000, multiplexed)
                {
                    // Apache's own parser lets "HTTP/9.9" through (and any
                    // version under HttpProtocolOptions Unsafe). A client that
                    // speaks another protocol gets no second request either.
                    (*(*r).connection).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
                    return ffi::HTTP_VERSION_NOT_SUPPORTED as c_int;
                }
                let inline = match handler {
                    Some(h) => Some(&h.inline),
                    None => inline_of(r, &c),
                };
                // A script mapped by a handler (SetHandler, AddHandler: a
                // tenant's .htaccess can) runs only where the server's
                // configuration allows scripts, as with mod_wsgi; an alias
                // is the configuration's own word, and so is a handler
                // script (only the server's configuration defines one).
                if inline.is_none() && ffi::ap_allow_options(r) & ffi::OPT_EXECCGI as c_int == 0 {
                    log::error!(
                        target: "oxwsgi",
                        "Options ExecCGI is off in this directory: {}",
                        cstr_str((*r).filename)
                    );
                    return ffi::HTTP_FORBIDDEN as c_int;
                }
                let route = Route {
                    inline,
                    handler,
                    dispatched: match dispatch(r) {
                        Ok(d) => d,
                        Err(status) => return status,
                    },
                };
                // A dispatch script's choice wins, then an alias's
                // process-group=, then WSGIProcessGroup.
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
                    return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
                }
                if let Some(group) = group {
                    let Some(app) = app_of(r, &c, &route) else {
                        return ffi::HTTP_NOT_FOUND as c_int;
                    };
                    return daemon::serve(r, group, &app, &c, &route);
                }
                if PYTHON_STARTED.get() != Some(&true) {
                    log::error!(target: "oxwsgi", "Python is not running in this child (see the error log)");
                    return ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
                }
                let Some(app) = app_of(r, &c, &route) else {
                    return ffi::HTTP_NOT_FOUND as c_int;
                };
                let writer = writer::WriteBehind::for_request(r);
                let mut req = match request::from_request_rec(r, &writer, None, &route, &app) {
                    Ok(q) => q,
                    Err(status) => return status,
                };
                let (sink, status) = sink::ApacheSink::new(r, writer.clone());
                CURRENT.with(|c| c.set(r));
                CURRENT_WRITER.with(|w| *w.borrow_mut() = Some(writer.clone()));
                let outcome = oxwsgi_core::handle(&app, &mut req, Box::new(sink));
                // The request is Apache's again only once the writer is done.
                let _ = writer.sync();
                log::debug!(
                    target: "oxwsgi",
                    "handler done: {outcome:?}, the writer finished"
                );
                CURRENT_WRITER.with(|w| *w.borrow_mut() = None);
                CURRENT.with(|c| c.set(ptr::null()));
                match outcome {
                    Outcome::Error(_) => status.load(std::sync::atomic::Ordering::Relaxed) as c_int,
                    _ => ffi::OK as c_int,
                }
            }
        },
    )
}

/// # Safety
/// `p` is null or a NUL-terminated string that outlives the returned slice.
pub(crate) unsafe fn cstr_str(p: *const c_char) -> String {
    // SAFETY: as cstr_bytes, whose contract this is.
    String::from_utf8_lossy(unsafe { cstr_bytes(p) }).into_owned()
}

/// # Safety
/// `p` is null or a NUL-terminated string that outlives the returned slice.
pub(crate) unsafe fn cstr_bytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        &[]
    } else {
        // SAFETY: p is a NUL-terminated string that outlives the slice
        // (cstr_bytes' contract; null was handled above).
        unsafe { CStr::from_ptr(p).to_bytes() }
    }
}

thread_local! {
    /// The request this thread is handling: Python's output and the core's
    /// messages are logged with its context (Apache request threads run the
    /// app themselves, so print() and wsgi.errors happen on them).
    static CURRENT: std::cell::Cell<*const request_rec> = const { std::cell::Cell::new(ptr::null()) };
    /// Its writer: while one holds the request, log lines go through it.
    static CURRENT_WRITER: std::cell::RefCell<Option<std::sync::Arc<writer::WriteBehind>>> =
        const { std::cell::RefCell::new(None) };
}

struct ApacheLog;

impl log::Log for ApacheLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => ffi::APLOG_ERR,
            log::Level::Warn => ffi::APLOG_WARNING,
            log::Level::Info => ffi::APLOG_INFO,
            _ => ffi::APLOG_DEBUG,
        };
        let text = if record.target().starts_with("oxwsgi") {
            format!("oxwsgi: {}", record.args())
        } else {
            format!("oxwsgi: [{}] {}", record.target(), record.args())
        };
        let Ok(text) = CString::new(text.replace('\0', "\\0")) else {
            return;
        };
        let r = CURRENT.with(|c| c.get());
        let queued = CURRENT_WRITER.with(|w| {
            w.borrow()
                .as_ref()
                .is_some_and(|w| w.log(level as c_int, &text))
        });
        if queued {
            return;
        }
        // SAFETY: the shim logs with a "%s" format; a current request is the
        // live one this thread is handling (set and cleared by the handler),
        // and no writer holds it (checked above).
        unsafe {
            if r.is_null() {
                ffi::oxwsgi_log(level as c_int, text.as_ptr());
            } else {
                ffi::oxwsgi_log_r(r, level as c_int, text.as_ptr());
            }
        }
    }
    fn flush(&self) {}
}

static LOGGER: ApacheLog = ApacheLog;

/// Routes the `log` facade to Apache's error log. Debug lines (a request's
/// way through the module) are made only when Apache logs them for this
/// module (`LogLevel wsgi:debug`, or `LogLevel debug`).
fn install_logger(debug: bool) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}

/// Whether the server `s` logs this module's debug lines.
///
/// # Safety
/// `s` is a live server_rec.
unsafe fn logs_debug(s: *const server_rec) -> bool {
    // SAFETY: s is live (logs_debug's contract); module_levels, when set,
    // has an entry for every loaded module's index, ours included; the
    // module record's index is set once Apache loaded the module.
    unsafe {
        let conf = &(*s).log;
        let index = (*ptr::addr_of!(wsgi_module)).module_index;
        let module_level = if index >= 0 && !conf.module_levels.is_null() {
            i32::from(*conf.module_levels.add(index as usize))
        } else {
            -1
        };
        let level = if module_level >= 0 {
            module_level
        } else {
            conf.level
        };
        level >= ffi::APLOG_DEBUG as c_int
    }
}

//! Daemon mode (mod_wsgi's `WSGIDaemonProcess`): the parent starts each
//! process group once the configuration is read, replaces a daemon that
//! dies at once (APR's other-child hooks; Apache's monitor hook looks again
//! every few seconds) and stops them when the configuration goes (a restart
//! or the stop); a child proxies each request of a group's app to the group
//! over its socket (`proxy`, through the core's `daemon::server::proxy`).

use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxwsgi_core::daemon::options::GroupOptions;
use oxwsgi_core::daemon::process::stderr_log::LogStyle;
use oxwsgi_core::daemon::protocol::frame::AppRef;
use oxwsgi_core::daemon::server::group::Group;
use oxwsgi_core::daemon::server::listen;
use oxwsgi_core::daemon::server::proxy::Pool;
use oxwsgi_core::daemon::spec::{ExecSpec, GroupSpec};
use oxwsgi_core::sync::Recover;
use oxwsgi_core::{App, Outcome};

use crate::conf::{self, Config};
use crate::ffi::{self, apr_pool_t, request_rec, server_rec};

/// The running groups (parent only).
static GROUPS: Mutex<Vec<Group>> = Mutex::new(Vec::new());

/// How long a stopping group's requests may take to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Starts the configured groups (post_config, in the parent). Not on the
/// first pass of a start (Apache reads its configuration twice) nor for a
/// configuration test.
///
/// # Safety
/// Called from post_config with its configuration pool.
pub unsafe fn start(
    pconf: *mut apr_pool_t,
    s: *mut server_rec,
    metrics: Option<&'static oxwsgi_core::ops::metrics::Region>,
) -> Result<(), String> {
    let c = conf::get();
    if c.daemons.is_empty() {
        return Ok(());
    }
    // SAFETY: s is post_config's main server, in the parent.
    unsafe { keep_secret(s) }?;
    // SAFETY: ap_state_query reads Apache's process state.
    let (state, mode) = unsafe {
        (
            ffi::ap_state_query(ffi::AP_SQ_MAIN_STATE as c_int),
            ffi::ap_state_query(ffi::AP_SQ_RUN_MODE as c_int),
        )
    };
    if state == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as c_int || mode != ffi::AP_SQ_RM_NORMAL as c_int {
        return Ok(());
    }
    crate::logging::install_logger(false);
    // SAFETY: pconf is post_config's live pool.
    let prefix = unsafe { socket_prefix(pconf, &c) }?;
    // SAFETY: geteuid has no preconditions; ap_unixd_config is Apache's
    // configured User/Group, read-only after configuration.
    let owner = unsafe { (libc::geteuid() == 0).then(|| (ap_user(), ap_group())) };
    let mut sockets = Vec::new();
    PCONF.store(pconf, std::sync::atomic::Ordering::Release);
    let mut groups = GROUPS.lock().recover();
    let exec = ExecSpec::find("apache2", LogStyle::Apache);
    // As mod_wsgi: without user=, daemons run as Apache's User.
    // SAFETY: Apache's static unixd configuration, filled in by now.
    let apache_user =
        owner.map(|_| unsafe { crate::cstr::cstr_str(ffi::ap_unixd_config.user_name) });
    for (name, options) in &c.daemons {
        // The same path from one generation to the next: the children of
        // the last one, still finishing their requests on a graceful
        // restart, reach the new group there (they wait while it starts).
        let socket = format!("{prefix}.{}.{name}.sock", std::process::id());
        let options = as_configured(&c, name, options, apache_user.as_deref())?;
        let mut spec = GroupSpec::new(
            name,
            options,
            socket.clone().into(),
            owner,
            preloaded(&c, name),
        )?;
        spec.metrics = match metrics {
            // SAFETY: s is post_config's main server, in the parent.
            Some(_) => Some(unsafe { group_region(s, name) }?),
            None => None,
        };
        spec.exec = exec.clone();
        spec.mod_wsgi = true;
        let g = Group::start(spec, daemon_logger)
            .map_err(|e| format!("cannot start process group {name} on {socket}: {e}"))?;
        for pid in g.pids() {
            // SAFETY: pconf is post_config's live pool.
            unsafe { watch(pconf, groups.len(), pid) };
        }
        groups.push(g);
        sockets.push((name.clone(), socket.into()));
    }
    drop(groups);
    oxwsgi_core::daemon::server::group::wake_on_daemon_exit(true);
    conf::set_sockets(sockets);
    // SAFETY: pconf is live; the cleanup runs when it is cleared (restart
    // or stop), in the parent.
    unsafe {
        ffi::apr_pool_cleanup_register(
            pconf,
            std::ptr::null(),
            Some(stop_all),
            Some(ffi::apr_pool_cleanup_null),
        );
    }
    Ok(())
}

/// Where the groups' sockets go: WSGISocketPrefix as mod_wsgi reads it
/// (PREFIX.PID.NAME.sock, where the configuration says: `-t` warns if
/// others may write there); by default a directory of the server's own in
/// its runtime directory.
///
/// # Safety
/// `pconf` is post_config's live pool.
unsafe fn socket_prefix(pconf: *mut apr_pool_t, c: &Config) -> Result<String, String> {
    if let Some(p) = &c.socket_prefix {
        return Ok(p.clone());
    }
    // SAFETY: pconf is live (the contract); the result is a C string in it.
    let dir =
        unsafe { crate::cstr::cstr_str(ffi::ap_runtime_dir_relative(pconf, c"oxwsgi".as_ptr())) };
    listen::private_dir(std::path::Path::new(&dir))?;
    Ok(format!("{dir}/group"))
}

/// A group's options with what the server adds: WSGIRequestTimeout unless
/// the group sets its own, and `apache_user` (Apache's User, given when the
/// parent runs as root) without `user=`, as mod_wsgi.
fn as_configured(
    c: &Config,
    name: &str,
    options: &GroupOptions,
    apache_user: Option<&str>,
) -> Result<GroupOptions, String> {
    let mut options = options.clone();
    let mut added = Vec::new();
    if let (None, Some(t)) = (options.request_timeout, c.request_timeout) {
        added.push(format!("request-timeout={}ms", t.as_millis()));
    }
    if let (None, Some(user)) = (&options.user, apache_user) {
        added.push(format!("user={user}"));
    }
    for word in added {
        options
            .add(name, &word)
            .map_err(|e| format!("process group {name}: {e}"))?;
    }
    Ok(options)
}

const SECRET_KEY: &std::ffi::CStr = c"oxwsgi-secret";

/// The server's secret, from which the groups' tokens come
/// (`oxwsgi_core::daemon::protocol::auth`): drawn once, and kept in the process
/// pool, which outlives this module (Apache unloads it on a restart), so
/// the last generation's children still reach the new daemons.
///
/// # Safety
/// `s` is the main server, in the parent.
unsafe fn keep_secret(s: *mut server_rec) -> Result<(), String> {
    const LEN: usize = 32;
    // SAFETY: s and its process pool are live (the contract); the user
    // data, when set, is LEN bytes this function allocated in that pool,
    // which lives as long as the parent.
    unsafe {
        let pool = (*(*s).process).pool;
        let mut found: *mut c_void = std::ptr::null_mut();
        ffi::apr_pool_userdata_get(&mut found, SECRET_KEY.as_ptr(), pool);
        let kept = (!found.is_null()).then(|| *found.cast::<[u8; LEN]>());
        let key = oxwsgi_core::daemon::protocol::auth::server_secret(kept)
            .map_err(|e| format!("cannot draw the process groups' secret: {e}"))?;
        if found.is_null() {
            let p = ffi::apr_palloc(pool, LEN).cast::<[u8; LEN]>();
            p.write(key);
            ffi::apr_pool_userdata_set(p.cast(), SECRET_KEY.as_ptr(), None, pool);
        }
    }
    Ok(())
}

/// Group `name`'s own metrics region (`oxwsgi_core::ops::group_metrics`): made
/// once, and kept in the process pool with the server's region (a
/// restart unloads this module, not the parent's mappings), so the group's
/// counters survive a graceful restart as the server's do.
///
/// # Safety
/// `s` is the main server, in the parent.
unsafe fn group_region(
    s: *mut server_rec,
    name: &str,
) -> Result<&'static oxwsgi_core::ops::metrics::Region, String> {
    use oxwsgi_core::ops::group_metrics;
    let key = std::ffi::CString::new(format!("oxwsgi-group-metrics:{name}"))
        .map_err(|_| format!("process group {name}: a NUL in its name"))?;
    // SAFETY: s and its process pool are live (the contract); the user data,
    // when set, is the address of a region `group_metrics` mapped in this
    // process (shared, never unmapped in the parent), stored below.
    unsafe {
        let pool = (*(*s).process).pool;
        let mut found: *mut c_void = std::ptr::null_mut();
        ffi::apr_pool_userdata_get(&mut found, key.as_ptr(), pool);
        if let Some(region) = found.cast::<oxwsgi_core::ops::metrics::Region>().as_ref() {
            group_metrics::adopt(name, region);
            return Ok(region);
        }
        let region = group_metrics::region_of(name)
            .map_err(|e| format!("process group {name}: its metrics memory: {e}"))?;
        // APR copies the key into the pool.
        ffi::apr_pool_userdata_set(
            std::ptr::from_ref(region).cast_mut().cast(),
            key.as_ptr(),
            None,
            pool,
        );
        Ok(region)
    }
}

/// The apps group `name` loads when its daemons start: its
/// WSGIImportScripts, and the WSGIScriptAliases naming it with both
/// `process-group=` and `application-group=` (as mod_wsgi, which preloads
/// those), in the configuration's order.
fn preloaded(c: &Config, name: &str) -> Vec<oxwsgi_core::AppOptions> {
    let import = |i: &conf::Import| {
        let mut o = c
            .defaults
            .as_ref()?
            .app(&i.script, "", None, &i.application_group)
            .ok()?
            .options()
            .clone();
        o.import_only = true;
        Some(o)
    };
    let imports: Vec<_> = c
        .imports
        .iter()
        .filter(|i| i.group.as_deref() == Some(name))
        .collect();
    let mut out = Vec::new();
    for (n, a) in c.aliases.iter().enumerate() {
        out.extend(
            imports
                .iter()
                .filter(|i| i.after_aliases == n)
                .filter_map(|i| import(i)),
        );
        // mod_wsgi preloads an alias naming both groups, when its
        // application group does not depend on the request.
        let fixed = a
            .inline
            .application_group
            .as_deref()
            .and_then(conf::fixed_application_group)
            .is_some();
        if a.inline.group() == Some(Some(name)) && fixed {
            out.extend(a.app.as_ref().map(|app| app.options().clone()));
        }
    }
    out.extend(
        imports
            .iter()
            .filter(|i| i.after_aliases >= c.aliases.len())
            .filter_map(|i| import(i)),
    );
    for o in &mut out {
        // The daemon's own: it may be multithreaded when Apache's
        // children are not.
        o.multithread = c.daemons.iter().any(|(n, d)| n == name && d.threads > 1);
        o.multiprocess = c.daemons.iter().any(|(n, d)| n == name && d.processes > 1);
    }
    out
}

/// The User and Group Apache's children run as.
///
/// # Safety
/// After the configuration was read (mod_unixd has filled it in).
unsafe fn ap_user() -> u32 {
    // SAFETY: a plain field of Apache's static unixd configuration.
    unsafe { ffi::ap_unixd_config.user_id }
}

/// # Safety
/// As `ap_user`.
unsafe fn ap_group() -> u32 {
    // SAFETY: a plain field of Apache's static unixd configuration.
    unsafe { ffi::ap_unixd_config.group_id }
}

/// The configuration pool of the running generation (parent only).
static PCONF: std::sync::atomic::AtomicPtr<apr_pool_t> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// A daemon Apache's parent is told about when it dies.
#[repr(C)]
struct Watched {
    proc_: ffi::apr_proc_t,
    group: usize,
}

/// Registers daemon `pid` of group number `group` as one of Apache's "other
/// children": Apache's parent waits for all its children, ours included,
/// and calls `on_other_child` at once when one of them dies (its monitor
/// hook runs only every ten seconds).
///
/// # Safety
/// `pconf` is the live configuration pool; in the parent.
unsafe fn watch(pconf: *mut apr_pool_t, group: usize, pid: libc::pid_t) {
    // SAFETY: the record lives in pconf (as long as the registration, which
    // APR removes when pconf is cleared); written whole before use.
    unsafe {
        let w = ffi::apr_palloc(pconf, std::mem::size_of::<Watched>()).cast::<Watched>();
        w.write(Watched {
            proc_: ffi::apr_proc_t {
                pid,
                in_: std::ptr::null_mut(),
                out: std::ptr::null_mut(),
                err: std::ptr::null_mut(),
            },
            group,
        });
        ffi::apr_proc_other_child_register(
            &raw mut (*w).proc_,
            Some(on_other_child),
            w.cast(),
            std::ptr::null_mut(),
            pconf,
        );
    }
}

unsafe extern "C" fn on_other_child(reason: c_int, data: *mut c_void, status: c_int) {
    oxwsgi_core::guard::entry("a daemon's end", (), || {
        let died = reason == ffi::APR_OC_REASON_DEATH as c_int
            || reason == ffi::APR_OC_REASON_LOST as c_int;
        if !died {
            return;
        }
        // SAFETY: data is the Watched record `watch` registered, in pconf.
        let (pid, group) = unsafe {
            let w = data.cast::<Watched>();
            ((*w).proc_.pid, (*w).group)
        };
        // SAFETY: unregistering the registration that called us.
        unsafe { ffi::apr_proc_other_child_unregister(data) };
        let status = (reason == ffi::APR_OC_REASON_DEATH as c_int).then_some(status);
        let new = GROUPS
            .lock()
            .recover()
            .get_mut(group)
            .and_then(|g| g.replace(pid, status));
        let pconf = PCONF.load(std::sync::atomic::Ordering::Acquire);
        if let (Some(new), false) = (new, pconf.is_null()) {
            // SAFETY: pconf is the running generation's pool, in the parent.
            unsafe { watch(pconf, group, new) };
        }
    })
}

fn daemon_logger() {
    crate::logging::install_logger(false);
}

unsafe extern "C" fn stop_all(_: *mut c_void) -> ffi::apr_status_t {
    oxwsgi_core::guard::entry("stopping the process groups", 0, || {
        // The handler is this module's code, which Apache unloads with the
        // configuration (a restart): a child's death after that would jump
        // into unmapped memory (the parent died so in a test).
        oxwsgi_core::daemon::server::group::wake_on_daemon_exit(false);
        PCONF.store(std::ptr::null_mut(), std::sync::atomic::Ordering::Release);
        let groups = std::mem::take(&mut *GROUPS.lock().recover());
        for g in groups {
            g.stop(STOP_GRACE);
        }
        0
    })
}

/// Apache's parent, once a second: replaces daemons that died.
pub unsafe extern "C" fn monitor(_: *mut apr_pool_t, _: *mut server_rec) -> c_int {
    oxwsgi_core::guard::entry("the monitor hook", ffi::DECLINED as c_int, || {
        let pconf = PCONF.load(std::sync::atomic::Ordering::Acquire);
        for (i, g) in GROUPS.lock().recover().iter_mut().enumerate() {
            for pid in g.check() {
                if !pconf.is_null() {
                    // SAFETY: pconf is the running generation's pool, in
                    // the parent. Unwatched, the new daemon's death would
                    // be noticed only at this hook's next run.
                    unsafe { watch(pconf, i, pid) };
                }
            }
        }
        ffi::DECLINED as c_int
    })
}

/// In a new child: let go of the groups' listening sockets it inherited
/// from the parent. Held open here, a socket the parent retires on a
/// graceful restart would keep taking connections that no daemon accepts
/// (a request waited 30 s in the test that found it).
pub fn forget_groups_in_child() {
    let had = !std::mem::take(&mut *GROUPS.lock().recover()).is_empty();
    if had {
        oxwsgi_core::daemon::server::group::wake_on_daemon_exit(false);
    }
}

/// Each child's connections, by group.
static POOLS: Mutex<Vec<(String, Arc<Pool>)>> = Mutex::new(Vec::new());

fn pool(c: &Config, group: &str) -> Option<Arc<Pool>> {
    let mut pools = POOLS.lock().recover();
    if let Some((_, p)) = pools.iter().find(|(n, _)| n == group) {
        return Some(p.clone());
    }
    let (_, socket) = c.sockets.iter().find(|(n, _)| n == group)?;
    let (_, options) = c.daemons.iter().find(|(n, _)| n == group)?;
    let p = match Pool::for_group(socket.clone(), group, options) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            log::error!(target: "oxwsgi", "process group {group}: {e}");
            return None;
        }
    };
    pools.push((group.to_string(), p.clone()));
    Some(p)
}

/// Serves `r` with `app` in process group `group` (`inline`: the options
/// of the alias serving it).
///
/// # Safety
/// `r` is the live request of the calling handler.
pub unsafe fn proxy(
    r: *mut request_rec,
    group: &str,
    app: &App,
    c: &Config,
    route: &crate::route::Route<'_>,
) -> c_int {
    // A group defined in a virtual host serves that host only (a tenant
    // elsewhere must not run its scripts in another site's daemons).
    // SAFETY: r is live (the contract): its server and the main server
    // (ap_server_conf) are live server_recs of the running configuration.
    let serves =
        unsafe { c.group_serves(group, conf::server_key((*r).server), ffi::ap_server_conf) };
    if !serves {
        log::error!(target: "oxwsgi", "Daemon process called '{group}' cannot be accessed by this WSGI application.");
        return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    }
    let Some(pool) = pool(c, group) else {
        log::error!(target: "oxwsgi", "WSGIProcessGroup {group}: no WSGIDaemonProcess of that name");
        return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let spec = &app.options().spec;
    let target = AppRef::Named {
        target: spec.target(),
        callable: Some(spec.callable.clone()),
        mount: app.options().mount.clone(),
        reload: app.options().reload_on_change,
        group: app.options().application_group.clone(),
    };
    // SAFETY: r is the live request of the calling handler (serve's
    // contract), used by this thread (and its writer) only.
    unsafe {
        let writer = crate::writer::WriteBehind::for_request(r);
        let mut req = match crate::request::from_request_rec(r, &writer, Some(group), route, app) {
            Ok(q) => q,
            Err(status) => return status,
        };
        let (mut sink, status) = crate::sink::ApacheSink::new(r, writer.clone());
        let options = c.daemons.iter().find(|(n, _)| n == group).map(|(_, o)| o);
        let limit = options.and_then(|o| o.response_socket_timeout.or(o.socket_timeout));
        let restore = limit.and_then(|t| client_timeout(r, t));
        let outcome = pool.serve_with(&target, &mut req, &mut sink, conf::relay(r));
        let _ = writer.sync();
        if let Some((sock, old)) = restore {
            ffi::apr_socket_timeout_set(sock, old);
        }
        match outcome {
            Outcome::Error(_) => status.load(std::sync::atomic::Ordering::Relaxed) as c_int,
            _ => ffi::OK as c_int,
        }
    }
}

/// Sets how long a write to `r`'s client may wait (response-socket-timeout)
/// while the response is relayed; the socket and its old timeout, to put
/// back. Not for a stream of an HTTP/2 connection (its socket is shared).
///
/// # Safety
/// `r` is a live request.
unsafe fn client_timeout(
    r: *mut request_rec,
    limit: Duration,
) -> Option<(*mut ffi::apr_socket_t, ffi::apr_interval_time_t)> {
    // SAFETY: r is live (the contract); the socket is its connection's, and
    // the get writes one value.
    unsafe {
        let sock = crate::request::own_socket(r)?;
        let mut old: ffi::apr_interval_time_t = 0;
        if ffi::apr_socket_timeout_get(sock, &mut old) != 0 {
            return None;
        }
        ffi::apr_socket_timeout_set(sock, limit.as_micros() as ffi::apr_interval_time_t);
        Some((sock, old))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    /// What the server adds to a group's options: WSGIRequestTimeout where
    /// the group has no request-timeout= of its own, and Apache's User
    /// where it has no user= (given only when the parent runs as root).
    #[test]
    fn the_server_adds_its_request_timeout_and_user_where_the_group_has_none() {
        let mut c = Config::default();
        c.request_timeout = Some(Duration::from_secs(30));
        let bare = GroupOptions::parse("site", &[]).unwrap();
        let o = as_configured(&c, "site", &bare, Some("www-data")).unwrap();
        assert_eq!(o.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(o.user.as_deref(), Some("www-data"));
        let own = GroupOptions::parse("site", &["request-timeout=5", "user=nobody"]).unwrap();
        let o = as_configured(&c, "site", &own, Some("www-data")).unwrap();
        assert_eq!(o.request_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.user.as_deref(), Some("nobody"));
        // Not root: the daemons keep the parent's user.
        let o = as_configured(&Config::default(), "site", &bare, None).unwrap();
        assert_eq!((o.request_timeout, o.user), (None, None));
    }
}

//! Process groups (`wsgi_daemon_process`): for each configuration nginx's
//! master loads, it starts a manager (`oxwsgi_core::daemon::server::manager`) that
//! owns the groups' daemons, and retires the previous configuration's
//! manager once the new one runs (the groups keep their socket paths, so the
//! old workers' new connections reach the new daemons, while the old
//! daemons finish what they have). Workers let go of the manager's
//! lifeline: only the master holds it, so the groups go when it goes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ngx::ffi::{ngx_core_conf_t, ngx_core_module, ngx_cycle_t};
use oxwsgi_core::daemon::options::GroupOptions;
use oxwsgi_core::daemon::process::stderr_log::LogStyle;
use oxwsgi_core::daemon::server::listen;
use oxwsgi_core::daemon::server::manager::{self, Manager};
use oxwsgi_core::daemon::spec::{ExecSpec, GroupSpec, Mount};
use oxwsgi_core::sync::Recover;

use crate::Module;
use ngx::http::HttpModuleMainConf;

/// The manager of the running configuration (in the master).
static CURRENT: Mutex<Option<Manager>> = Mutex::new(None);

/// The directory of the groups' sockets: `nginx-oxwsgi` beside nginx's
/// pid file (a runtime directory), the server's own (`listen::private_dir`).
pub fn socket_dir(pid_file: &Path) -> PathBuf {
    pid_file
        .parent()
        .unwrap_or(Path::new("/run"))
        .join("nginx-oxwsgi")
}

/// Where group `name` listens: the same path from one configuration to
/// the next.
pub fn socket_path(pid_file: &Path, name: &str) -> PathBuf {
    socket_dir(pid_file).join(format!("{name}.sock"))
}

/// Starts the groups of `cycle`'s configuration and retires the previous
/// ones (init_module, in the master; not for `nginx -t` nor `nginx -s`);
/// the groups count their requests in `metrics`' server when it is there.
///
/// # Safety
/// `cycle` is the cycle nginx is initialising, in its single-threaded
/// master (or the process that becomes it).
pub unsafe fn start(
    cycle: *mut ngx_cycle_t,
    metrics: Option<&'static oxwsgi_core::ops::metrics::Region>,
) -> Result<(), String> {
    // SAFETY: the cycle is live; the http main conf exists when the http
    // block was configured.
    let main = unsafe { Module::main_conf(&*cycle) };
    let groups = main.map_or(&[][..], |m| &m.groups[..]);
    // SAFETY: a plain global nginx sets while it parses its command line.
    let testing = unsafe { ngx::ffi::ngx_test_config } != 0;
    if (!testing && signaller()) || (testing && groups.is_empty()) {
        return Ok(());
    }
    if groups.is_empty() {
        retire(CURRENT.lock().recover().take());
        return Ok(());
    }
    // SAFETY: the cycle is live (start's contract).
    let (ccf, pid_file) = unsafe { (core_conf(cycle), pid_file(cycle)) };
    let mounts = main.map_or(&[][..], |m| &m.group_mounts[..]);
    // What the daemons will be, checked for `nginx -t` too.
    let owner = daemons_owner(ccf);
    let configured = checked(groups, mounts, ccf, owner)?;
    // SAFETY: the cycle's log is valid while it is initialised.
    let log = unsafe { (*cycle).log };
    if testing {
        if let Some(w) = pid_file.parent().and_then(listen::others_may_write) {
            ngx::ngx_log_error!(
                ngx::ffi::NGX_LOG_WARN,
                log,
                "oxwsgi: the process groups' sockets go in {}: {w}",
                socket_dir(&pid_file).display()
            );
        }
        return Ok(());
    }
    listen::private_dir(&socket_dir(&pid_file))?;
    let exec = ExecSpec::find("nginx", LogStyle::Nginx);
    let specs = configured
        .into_iter()
        .enumerate()
        .map(|(i, (name, options))| {
            let mut spec = GroupSpec::new(
                name,
                options,
                socket_path(&pid_file, name),
                owner,
                Vec::new(),
            )?;
            spec.metrics = metrics.map(|_| group_region(name)).transpose()?;
            spec.exec = exec.clone();
            // Its daemons run the apps nginx's locations mount for it and
            // nothing else, whoever asks.
            spec.mounts = Some(mounts_of(mounts, i));
            Ok(spec)
        })
        .collect::<Result<Vec<_>, String>>()?;
    // nginx points its standard error at the error log only after it has
    // started (and a reload's new log may be another file): the manager and
    // its daemons get the configuration's log as theirs.
    // SAFETY: the cycle's log and its file are set while it is initialised.
    let log_fd = unsafe { (!log.is_null() && !(*log).file.is_null()).then(|| (*(*log).file).fd) };
    let m = manager::spawn(specs, "oxwsgi: groups", log_fd, crate::log::install_stderr)
        .map_err(|e| format!("cannot start the process groups: {e}"))?;
    let old = CURRENT.lock().recover().replace(m);
    retire(old);
    Ok(())
}

/// Who owns the groups' sockets: nginx's workers' user and group, when the
/// master runs as root (otherwise the master's own user keeps them).
fn daemons_owner(ccf: &ngx_core_conf_t) -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root.then_some((ccf.user, ccf.group))
}

/// Each group's options as its daemons will have them (without `user=`,
/// nginx's workers' user), checked: isolation from the server (`owner`:
/// who owns the sockets, `daemons_owner`), and what the group's user can
/// reach of its interpreter and its scripts.
fn checked<'g>(
    groups: &'g [(String, GroupOptions)],
    mounts: &[(usize, Mount)],
    ccf: &ngx_core_conf_t,
    owner: Option<(u32, u32)>,
) -> Result<Vec<(&'g str, GroupOptions)>, String> {
    let worker_user = (!ccf.username.is_null())
        // SAFETY: nginx's `user` name, a C string of the configuration.
        .then(|| unsafe { std::ffi::CStr::from_ptr(ccf.username) })
        .and_then(|u| u.to_str().ok())
        .map(str::to_string);
    let check = |i: usize, name: &str, options: &mut GroupOptions| -> Result<(), String> {
        if let (Some(_), None, Some(user)) = (owner, &options.user, &worker_user) {
            // Without user=, the daemons run as nginx's workers do.
            options.add(name, &format!("user={user}"))?;
        }
        options.check_isolation(owner.map(|(uid, _)| uid))?;
        let scripts: Vec<&Path> = mounts
            .iter()
            .filter(|(g, m)| *g == i && m.target.starts_with('/'))
            .map(|(_, m)| Path::new(m.target.as_str()))
            .collect();
        options.check_reach(&scripts)
    };
    groups
        .iter()
        .enumerate()
        .map(|(i, (name, options))| {
            let mut options = options.clone();
            check(i, name, &mut options).map_err(|e| format!("process group {name}: {e}"))?;
            Ok((name.as_str(), options))
        })
        .collect()
}

/// A region of the group's own metrics, made here in the master so every
/// worker forked after reads it.
fn group_region(name: &str) -> Result<&'static oxwsgi_core::ops::metrics::Region, String> {
    oxwsgi_core::ops::group_metrics::region_of(name)
        .map_err(|e| format!("process group {name}: its metrics memory: {e}"))
}

/// The apps the locations mount in group number `group`.
fn mounts_of(mounts: &[(usize, Mount)], group: usize) -> Vec<Mount> {
    mounts
        .iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, m)| m.clone())
        .collect()
}

/// # Safety
/// `cycle` is live, its configuration read.
unsafe fn core_conf<'a>(cycle: *mut ngx_cycle_t) -> &'a ngx_core_conf_t {
    // SAFETY: the core module's configuration of a live cycle is an
    // ngx_core_conf_t at the core module's index.
    unsafe { &*(*(*cycle).conf_ctx.add(ngx_core_module.index)).cast::<ngx_core_conf_t>() }
}

/// nginx's pid file, beside which the groups listen.
///
/// # Safety
/// `cycle` is live, its configuration read.
pub unsafe fn pid_file(cycle: *mut ngx_cycle_t) -> PathBuf {
    // SAFETY: by pid_file's contract.
    let ccf = unsafe { core_conf(cycle) };
    PathBuf::from(ccf.pid.to_str().unwrap_or("/run/nginx.pid"))
}

/// Stops a previous configuration's groups: their requests in progress get
/// their shutdown timeout. Closing the lifeline is the word: the manager
/// this master started may have died and been replaced by its warden's, so
/// its pid is no longer one to signal.
fn retire(old: Option<Manager>) {
    drop(old);
}

/// In a worker (or any process nginx forks from the master): let go of the
/// lifeline, which only the master may hold.
pub fn forget_in_worker() {
    drop(CURRENT.lock().recover().take());
}

/// Whether this nginx only signals a running one (`nginx -s reload`): it
/// reads the configuration too, but must start nothing. nginx keeps the
/// flag to itself, so its command line is read as nginx reads it.
fn signaller() -> bool {
    // SAFETY: nginx's saved argc/argv, set before the configuration is read.
    let args: Vec<String> = unsafe {
        (0..ngx::ffi::ngx_argc.max(0) as usize)
            .map(|i| *ngx::ffi::ngx_argv.add(i))
            .filter(|p| !p.is_null())
            .map(|p| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
            .collect()
    };
    has_signal(&args)
}

/// nginx's option parsing, for `-s`: flags may be grouped (`-qs stop`), and
/// `-p`, `-c`, `-g`, `-e`, `-s` take the rest of the word or the next one.
fn has_signal(args: &[String]) -> bool {
    let mut i = 1;
    while i < args.len() {
        let Some(flags) = args[i].strip_prefix('-') else {
            return false;
        };
        for (at, c) in flags.char_indices() {
            match c {
                's' => return true,
                'p' | 'c' | 'g' | 'e' => {
                    if at + 1 == flags.len() {
                        i += 1;
                    }
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_signaller_is_told_from_a_server() {
        assert!(has_signal(&args("nginx -s reload")));
        assert!(has_signal(&args("nginx -c /etc/nginx.conf -sreload")));
        assert!(has_signal(&args("nginx -qs stop")));
        assert!(!has_signal(&args("nginx -c /etc/s.conf -g daemon_off;")));
        assert!(!has_signal(&args("nginx -p /srv/s -e stderr")));
        assert!(!has_signal(&args("nginx")));
    }

    #[test]
    fn a_group_listens_beside_the_pid_file() {
        assert_eq!(
            socket_path(Path::new("/run/nginx.pid"), "site"),
            Path::new("/run/nginx-oxwsgi/site.sock")
        );
    }
}

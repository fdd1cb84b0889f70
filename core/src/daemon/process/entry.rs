//! A daemon process, from the fork to its exit: its identity, limits and
//! directory, then either the Python it becomes (`exec`, which comes back
//! here through `serve_in_python`) or the server's embedded one, and the
//! group's requests served until its life ends.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::python::interpreter::Interpreter;

use crate::daemon::options::{GroupOptions, Lifecycle};
use crate::daemon::process::exec::{become_python, python_to_become};
use crate::daemon::process::handoff::Handoff;
use crate::daemon::process::life::{End, Life};
use crate::daemon::process::serve::Owner;
use crate::daemon::process::stderr_log;
use crate::daemon::spec::GroupSpec;
use crate::daemon::sys::{self, Pid};

/// A daemon process, from fork to exit (or to the Python it becomes); the
/// exit status.
pub(in crate::daemon) fn daemon_main(
    spec: &GroupSpec,
    lifecycle: Lifecycle,
    listener: &UnixListener,
    parent: Pid,
    on_start: fn(),
) -> i32 {
    sys::default_signals();
    // The daemon keeps its own group's token (in `spec`), not the secret
    // that makes every group's, and its own group's metrics only.
    crate::daemon::protocol::auth::forget_secret();
    crate::ops::group_metrics::keep_only(&spec.name);
    if !bound_to(parent) {
        return 0;
    }
    sys::close_other_fds(&[0, 1, 2, listener.as_raw_fd()]);
    // Before any thread exists: every thread inherits the mask (the
    // Python this process may become too), and the monitor thread takes
    // the signals.
    sys::block_signals();
    on_start();
    let python = match python_to_become(spec) {
        Ok(p) => p,
        Err(e) => return fail_slowly(&spec.name, &e),
    };
    // Opened while the daemon still has the server's identity: the mapping
    // of the metrics can be reopened only with CAP_SYS_ADMIN.
    let metrics = match (&python, spec.metrics) {
        (Some(_), Some(region)) => {
            let at = std::ptr::from_ref(region) as usize;
            match sys::share_mapping(at, crate::ops::metrics::Region::SIZE) {
                Ok(m) => Some(m),
                Err(e) => {
                    log::warn!(target: "oxwsgi", "group {}: the metrics memory cannot be passed on ({e}): this daemon's requests are not counted on the status page", spec.name);
                    None
                }
            }
        }
        _ => None,
    };
    if let Err(e) = become_daemon(spec) {
        return fail_slowly(&spec.name, &e);
    }
    // A change of identity clears the parent-death signal.
    if !bound_to(parent) {
        return 0;
    }
    if let Some((program, exec)) = python {
        let e = become_python(spec, &program, &exec, &lifecycle, listener, parent, metrics);
        return fail_slowly(&spec.name, &e);
    }
    let listener = match listener.try_clone() {
        Ok(l) => l,
        Err(e) => return fail_slowly(&spec.name, &e.to_string()),
    };
    serve_group(spec, lifecycle, listener, false)
}

/// Makes the daemon go when the server's parent `parent` goes, however it
/// goes; false if it is gone already.
pub(in crate::daemon) fn bound_to(parent: Pid) -> bool {
    sys::die_with_parent(libc::SIGTERM);
    std::os::unix::process::parent_id() as Pid == parent
}

/// Starts Python (or adopts the one this process became: `adopted`) and
/// serves the group's requests until the daemon's life ends.
pub(in crate::daemon) fn serve_group(
    spec: &GroupSpec,
    lifecycle: Lifecycle,
    listener: UnixListener,
    adopted: bool,
) -> i32 {
    let o = &spec.options;
    let owner = match owner_of(o) {
        Ok(o) => o,
        Err(e) => return fail_slowly(&spec.name, &e),
    };
    let apps: Vec<Arc<App>> = spec
        .apps
        .iter()
        .cloned()
        .map(|mut a| {
            o.apply_to(&mut a);
            Arc::new(App::new(a))
        })
        .collect();
    let interpreter = match start_python(spec, &apps, adopted) {
        Ok(i) => i,
        Err(e) => return fail_slowly(&spec.name, &e),
    };
    if let Some(region) = spec.metrics {
        crate::ops::metrics::attach(region, o.threads, Some(&spec.name));
    }
    let life = Life::new(&spec.name, lifecycle);
    {
        let life = life.clone();
        // A request thread that did not come back after its timeout: the
        // process is replaced once the others finish.
        crate::ops::timeouts::on_stuck(Box::new(move |why| {
            crate::ops::metrics::recycled(crate::ops::metrics::RecycleReason::Stuck);
            life.end(End::Recycle, why)
        }));
    }
    if let Err(e) = life.watch() {
        return fail_slowly(&spec.name, &e.to_string());
    }
    let python = match std::env::current_exe() {
        Ok(program) if adopted => program.display().to_string(),
        _ => "the server's embedded Python".to_string(),
    };
    log::info!(target: "oxwsgi", "group {}: daemon process {} serving ({python})", spec.name, std::process::id());
    let apps = crate::daemon::process::serve::Apps::new(apps, o.threads > 1, o.processes > 1)
        .with_options(o)
        .with_life(life.clone())
        .with_owner(owner)
        .with_admission(spec.admission.clone())
        .with_mounts(spec.mounts.clone());
    let result = crate::daemon::process::dispatch::run(listener, apps, o, life.stop_flag());
    if let Err(e) = result {
        log::error!(target: "oxwsgi", "group {}: {e}", spec.name);
    }
    interpreter.shutdown();
    0
}

/// Who the group's scripts must belong to (`script-user`, `script-group`).
fn owner_of(o: &GroupOptions) -> Result<Option<Owner>, String> {
    match (&o.script_user, &o.script_group) {
        (Some(u), _) => sys::user_id(u).map(|id| Some(Owner::User(id))),
        (_, Some(g)) => sys::group_id(g).map(|id| Some(Owner::Group(id))),
        _ => Ok(None),
    }
}

/// The daemon's Python, with the group's settings and its apps preloaded:
/// started, or the one this process became (`adopted`).
fn start_python(spec: &GroupSpec, apps: &[Arc<App>], adopted: bool) -> Result<Interpreter, String> {
    let o = &spec.options;
    if spec.mod_wsgi {
        crate::python::interpreter::offer_mod_wsgi(crate::python::interpreter::ModWsgi {
            process_group: spec.name.clone(),
            maximum_processes: o.processes,
            threads_per_process: o.threads,
        });
    }
    // The group's own switch-interval= and interrupt-timeout=, as mod_wsgi
    // 6 (the server's WSGISwitchInterval is for its children).
    crate::python::interpreter::set_python_settings(crate::python::interpreter::PythonSettings {
        switch_interval: o.switch_interval,
        ..crate::python::interpreter::python_settings()
    });
    if let Some(grace) = o.interrupt_timeout {
        crate::ops::timeouts::set_stuck_grace(grace);
    }
    let preload = apps.iter().map(|a| &**a);
    let interpreter = if adopted {
        Interpreter::adopt(o.python_path.clone(), preload)
    } else {
        Interpreter::start_in_worker(o.python_home.clone(), o.python_path.clone(), preload)
    };
    interpreter.map_err(|e| e.to_string())
}

/// How long a daemon that cannot start waits before it exits: the server's
/// parent starts another at once, and a mistake that fails every start
/// (a user that does not exist, a broken virtualenv) must not become a
/// fork loop filling the error log (mod_wsgi waits 20 s).
pub(in crate::daemon) const FAILED_START_PAUSE: Duration = Duration::from_secs(5);

pub(in crate::daemon) fn fail_slowly(group: &str, why: &str) -> i32 {
    log::error!(
        target: "oxwsgi",
        "group {group}: {why}; this daemon exits in {} s and another is started",
        FAILED_START_PAUSE.as_secs()
    );
    std::thread::sleep(FAILED_START_PAUSE);
    1
}

/// The name `ps` and `top` show for a daemon of group `name`.
pub(in crate::daemon) fn set_title(name: &str, o: &GroupOptions) {
    let title = o
        .display_name
        .clone()
        .unwrap_or_else(|| format!("(wsgi:{name})"));
    sys::set_name(&title);
    sys::set_cmdline(&title);
}

/// What a new daemon becomes before Python starts: its name, mask,
/// locale, limits, priority, identity and directory.
fn become_daemon(spec: &GroupSpec) -> Result<(), String> {
    let o = &spec.options;
    set_title(&spec.name, o);
    if let Some(mask) = o.umask {
        let _ = sys::set_umask(mask);
    }
    if let Some(lang) = &o.lang {
        sys::set_env("LANG", lang);
        sys::set_env("LC_ALL", lang);
    }
    if let Some(eggs) = &o.python_eggs {
        sys::set_env("PYTHON_EGG_CACHE", &eggs.to_string_lossy());
    }
    let l = &o.limits;
    let limits = [
        // SIGXCPU at the limit (the process is then replaced), SIGKILL
        // if it is still running after the graceful timeout's CPU seconds.
        (
            libc::RLIMIT_CPU,
            l.cpu_time,
            l.cpu_time
                .map(|s| s + o.lifecycle.graceful_timeout.as_secs().max(5)),
            "cpu-time-limit",
        ),
        (libc::RLIMIT_DATA, l.memory, l.memory, "memory-limit"),
        (
            libc::RLIMIT_AS,
            l.virtual_memory,
            l.virtual_memory,
            "virtual-memory-limit",
        ),
    ];
    for (resource, soft, hard, what) in limits {
        if let (Some(soft), Some(hard)) = (soft, hard) {
            sys::set_limit(resource, soft, hard).map_err(|e| format!("{what}: {e}"))?;
        }
    }
    if let Some(nice) = l.cpu_priority {
        sys::set_priority(nice).map_err(|e| format!("cpu-priority: {e}"))?;
    }
    sys::switch_user(
        o.user.as_deref(),
        o.group.as_deref(),
        o.supplementary_groups.as_deref(),
    )?;
    if let Some(home) = &o.home {
        std::env::set_current_dir(home)
            .map_err(|e| format!("cannot change to {}: {e}", home.display()))?;
    }
    Ok(())
}

/// A daemon's life in the Python it became: called by oxwsgi's daemon
/// extension module (`serve`), on that Python's main thread, detached,
/// with the handoff's descriptor; the exit status.
pub fn serve_in_python(handoff: i32) -> i32 {
    let read = sys::inherited(handoff).and_then(|fd| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)?;
        Handoff::decode(&bytes)
    });
    let h = match read {
        Ok(h) => h,
        Err(e) => {
            // No logger yet: stderr is the server's error log all the same.
            eprintln!("oxwsgi: a process group's daemon cannot read its handoff: {e}");
            return 1;
        }
    };
    stderr_log::install(h.log);
    // The parent-death signal outlives exec; set again all the same, by
    // the same code as before it.
    if !bound_to(h.parent) {
        return 0;
    }
    // Python's own handlers (SIGINT's) out, as in a forked daemon.
    sys::default_signals();
    sys::block_signals();
    let words: Vec<&str> = h.words.iter().map(String::as_str).collect();
    let options = match GroupOptions::parse(&h.name, &words) {
        Ok(o) => o,
        Err(e) => return fail_slowly(&h.name, &e),
    };
    set_title(&h.name, &options);
    // The server's other settings came as the interpreter's options.
    crate::python::interpreter::set_python_settings(crate::python::interpreter::PythonSettings {
        restrict: h.restrict,
        ..crate::python::interpreter::PythonSettings::default()
    });
    let listener = match sys::inherited(h.listener) {
        Ok(fd) => UnixListener::from(fd),
        Err(e) => return fail_slowly(&h.name, &e.to_string()),
    };
    let metrics = h.metrics.and_then(|(fd, len, offset)| {
        let fd = sys::inherited(fd).ok()?;
        sys::map_region(fd.as_raw_fd(), len, offset)
            .map_err(|e| log::warn!(target: "oxwsgi", "group {}: the metrics memory: {e}", h.name))
            .ok()
    });
    let mut lifecycle = options.lifecycle.clone();
    lifecycle.maximum_requests = h.maximum_requests;
    let spec = GroupSpec {
        name: h.name,
        options,
        socket: PathBuf::new(),
        socket_owner: None,
        apps: h.apps,
        metrics,
        exec: None,
        admission: h.admission,
        mounts: h.mounts,
        mod_wsgi: h.mod_wsgi,
    };
    let code = serve_group(&spec, lifecycle, listener, true);
    // Python is not finalised by its own program either: request threads
    // may still be in it (they had their shutdown timeout).
    sys::exit_now(code)
}

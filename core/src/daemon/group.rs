//! A process group: N daemon processes serving the group's apps on one unix
//! socket, started from the server's parent process, replaced when one
//! dies, stopped with the server.
//!
//! Daemons are forked from the server's parent (Apache's parent, nginx's
//! master): that process is single-threaded and has no Python (it never
//! starts one), the configuration is already in its memory, and its error
//! log is the daemons' stderr. Once it has its identity, limits and
//! directory, a daemon becomes its virtualenv's own Python (`exec`), or
//! starts the server's embedded Python itself.
//!
//! The listening socket is made by the parent, so a daemon that is replaced
//! leaves it in place: requests wait in its backlog meanwhile.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, AppOptions};
use crate::interpreter::Interpreter;

use super::exec::{become_python, python_to_become};
use super::life::{End, Life};
use super::options::{GroupOptions, Lifecycle};
use super::serve::Owner;
use super::sys::{self, Pid};

/// What a group is made of (from `WSGIDaemonProcess` or
/// `wsgi_process_group`).
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: String,
    pub options: GroupOptions,
    /// Where the group listens.
    pub socket: PathBuf,
    /// Who may connect (the server's worker user and group): the socket is
    /// given to them, mode 0600 (`socket-user` names another owner).
    /// `None`: the current user keeps it.
    pub socket_owner: Option<(u32, u32)>,
    /// The group's apps, by the number the server names in a request.
    pub apps: Vec<AppOptions>,
    /// The group's own metrics region (`group_metrics`, mapped before the
    /// fork): the daemons count their requests there, and the status page
    /// reads it with the server's.
    pub metrics: Option<&'static crate::metrics::Region>,
    /// How the daemons can become their virtualenv's Python (`None`: the
    /// server ships no daemon extension module).
    pub exec: Option<super::exec::ExecSpec>,
    /// Who the daemons serve: the server's users, with the group's token.
    pub admission: super::auth::Admission,
    /// The group is Apache's: its daemons offer `import mod_wsgi`.
    pub mod_wsgi: bool,
    /// The apps the server's configuration mounts for the group, which
    /// are all a daemon runs (`None`: any the server names, as mod_wsgi's
    /// daemons, where a handler may map any script of a directory).
    pub mounts: Option<Vec<Mount>>,
}

/// An app a configuration mounts: its target (script or `module:callable`),
/// callable and mount point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub target: String,
    pub callable: String,
    pub mount: String,
}

/// A running group, owned by the server's parent process.
pub struct Group {
    spec: Arc<GroupSpec>,
    listener: UnixListener,
    /// The socket file this group bound (to remove it only if it is still
    /// there, not another generation's at the same path).
    socket_id: Option<(u64, u64)>,
    pids: Vec<Option<Pid>>,
    /// When each daemon was started.
    born: Vec<Instant>,
    /// Runs first in every new daemon (the server installs its logger).
    on_start: fn(),
}

/// A group's socket, bound, before (or between) the daemons that serve
/// it: a manager started after another died serves the same socket, so
/// the connections waiting on it are not lost.
pub struct Bound {
    spec: Arc<GroupSpec>,
    listener: UnixListener,
    socket_id: Option<(u64, u64)>,
}

impl Bound {
    /// Makes the group's socket. Call from the server's single-threaded
    /// parent (or the process that owns the groups).
    pub fn new(spec: GroupSpec) -> io::Result<Bound> {
        let mut owner = spec.socket_owner;
        if let Some(user) = &spec.options.socket_user {
            let uid = sys::user_id(user).map_err(io::Error::other)?;
            owner = Some((uid, owner.map_or(u32::MAX, |(_, gid)| gid)));
        }
        let listener = super::listen::bind(&spec.socket, owner, spec.options.listen_backlog)?;
        Ok(Bound {
            socket_id: file_id(&spec.socket),
            spec: Arc::new(spec),
            listener,
        })
    }

    /// Another handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Bound> {
        Ok(Bound {
            spec: self.spec.clone(),
            listener: self.listener.try_clone()?,
            socket_id: self.socket_id,
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

impl Group {
    /// Makes the socket and starts the daemons. Call from the server's
    /// single-threaded parent.
    pub fn start(spec: GroupSpec, on_start: fn()) -> io::Result<Group> {
        Group::start_bound(Bound::new(spec)?, on_start)
    }

    /// Starts the daemons of a bound group.
    pub fn start_bound(bound: Bound, on_start: fn()) -> io::Result<Group> {
        let n = bound.spec.options.processes.max(1);
        let mut group = Group {
            pids: vec![None; n],
            born: vec![Instant::now(); n],
            socket_id: bound.socket_id,
            spec: bound.spec,
            listener: bound.listener,
            on_start,
        };
        for i in 0..group.pids.len() {
            group.spawn(i, true, Duration::ZERO)?;
        }
        Ok(group)
    }

    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }

    /// The daemons' pids (those running).
    pub fn pids(&self) -> Vec<Pid> {
        self.pids.iter().flatten().copied().collect()
    }

    /// Starts daemon number `index`; `first`: of the group's first
    /// generation.
    /// `pause`: the new daemon waits this long before it starts (its
    /// predecessor failed as it started).
    fn spawn(&mut self, index: usize, first: bool, pause: Duration) -> io::Result<()> {
        let parent = std::process::id() as Pid;
        match sys::fork()? {
            Some(pid) => {
                self.pids[index] = Some(pid);
                self.born[index] = Instant::now();
                Ok(())
            }
            None => {
                std::thread::sleep(pause);
                let mut lifecycle = self.spec.options.lifecycle.clone();
                if first {
                    lifecycle.maximum_requests = lifecycle
                        .maximum_requests
                        .map(|n| staggered(n, index, self.pids.len()));
                }
                let code =
                    daemon_main(&self.spec, lifecycle, &self.listener, parent, self.on_start);
                std::process::exit(code)
            }
        }
    }

    /// Reaps daemons that died and starts their replacements; call it at
    /// least once a second (the server's maintenance tick). The new
    /// daemons' pids (a server that watches its children must watch them).
    pub fn check(&mut self) -> Vec<Pid> {
        let mut started = Vec::new();
        for i in 0..self.pids.len() {
            let Some(pid) = self.pids[i] else { continue };
            let how = match sys::try_wait(pid) {
                Some(status) => Some(status),
                // Reaped by the server itself (Apache's parent waits for
                // any child, ours included).
                None if !sys::exists(pid) => None,
                None => continue,
            };
            self.respawn(i, pid, how);
            started.extend(self.pids[i]);
        }
        started
    }

    /// The server reaped daemon `pid` (with its own wait), which ended
    /// with wait status `status` (`None`: unknown): start its replacement;
    /// the new pid, if `pid` was one of this group's.
    pub fn replace(&mut self, pid: Pid, status: Option<i32>) -> Option<Pid> {
        let i = self.pids.iter().position(|p| *p == Some(pid))?;
        self.respawn(i, pid, status);
        self.pids[i]
    }

    fn respawn(&mut self, i: usize, pid: Pid, status: Option<i32>) {
        self.pids[i] = None;
        let how = status.map_or_else(|| "is gone".to_string(), describe);
        if status == Some(0) {
            // A daemon that ended itself (recycled; it logged why).
            log::info!(
                target: "oxwsgi",
                "daemon process {pid} of group {} {how}; starting another",
                self.spec.name
            );
        } else {
            log::error!(
                target: "oxwsgi",
                "daemon process {pid} of group {} {how}; starting another",
                self.spec.name
            );
        }
        // One that failed within a second of its start, before it could
        // say why (its Python did not start): the next waits, so a broken
        // interpreter is not a fork loop filling the error log.
        let failed_at_once = status
            .is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) != 0)
            && self.born[i].elapsed() < Duration::from_secs(1);
        let pause = if failed_at_once {
            FAILED_START_PAUSE
        } else {
            Duration::ZERO
        };
        if let Err(e) = self.spawn(i, false, pause) {
            log::error!(target: "oxwsgi", "cannot start a daemon of group {}: {e}", self.spec.name);
        }
    }

    /// Stops the daemons: they finish their requests for up to `grace`,
    /// then are killed. The socket goes too.
    pub fn stop(mut self, grace: Duration) {
        for pid in self.pids() {
            sys::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        loop {
            for slot in &mut self.pids {
                if let Some(pid) = *slot {
                    if sys::try_wait(pid).is_some() || !sys::exists(pid) {
                        *slot = None;
                    }
                }
            }
            if self.pids.iter().all(Option::is_none) {
                break;
            }
            if Instant::now() >= deadline {
                for pid in self.pids() {
                    log::warn!(target: "oxwsgi", "daemon process {pid} of group {} did not stop in time; killed", self.spec.name);
                    sys::kill(pid, libc::SIGKILL);
                    while sys::try_wait(pid).is_none() && sys::exists(pid) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Only if the path is still this group's socket: the next
        // generation of a server may have bound its own there already.
        if self.socket_id.is_some() && file_id(&self.spec.socket) == self.socket_id {
            let _ = std::fs::remove_file(&self.spec.socket);
        }
    }
}

/// The identity (device, inode) of the file at `path`.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// For a server's parent that sleeps between its looks at its children:
/// a daemon's death interrupts the sleep, so it is replaced at once instead
/// of at the next look (Apache's parent looks once a second). `false` in
/// the server's worker processes, which inherit it.
pub fn wake_on_daemon_exit(on: bool) {
    sys::wake_on_child_exit(on);
}

/// How a daemon ended, from its wait status.
pub fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

/// The first generation's maximum requests for daemon `index` of `n`:
/// spread from n/N to N, so that daemons sharing the load evenly do not
/// all recycle at once (which would leave the group with none for the time
/// a replacement takes to start); their replacements take the full count
/// and stay apart.
fn staggered(max: u64, index: usize, n: usize) -> u64 {
    let n = n.max(1) as u64;
    (max * (index as u64 % n + 1) / n).max(1)
}

/// A daemon process, from fork to exit (or to the Python it becomes); the
/// exit status.
fn daemon_main(
    spec: &GroupSpec,
    lifecycle: Lifecycle,
    listener: &UnixListener,
    parent: Pid,
    on_start: fn(),
) -> i32 {
    sys::default_signals();
    // The daemon keeps its own group's token (in `spec`), not the secret
    // that makes every group's, and its own group's metrics only.
    super::auth::forget_secret();
    crate::group_metrics::keep_only(&spec.name);
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
            match sys::share_mapping(at, crate::metrics::Region::SIZE) {
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
pub(super) fn bound_to(parent: Pid) -> bool {
    sys::die_with_parent(libc::SIGTERM);
    std::os::unix::process::parent_id() as Pid == parent
}

/// Starts Python (or adopts the one this process became: `adopted`) and
/// serves the group's requests until the daemon's life ends.
pub(super) fn serve_group(
    spec: &GroupSpec,
    lifecycle: Lifecycle,
    listener: UnixListener,
    adopted: bool,
) -> i32 {
    let o = &spec.options;
    let owner = match (&o.script_user, &o.script_group) {
        (Some(u), _) => sys::user_id(u).map(|id| Some(Owner::User(id))),
        (_, Some(g)) => sys::group_id(g).map(|id| Some(Owner::Group(id))),
        _ => Ok(None),
    };
    let owner = match owner {
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
    if spec.mod_wsgi {
        crate::interpreter::offer_mod_wsgi(crate::interpreter::ModWsgi {
            process_group: spec.name.clone(),
            maximum_processes: o.processes,
            threads_per_process: o.threads,
        });
    }
    // The group's own switch-interval= and interrupt-timeout=, as mod_wsgi
    // 6 (the server's WSGISwitchInterval is for its children).
    crate::interpreter::set_python_settings(crate::interpreter::PythonSettings {
        switch_interval: o.switch_interval,
        ..crate::interpreter::python_settings()
    });
    if let Some(grace) = o.interrupt_timeout {
        crate::timeouts::set_stuck_grace(grace);
    }
    let preload = apps.iter().map(|a| &**a);
    let interpreter = if adopted {
        Interpreter::adopt(o.python_path.clone(), preload)
    } else {
        Interpreter::start_in_worker(o.python_home.clone(), o.python_path.clone(), preload)
    };
    let interpreter = match interpreter {
        Ok(i) => i,
        Err(e) => return fail_slowly(&spec.name, &e.to_string()),
    };
    if let Some(region) = spec.metrics {
        crate::metrics::attach(region, o.threads, Some(&spec.name));
    }
    let life = Life::new(&spec.name, lifecycle);
    {
        let life = life.clone();
        // A request thread that did not come back after its timeout: the
        // process is replaced once the others finish.
        crate::timeouts::on_stuck(Box::new(move |why| {
            crate::metrics::recycled(crate::metrics::RecycleReason::Stuck);
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
    let apps = super::serve::Apps::new(apps, o.threads > 1, o.processes > 1)
        .with_options(o)
        .with_life(life.clone())
        .with_owner(owner)
        .with_admission(spec.admission.clone())
        .with_mounts(spec.mounts.clone());
    let result = super::dispatch::run(listener, apps, o, life.stop_flag());
    if let Err(e) = result {
        log::error!(target: "oxwsgi", "group {}: {e}", spec.name);
    }
    interpreter.shutdown();
    0
}

/// How long a daemon that cannot start waits before it exits: the server's
/// parent starts another at once, and a mistake that fails every start
/// (a user that does not exist, a broken virtualenv) must not become a
/// fork loop filling the error log (mod_wsgi waits 20 s).
const FAILED_START_PAUSE: Duration = Duration::from_secs(5);

pub(super) fn fail_slowly(group: &str, why: &str) -> i32 {
    log::error!(
        target: "oxwsgi",
        "group {group}: {why}; this daemon exits in {} s and another is started",
        FAILED_START_PAUSE.as_secs()
    );
    std::thread::sleep(FAILED_START_PAUSE);
    1
}

/// The name `ps` and `top` show for a daemon of group `name`.
pub(super) fn set_title(name: &str, o: &GroupOptions) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_generation_recycles_apart() {
        assert_eq!(staggered(400, 0, 2), 200);
        assert_eq!(staggered(400, 1, 2), 400);
        assert_eq!(staggered(400, 0, 1), 400);
        assert_eq!(staggered(3, 0, 4), 1);
        assert_eq!(staggered(1000, 2, 4), 750);
    }
}

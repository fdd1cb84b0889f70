//! A process group: N daemon processes serving the group's apps on one unix
//! socket, started from the server's parent process, replaced when one
//! dies, stopped with the server.
//!
//! Daemons are forked from the server's parent (Apache's parent, nginx's
//! master): that process is single-threaded and has no Python (it never
//! starts one), the configuration is already in its memory, and its error
//! log is the daemons' stderr. A daemon then becomes its group's Python
//! (`python-executable`, by default where the server ships oxwsgi's daemon
//! extension module): once it has its identity, limits and directory, it
//! executes the virtualenv's own interpreter, which loads the extension and
//! carries on where the fork left off (`handoff`). That interpreter is the
//! one `python -m venv` linked, statically on Debian, which runs apps
//! faster than the shared libpython a server module must load; without
//! the extension, or with `python-executable=off`, the daemon starts the
//! server's embedded Python itself.
//!
//! The listening socket is made by the parent, so a daemon that is replaced
//! leaves it in place: requests wait in its backlog meanwhile.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, AppOptions};
use crate::interpreter::Interpreter;

use super::handoff::Handoff;
use super::life::{End, Life};
use super::options::{GroupOptions, Lifecycle, PythonExecutable};
use super::serve::Owner;
use super::stderr_log::{self, LogStyle};
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
    /// The server's metrics (shared memory mapped before the fork): the
    /// daemons count their requests there, so the status page shows them.
    pub metrics: Option<&'static crate::metrics::Region>,
    /// How the daemons can become their virtualenv's Python (`None`: the
    /// server ships no daemon extension module).
    pub exec: Option<ExecSpec>,
}

/// What a server gives its daemons to become another Python: oxwsgi's
/// daemon extension module, built for the Python the server embeds, and
/// the format of the server's error log (which stays their stderr).
#[derive(Clone, Debug)]
pub struct ExecSpec {
    pub extension: PathBuf,
    pub log: LogStyle,
    /// The extension's file as the server found it (device, inode, mtime):
    /// one replaced since (a package upgrade) may not be of the server
    /// module's build.
    stamp: Option<(u64, u64, i64)>,
}

impl ExecSpec {
    /// The extension module of `server` (`nginx`, `apache2`): beside the
    /// server's module (the shared object the core is linked into: a
    /// build tree), else where its package puts it
    /// (`/usr/lib/oxwsgi/SERVER/`: Debian's tools take every file in the
    /// servers' module directories for a server module); `None` if neither
    /// is there.
    pub fn find(server: &str, log: LogStyle) -> Option<ExecSpec> {
        let beside = sys::this_object().map(|m| m.with_file_name(EXTENSION_FILE));
        let packaged = std::path::Path::new("/usr/lib/oxwsgi")
            .join(server)
            .join(EXTENSION_FILE);
        beside
            .into_iter()
            .chain([packaged])
            .find(|p| p.is_file())
            .map(|extension| ExecSpec {
                stamp: file_stamp(&extension),
                extension,
                log,
            })
    }
}

/// The daemon extension module's file name.
pub const EXTENSION_FILE: &str = "oxwsgi_daemon.so";

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

impl Group {
    /// Makes the socket and starts the daemons. Call from the server's
    /// single-threaded parent.
    pub fn start(spec: GroupSpec, on_start: fn()) -> io::Result<Group> {
        let _ = std::fs::remove_file(&spec.socket);
        let listener = UnixListener::bind(&spec.socket)?;
        sys::set_backlog(listener.as_raw_fd(), spec.options.listen_backlog)?;
        std::fs::set_permissions(&spec.socket, std::fs::Permissions::from_mode(0o600))?;
        let mut owner = spec.socket_owner;
        if let Some(user) = &spec.options.socket_user {
            let uid = sys::user_id(user).map_err(io::Error::other)?;
            owner = Some((uid, owner.map_or(u32::MAX, |(_, gid)| gid)));
        }
        if let Some((uid, gid)) = owner {
            let gid = (gid != u32::MAX).then_some(gid);
            std::os::unix::fs::chown(&spec.socket, Some(uid), gid)?;
        }
        let mut group = Group {
            pids: vec![None; spec.options.processes.max(1)],
            born: vec![Instant::now(); spec.options.processes.max(1)],
            socket_id: file_id(&spec.socket),
            spec: Arc::new(spec),
            listener,
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

/// The identity and modification time of the file at `path`.
fn file_stamp(path: &std::path::Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime()))
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
    // The daemon goes when the server's parent goes, however it goes.
    sys::die_with_parent(libc::SIGTERM);
    if std::os::unix::process::parent_id() as Pid != parent {
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
    sys::die_with_parent(libc::SIGTERM);
    if std::os::unix::process::parent_id() as Pid != parent {
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
    serve_group(spec, lifecycle, listener, None)
}

/// The interpreter a daemon of `spec` becomes, and how; `None`: it starts
/// the server's embedded Python.
fn python_to_become(spec: &GroupSpec) -> Result<Option<(PathBuf, ExecSpec)>, String> {
    let o = &spec.options;
    let (major, minor) = crate::interpreter::embedded_version();
    let versioned = format!("python{major}.{minor}");
    let program = match &o.python_executable {
        PythonExecutable::Off => return Ok(None),
        PythonExecutable::Path(p) => p.clone(),
        // A virtualenv's (or a prefix's) bin/python3.X; the build's own
        // Python's without one.
        PythonExecutable::Auto => match &o.python_home {
            Some(home) => home.join("bin").join(&versioned),
            None => std::path::Path::new(env!("OXWSGI_BUILD_PYTHON")).with_file_name(&versioned),
        },
    };
    let explicit = matches!(o.python_executable, PythonExecutable::Path(_));
    let Some(exec) = spec.exec.clone() else {
        if explicit {
            return Err(format!(
                "python-executable={}: the server has no {EXTENSION_FILE} beside its module \
                 to load into it",
                program.display()
            ));
        }
        return Ok(None);
    };
    if file_stamp(&exec.extension) != exec.stamp {
        // The handoff is the module's and the extension's private
        // protocol: both must be of one build.
        log::warn!(
            target: "oxwsgi",
            "group {}: {} changed since the server read its configuration (an upgrade?): \
             this daemon runs the server's embedded Python; reload the server to run {}",
            spec.name,
            exec.extension.display(),
            program.display()
        );
        return Ok(None);
    }
    if !program.is_file() {
        if explicit {
            return Err(format!(
                "python-executable={}: no such file",
                program.display()
            ));
        }
        // A prefix or virtualenv without it: the embedded Python checks
        // the home and says what is wrong with it.
        return Ok(None);
    }
    Ok(Some((program, exec)))
}

/// The script the interpreter runs: it checks its version, loads the
/// extension by path (nothing of it is importable from the app's path)
/// and hands over to it; a failure before that waits as `fail_slowly`.
const BOOTSTRAP: &str = r#"import sys, time
try:
    if sys.version_info[:2] != (MAJOR, MINOR):
        raise RuntimeError(f"{sys.executable} is Python {sys.version_info[0]}.{sys.version_info[1]}, oxwsgi was built for Python MAJOR.MINOR (python-executable)")
    from importlib.machinery import ExtensionFileLoader
    from importlib.util import module_from_spec, spec_from_loader
    path, handoff = sys.argv[1], int(sys.argv[2])
    # As the embedded Python's: the app is not a script run from a command line.
    sys.argv[:] = [""]
    loader = ExtensionFileLoader("oxwsgi_daemon", path)
    daemon = module_from_spec(spec_from_loader("oxwsgi_daemon", loader))
    loader.exec_module(daemon)
except BaseException as e:
    sys.stderr.write(f"oxwsgi: a process group's daemon cannot start: {e!r}; it exits in 5 s and another is started\n")
    sys.stderr.flush()
    time.sleep(5)
    sys.exit(1)
sys.exit(daemon.serve(handoff))
"#;

/// Executes `program` with the daemon extension; returns only why that
/// failed.
fn become_python(
    spec: &GroupSpec,
    program: &std::path::Path,
    exec: &ExecSpec,
    lifecycle: &Lifecycle,
    listener: &UnixListener,
    parent: Pid,
    metrics: Option<(std::fs::File, usize, usize)>,
) -> String {
    let handoff = Handoff {
        name: spec.name.clone(),
        words: spec.options.words.clone(),
        apps: spec.apps.clone(),
        maximum_requests: lifecycle.maximum_requests,
        parent,
        listener: listener.as_raw_fd(),
        metrics: metrics
            .as_ref()
            .map(|(f, len, offset)| (f.as_raw_fd(), *len, *offset)),
        log: exec.log,
    };
    let (major, minor) = crate::interpreter::embedded_version();
    let bootstrap = BOOTSTRAP
        .replace("MAJOR", &major.to_string())
        .replace("MINOR", &minor.to_string());
    let run = || -> io::Result<io::Error> {
        let memfd = sys::memfd_with(&handoff.encode())?;
        sys::keep_on_exec(listener.as_raw_fd())?;
        if let Some((f, ..)) = &metrics {
            sys::keep_on_exec(f.as_raw_fd())?;
        }
        let fd = memfd.as_raw_fd().to_string();
        // -I: neither PYTHON* variables nor the user's site-packages (as
        // the embedded Python); -X utf8: UTF-8 mode, as embedded.
        let args = [
            program.as_os_str(),
            "-I".as_ref(),
            "-X".as_ref(),
            "utf8".as_ref(),
            "-c".as_ref(),
            bootstrap.as_ref(),
            exec.extension.as_os_str(),
            fd.as_ref(),
        ];
        Ok(sys::exec(program, &args))
    };
    let e = run().unwrap_or_else(|e| e);
    format!("cannot run {}: {e}", program.display())
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
    if std::os::unix::process::parent_id() as Pid != h.parent {
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
    };
    let program = std::env::current_exe().unwrap_or_default();
    let code = serve_group(&spec, lifecycle, listener, Some(&program));
    // Python is not finalised by its own program either: request threads
    // may still be in it (they had their shutdown timeout).
    sys::exit_now(code)
}

/// Starts Python (or adopts the one this process became: `adopted`, its
/// program) and serves the group's requests until the daemon's life ends.
fn serve_group(
    spec: &GroupSpec,
    lifecycle: Lifecycle,
    listener: UnixListener,
    adopted: Option<&std::path::Path>,
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
    let interpreter = match adopted {
        Some(_) => Interpreter::adopt(o.python_path.clone(), apps.iter().map(|a| &**a)),
        None => Interpreter::start_in_worker(
            o.python_home.clone(),
            o.python_path.clone(),
            apps.iter().map(|a| &**a),
        ),
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
    let python = match adopted {
        Some(program) => program.display().to_string(),
        None => "the server's embedded Python".to_string(),
    };
    log::info!(target: "oxwsgi", "group {}: daemon process {} serving ({python})", spec.name, std::process::id());
    let apps = super::serve::Apps::new(apps, o.threads > 1, o.processes > 1)
        .with_options(o)
        .with_life(life.clone())
        .with_owner(owner);
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

fn fail_slowly(group: &str, why: &str) -> i32 {
    log::error!(
        target: "oxwsgi",
        "group {group}: {why}; this daemon exits in {} s and another is started",
        FAILED_START_PAUSE.as_secs()
    );
    std::thread::sleep(FAILED_START_PAUSE);
    1
}

/// The name `ps` and `top` show for a daemon of group `name`.
fn set_title(name: &str, o: &GroupOptions) {
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
        sys::set_umask(mask);
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
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_replaced_extension_keeps_the_daemons_on_the_embedded_python() {
        let dir = std::env::temp_dir().join(format!("oxwsgi-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ext = dir.join(EXTENSION_FILE);
        std::fs::write(&ext, b"one build").unwrap();
        let options = GroupOptions::parse("g", &["python-executable=/bin/sh"]).unwrap();
        let mut spec = options.into_spec("g", dir.join("g.sock"), None, vec![]);
        assert!(python_to_become(&spec).is_err(), "named, with no extension");
        spec.exec = Some(ExecSpec {
            stamp: file_stamp(&ext),
            extension: ext.clone(),
            log: LogStyle::Nginx,
        });
        let (program, _) = python_to_become(&spec).unwrap().unwrap();
        assert_eq!(program, std::path::Path::new("/bin/sh"));
        // An upgrade puts another build in its place.
        std::fs::write(dir.join("next"), b"another build").unwrap();
        std::fs::rename(dir.join("next"), &ext).unwrap();
        assert!(python_to_become(&spec).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_generation_recycles_apart() {
        assert_eq!(staggered(400, 0, 2), 200);
        assert_eq!(staggered(400, 1, 2), 400);
        assert_eq!(staggered(400, 0, 1), 400);
        assert_eq!(staggered(3, 0, 4), 1);
        assert_eq!(staggered(1000, 2, 4), 750);
    }
}

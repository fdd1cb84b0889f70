//! A process group: N daemon processes serving the group's apps on one unix
//! socket, started from the server's parent process, replaced when one
//! dies, stopped with the server.
//!
//! Daemons are forked from the server's parent (Apache's parent, nginx's
//! master), not exec'ed: that process is single-threaded and has no Python
//! (it never starts one), the configuration is already in its memory, and
//! its error log is the daemons' stderr. Exec would allow a different
//! libpython per group, which the embedded library cannot offer anyway (a
//! group's virtualenv must be of the Python oxwsgi was built for, as in
//! embedded mode), at the cost of a second binary and of passing the
//! configuration to it.
//!
//! The listening socket is made by the parent, so a daemon that is replaced
//! leaves it in place: requests wait in its backlog meanwhile.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::app::{App, AppOptions};
use crate::interpreter::Interpreter;

use super::sys::{self, Pid};

/// What a group is made of (from `WSGIDaemonProcess` or
/// `wsgi_process_group`).
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: String,
    pub processes: usize,
    pub threads: usize,
    pub user: Option<String>,
    pub group: Option<String>,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    /// The daemons' working directory.
    pub home: Option<PathBuf>,
    pub umask: Option<u32>,
    /// `LANG` and `LC_ALL` for the daemons.
    pub lang: Option<String>,
    /// The name `ps` shows (default `(wsgi:NAME)`, as mod_wsgi).
    pub display_name: Option<String>,
    /// Where the group listens.
    pub socket: PathBuf,
    /// Who may connect (the server's worker user and group): the socket is
    /// given to them, mode 0600. `None`: the current user keeps it.
    pub socket_owner: Option<(u32, u32)>,
    /// The group's apps, by the number the server names in a request.
    pub apps: Vec<AppOptions>,
}

/// A running group, owned by the server's parent process.
pub struct Group {
    spec: Arc<GroupSpec>,
    listener: UnixListener,
    pids: Vec<Option<Pid>>,
    /// Runs first in every new daemon (the server installs its logger).
    on_start: fn(),
}

impl Group {
    /// Makes the socket and starts the daemons. Call from the server's
    /// single-threaded parent.
    pub fn start(spec: GroupSpec, on_start: fn()) -> io::Result<Group> {
        let _ = std::fs::remove_file(&spec.socket);
        let listener = UnixListener::bind(&spec.socket)?;
        std::fs::set_permissions(&spec.socket, std::fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = spec.socket_owner {
            std::os::unix::fs::chown(&spec.socket, Some(uid), Some(gid))?;
        }
        let mut group = Group {
            pids: vec![None; spec.processes.max(1)],
            spec: Arc::new(spec),
            listener,
            on_start,
        };
        for i in 0..group.pids.len() {
            group.spawn(i)?;
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

    fn spawn(&mut self, index: usize) -> io::Result<()> {
        let parent = std::process::id() as Pid;
        match sys::fork()? {
            Some(pid) => {
                self.pids[index] = Some(pid);
                Ok(())
            }
            None => {
                let code = daemon_main(&self.spec, &self.listener, parent, self.on_start);
                std::process::exit(code)
            }
        }
    }

    /// Reaps daemons that died and starts their replacements; call it at
    /// least once a second (the server's maintenance tick).
    pub fn check(&mut self) {
        for i in 0..self.pids.len() {
            let Some(pid) = self.pids[i] else { continue };
            let how = match sys::try_wait(pid) {
                Some(status) => describe(status),
                // Reaped by the server itself (Apache's parent waits for
                // any child, ours included).
                None if !sys::exists(pid) => "exited".to_string(),
                None => continue,
            };
            self.respawn(i, pid, &how);
        }
    }

    /// The server reaped daemon `pid` (with its own wait): start its
    /// replacement; the new pid, if `pid` was one of this group's.
    pub fn replace(&mut self, pid: Pid, how: &str) -> Option<Pid> {
        let i = self.pids.iter().position(|p| *p == Some(pid))?;
        self.respawn(i, pid, how);
        self.pids[i]
    }

    fn respawn(&mut self, i: usize, pid: Pid, how: &str) {
        self.pids[i] = None;
        log::error!(
            target: "oxwsgi",
            "daemon process {pid} of group {} {how}; starting another",
            self.spec.name
        );
        if let Err(e) = self.spawn(i) {
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
        let _ = std::fs::remove_file(&self.spec.socket);
    }
}

/// How a daemon ended, from its wait status.
pub fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

/// A daemon process, from fork to exit; the exit status.
fn daemon_main(spec: &GroupSpec, listener: &UnixListener, parent: Pid, on_start: fn()) -> i32 {
    sys::default_signals();
    // The daemon goes when the server's parent goes, however it goes.
    sys::die_with_parent(libc::SIGTERM);
    if std::os::unix::process::parent_id() as Pid != parent {
        return 0;
    }
    sys::close_other_fds(&[0, 1, 2, listener.as_raw_fd()]);
    // Before any thread exists: every thread inherits the mask, and one
    // thread waits for SIGTERM.
    sys::block_term();
    on_start();
    let title = spec
        .display_name
        .clone()
        .unwrap_or_else(|| format!("(wsgi:{})", spec.name));
    sys::set_name(&title);
    if let Some(mask) = spec.umask {
        sys::set_umask(mask);
    }
    if let Some(lang) = &spec.lang {
        sys::set_locale_env(lang);
    }
    if let Err(e) = sys::switch_user(spec.user.as_deref(), spec.group.as_deref()) {
        log::error!(target: "oxwsgi", "group {}: {e}", spec.name);
        return 1;
    }
    if let Some(home) = &spec.home {
        if let Err(e) = std::env::set_current_dir(home) {
            log::error!(target: "oxwsgi", "group {}: cannot change to {}: {e}", spec.name, home.display());
            return 1;
        }
    }
    let apps: Vec<Arc<App>> = spec
        .apps
        .iter()
        .cloned()
        .map(|o| Arc::new(App::new(o)))
        .collect();
    let interpreter = match Interpreter::start_in_worker(
        spec.python_home.clone(),
        spec.python_path.clone(),
        apps.iter().map(|a| &**a),
    ) {
        Ok(i) => i,
        Err(e) => {
            log::error!(target: "oxwsgi", "group {}: {e}", spec.name);
            return 1;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = std::thread::Builder::new()
            .name("oxwsgi-term".into())
            .spawn(move || {
                sys::wait_for_term();
                stop.store(true, std::sync::atomic::Ordering::Release);
            });
    }
    let listener = match listener.try_clone() {
        Ok(l) => l,
        Err(e) => {
            log::error!(target: "oxwsgi", "group {}: {e}", spec.name);
            return 1;
        }
    };
    log::info!(target: "oxwsgi", "group {}: daemon process {} serving", spec.name, std::process::id());
    let apps = super::serve::Apps::new(apps, spec.threads > 1, spec.processes > 1);
    let result = super::dispatch::run(listener, apps, spec.threads, stop);
    if let Err(e) = result {
        log::error!(target: "oxwsgi", "group {}: {e}", spec.name);
    }
    interpreter.shutdown();
    0
}

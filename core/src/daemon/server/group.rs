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
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::daemon::process::entry::{FAILED_START_PAUSE, daemon_main};
use crate::daemon::spec::GroupSpec;
use crate::daemon::sys::{self, Pid};

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
        let listener =
            crate::daemon::server::listen::bind(&spec.socket, owner, spec.options.listen_backlog)?;
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

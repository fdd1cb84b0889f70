//! A process that owns a server's process groups: forked from the
//! server's single-threaded master (nginx's), it starts the groups, replaces
//! a daemon that dies within a tenth of a second, and stops them all (their
//! requests get the shutdown timeout) when the master goes, however it
//! goes (on SIGTERM too, and then its warden starts another).
//!
//! Apache's parent supervises its groups itself (it tells modules about the
//! children it reaps). nginx's master reaps every child it has with
//! `waitpid(-1)` and tells no module, so the daemons must be another
//! process's children: this one's. The master only ever sees the manager.
//!
//! The master's end is a lifeline, not the parent-death signal: nginx reads
//! its configuration (and a module starts the manager) before it forks
//! itself into the background, so the manager's parent is not the master
//! that goes on. The master keeps the lifeline's write end (its workers
//! close theirs), and the manager stops its groups when the last holder
//! is gone.
//!
//! nginx's master starts nothing again when the manager dies, so the
//! manager has a warden: a process of its own (`oxwsgi: warden`) that holds
//! the groups' sockets too and does nothing but watch. When the manager
//! dies, however it dies, its daemons finish their requests and go (their
//! parent-death signal) while the warden starts another manager on the same
//! sockets within a tick (connections waiting there are served by the new
//! daemons). When the warden dies, the manager starts another. Each
//! watches the other, parent or child alike; only both killed at once, or
//! the master, ends the groups.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::daemon::server::group::{Bound, Group};
use crate::daemon::spec::GroupSpec;
use crate::daemon::sys::{self, Pid};

/// How often the manager looks at its daemons.
const TICK: Duration = Duration::from_millis(100);

/// A running manager, seen from the master.
pub struct Manager {
    pub pid: Pid,
    /// While this is open (in the master) the manager serves; close it in
    /// every other process that inherits it (nginx's workers).
    pub lifeline: OwnedFd,
}

/// Starts a manager for `groups`, named `title` in `ps`. Call from the
/// server's single-threaded master. `on_start` runs first in the manager
/// and in every daemon (the server's logger); `log_fd`, when given, becomes
/// their standard error (the server's error log).
pub fn spawn(
    groups: Vec<GroupSpec>,
    title: &str,
    log_fd: Option<i32>,
    on_start: fn(),
) -> io::Result<Manager> {
    let (read, write) = sys::pipe()?;
    match sys::fork()? {
        Some(pid) => {
            drop(read);
            Ok(Manager {
                pid,
                lifeline: write,
            })
        }
        None => {
            drop(write);
            if let Some(fd) = log_fd {
                sys::use_as_stderr(fd);
            }
            // Forked while nginx reads its configuration, before it
            // detaches from whoever started it: the manager and its daemons
            // must not hold that one's terminal or pipe open (a
            // `ssh host nginx`, or a script reading nginx's output, would
            // wait for them to end).
            sys::null_stdio();
            sys::default_signals();
            sys::close_other_fds(&[0, 1, 2, read.as_raw_fd()]);
            // Taken by `wait_signal`, and unblocked again in each daemon.
            sys::block_signals();
            on_start();
            let bound: Vec<Bound> = groups
                .into_iter()
                .filter_map(|spec| {
                    let name = spec.name.clone();
                    Bound::new(spec)
                        .map_err(|e| {
                            log::error!(target: "oxwsgi", "cannot start process group {name}: {e}")
                        })
                        .ok()
                })
                .collect();
            let watch = Watch {
                bound: &bound,
                title,
                lifeline: &read,
                on_start,
            };
            let code = watch.manage(None);
            sys::exit_now(code)
        }
    }
}

/// What the manager and its warden share: the bound groups, the title, the
/// master's lifeline.
struct Watch<'a> {
    bound: &'a [Bound],
    title: &'a str,
    lifeline: &'a OwnedFd,
    on_start: fn(),
}

impl Watch<'_> {
    /// The manager: starts the groups' daemons and replaces those that die;
    /// starts a warden (again when one dies) unless `warden` names a live
    /// one (its parent, after the last manager died). Stops the groups on
    /// SIGTERM or when the master is gone.
    fn manage(&self, warden: Option<Pid>) -> i32 {
        sys::set_name(self.title);
        sys::set_cmdline(self.title);
        let mut groups = Vec::new();
        for b in self.bound {
            match b
                .try_clone()
                .and_then(|b| Group::start_bound(b, self.on_start))
            {
                Ok(g) => groups.push(g),
                Err(e) => log::error!(
                    target: "oxwsgi",
                    "cannot start process group {}: {e}",
                    b.name()
                ),
            }
        }
        let mut warden = warden;
        loop {
            if sys::wait_signal(TICK) == Some(libc::SIGTERM) {
                break;
            }
            if sys::closed(self.lifeline.as_raw_fd()) {
                log::info!(target: "oxwsgi", "the server's master is gone; stopping the process groups");
                break;
            }
            for g in &mut groups {
                g.check();
            }
            // The warden is this manager's parent (after the last manager
            // died) or its child.
            if warden.is_none_or(sys::relative_gone) {
                if let Some(w) = warden {
                    log::error!(target: "oxwsgi", "the process groups' warden (process {w}) is gone; starting another");
                }
                match sys::fork() {
                    Ok(Some(pid)) => warden = Some(pid),
                    Ok(None) => {
                        // The new warden: the groups are the manager's.
                        drop(groups);
                        let me = std::os::unix::process::parent_id() as Pid;
                        sys::exit_now(self.ward(me))
                    }
                    Err(e) => {
                        log::error!(target: "oxwsgi", "cannot start a warden for the process groups: {e}")
                    }
                }
            }
        }
        for g in groups {
            let grace = g.spec().options.lifecycle.shutdown_timeout + Duration::from_secs(1);
            g.stop(grace);
        }
        0
    }

    /// The warden: watches `manager` and, when it is gone, starts another
    /// (which finds this warden its parent). Ends when the master is gone
    /// (the manager stops the groups then).
    fn ward(&self, mut manager: Pid) -> i32 {
        let title = format!("{} warden", self.title);
        sys::set_name("oxwsgi: warden");
        sys::set_cmdline(&title);
        loop {
            let signal = sys::wait_signal(TICK);
            if signal == Some(libc::SIGTERM) || sys::closed(self.lifeline.as_raw_fd()) {
                return 0;
            }
            if !sys::relative_gone(manager) {
                continue;
            }
            log::error!(
                target: "oxwsgi",
                "the process groups' manager (process {manager}) is gone; starting another"
            );
            match sys::fork() {
                Ok(Some(pid)) => manager = pid,
                Ok(None) => {
                    let me = std::os::unix::process::parent_id() as Pid;
                    sys::exit_now(self.manage(Some(me)))
                }
                Err(e) => {
                    log::error!(target: "oxwsgi", "cannot start a manager for the process groups: {e}")
                }
            }
        }
    }
}

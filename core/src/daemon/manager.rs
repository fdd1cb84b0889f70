//! A process that owns a server's process groups: forked from the
//! server's single-threaded master (nginx's), it starts the groups, replaces
//! a daemon that dies within a tenth of a second, and stops them all (their
//! requests get the shutdown timeout) on SIGTERM or when the master goes,
//! however it goes.
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

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::group::{Group, GroupSpec};
use super::sys::{self, Pid};

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
            let code = manage(groups, title, &read, on_start);
            sys::exit_now(code)
        }
    }
}

fn manage(specs: Vec<GroupSpec>, title: &str, lifeline: &OwnedFd, on_start: fn()) -> i32 {
    sys::default_signals();
    sys::close_other_fds(&[0, 1, 2, lifeline.as_raw_fd()]);
    // Taken by `wait_signal` below, and unblocked again in each daemon.
    sys::block_signals();
    on_start();
    sys::set_name(title);
    sys::set_cmdline(title);
    let mut groups = Vec::new();
    for spec in specs {
        let name = spec.name.clone();
        match Group::start(spec, on_start) {
            Ok(g) => groups.push(g),
            Err(e) => log::error!(target: "oxwsgi", "cannot start process group {name}: {e}"),
        }
    }
    loop {
        if sys::wait_signal(TICK) == Some(libc::SIGTERM) {
            break;
        }
        if sys::closed(lifeline.as_raw_fd()) {
            log::info!(target: "oxwsgi", "the server's master is gone; stopping the process groups");
            break;
        }
        for g in &mut groups {
            g.check();
        }
    }
    for g in groups {
        let grace = g.spec().options.lifecycle.shutdown_timeout + Duration::from_secs(1);
        g.stop(grace);
    }
    0
}

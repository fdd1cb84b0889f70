//! The system calls the command needs beyond std: who runs it, waiting for
//! signals, and tying the server's life to the command's.

use std::io;
use std::time::Duration;

/// Whether the command runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The signals the command handles: blocked in every thread from now on,
/// and taken with `wait_signal` (a server it starts gets the default
/// mask: std's spawn resets it in the child).
const HANDLED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, and sigemptyset/sigaddset only write
    // into the live local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

pub fn block_signals() {
    let set = handled_set();
    // SAFETY: blocks the signals of a live set in the calling thread.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits up to `timeout` for a handled signal; which one.
pub fn wait_signal(timeout: Duration) -> Option<i32> {
    let set = handled_set();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: reads the live set and timeout; no siginfo is asked for.
    let s = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (s > 0).then_some(s)
}

/// The server `cmd` starts gets SIGTERM when the command ends, however it
/// ends (killed too), so no server outlives it; and it gets the signals
/// the command blocks for itself (a mask survives exec).
pub fn end_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let set = handled_set();
    // SAFETY: the closure runs in the forked child before exec and makes
    // async-signal-safe system calls only (sigprocmask, prctl), reading a
    // set copied into it.
    unsafe {
        cmd.pre_exec(move || {
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether any process is left in process group `pgid` (a server started
/// as its leader: its workers, and every process they started).
pub fn group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 to a process group only checks that it exists.
    unsafe { libc::kill(-(pgid as libc::pid_t), 0) == 0 }
}

/// Sends `signal` to the whole process group `pgid`.
pub fn kill_group(pgid: u32, signal: i32) {
    // SAFETY: the group of a server this command started and waited for:
    // only the processes it left behind are in it.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) };
}

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill takes a pid and a signal; the pid is a child of ours
    // not yet reaped, so it is not another process's.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// The uid and primary gid of user `name` (from /etc/passwd, where
/// Debian keeps its service users).
pub fn ids_of(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.first() != Some(&name) {
            return None;
        }
        Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
    })
}

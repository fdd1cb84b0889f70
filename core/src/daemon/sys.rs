//! The system calls of daemons and their groups that std does not offer:
//! epoll, fork, signals, identities, limits.

use std::io;

/// An epoll set whose descriptors are armed one-shot: a readiness wakes
/// one waiting thread, and the descriptor stays quiet until that thread
/// arms it again.
pub struct Epoll {
    fd: std::os::fd::OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes flags and returns a new descriptor.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor this process owns alone.
        let fd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: i32, fd: i32, token: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl reads one live epoll_event (ignored for DEL).
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Adds `fd`, armed, reported as `token`.
    pub fn add(&self, fd: i32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Arms `fd` again after its readiness was taken.
    pub fn rearm(&self, fd: i32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token)
    }

    pub fn delete(&self, fd: i32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout_ms` for one ready descriptor; its token.
    pub fn wait_one(&self, timeout_ms: i32) -> io::Result<Option<u64>> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: epoll_wait writes at most 1 event into the live `ev`.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), &mut ev, 1, timeout_ms) };
        match n {
            1 => Ok(Some(ev.u64)),
            0 => Ok(None),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// Whether bytes wait in socket `fd`'s receive queue.
pub fn bytes_waiting(fd: i32) -> bool {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a pointer to a live local.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    r == 0 && n > 0
}

/// A pipe (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the live array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    Ok((r, w))
}

/// Whether the pipe's read end `fd` sees its every writer gone (nothing
/// is ever written to a lifeline).
pub fn closed(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes one live pollfd; a zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLIN) != 0
}

/// The local time: year, month, day, hour, minute, second.
pub fn local_time() -> (i32, i32, i32, i32, i32, i32) {
    // SAFETY: time and localtime_r write into live locals; a zeroed tm is
    // a valid output buffer.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        (
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
        )
    }
}

/// Makes `fd` this process's standard error.
pub fn use_as_stderr(fd: i32) {
    if fd != 2 {
        // SAFETY: dup2 between descriptors; a bad `fd` is only an error.
        unsafe { libc::dup2(fd, 2) };
    }
}

/// A process id.
pub type Pid = libc::pid_t;

/// Forks. In the child `Ok(None)`; in the parent `Ok(Some(child))`.
///
/// The caller must be single-threaded (a server's master or parent
/// process): the child has only the calling thread, and any lock another
/// thread held would stay locked in it.
pub fn fork() -> io::Result<Option<Pid>> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // single-thread requirement above is the caller's (documented).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Reaps `pid` if it exited; `Some(status)` then.
pub fn try_wait(pid: Pid) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid writes one int through a pointer to a live local.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (r == pid).then_some(status)
}

/// Whether process `pid` exists (a server may reap its children itself:
/// Apache's parent waits for any child, ours included).
pub fn exists(pid: Pid) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `signal` to `pid`.
pub fn kill(pid: Pid, signal: i32) {
    // SAFETY: kill takes plain integers; a process that is gone is ESRCH.
    unsafe { libc::kill(pid, signal) };
}

/// Asks the kernel to send `signal` to this process when its parent dies.
pub fn die_with_parent(signal: i32) {
    // SAFETY: PR_SET_PDEATHSIG takes the signal as an integer argument.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) };
}

/// Closes every descriptor of this process except `keep` (the child of a
/// server must not hold the server's listening sockets or its files).
pub fn close_other_fds(keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing a descriptor number this process has; nothing in
        // this freshly forked child uses those descriptors.
        unsafe { libc::close(fd) };
    }
}

/// Restores the default disposition of the signals servers handle, and
/// unblocks them (a forked child inherits the server's).
pub fn default_signals() {
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGCHLD,
        libc::SIGPIPE,
        libc::SIGWINCH,
        libc::SIGQUIT,
    ] {
        // SAFETY: setting a signal's disposition to SIG_DFL (SIGPIPE: SIG_IGN,
        // so a closed socket is an error, not death).
        unsafe {
            libc::signal(
                sig,
                if sig == libc::SIGPIPE {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                },
            );
        }
    }
    // SAFETY: an empty set, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// The signals a daemon's monitor takes (`wait_signal`): SIGTERM (stop),
/// SIGUSR1 (graceful restart), SIGXCPU (CPU time limit).
fn life_signals() -> libc::sigset_t {
    // SAFETY: a set initialised by sigemptyset, then added to, before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGUSR1, libc::SIGXCPU] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the monitor's signals in the calling thread (and the threads it
/// starts after), so that only `wait_signal` takes them.
pub fn block_signals() {
    let set = life_signals();
    // SAFETY: a valid set; the old mask is not asked for.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits up to `timeout` for one of the monitor's signals; which one came.
pub fn wait_signal(timeout: std::time::Duration) -> Option<i32> {
    let set = life_signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a valid set and timespec; no siginfo is asked for.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Ends the process at once, without running destructors or Python's
/// finalisation (threads may still be in the app).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// Sets a resource limit (soft and hard).
pub fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads one live rlimit struct.
    if unsafe { libc::setrlimit(resource, &lim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the process's nice value.
pub fn set_priority(nice: i32) -> io::Result<()> {
    // SAFETY: setpriority takes plain integers (0: this process).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks the calling thread as a batch thread (`SCHED_BATCH`): when it is
/// woken it does not preempt the thread that woke it, but waits for that
/// one to sleep or use up its slice. Its share of the CPU and its nice
/// value are unchanged.
pub fn batch_scheduling() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads one live sched_param; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a listening socket's backlog (listen(2) again on a listening
/// socket changes it).
pub fn set_backlog(fd: i32, backlog: u32) -> io::Result<()> {
    // SAFETY: listen on a descriptor the caller owns.
    if unsafe { libc::listen(fd, backlog.min(i32::MAX as u32) as i32) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a socket's send or receive buffer (`SO_SNDBUF`, `SO_RCVBUF`).
pub fn set_buffer(fd: i32, option: i32, bytes: usize) {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt reads one int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// The uid of `user` (a name, or `#uid`).
pub fn user_id(user: &str) -> Result<u32, String> {
    if let Some(n) = user.strip_prefix('#') {
        return n.parse().map_err(|_| format!("user {user:?}"));
    }
    let name = std::ffi::CString::new(user).map_err(|_| format!("user {user:?}"))?;
    // SAFETY: getpwnam returns null or a pointer to a static record, read at
    // once (the caller is single-threaded: a server's parent).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(format!("user {user:?} does not exist"));
    }
    // SAFETY: pw is the non-null record just returned.
    Ok(unsafe { (*pw).pw_uid })
}

/// The gid of `group` (a name, or `#gid`).
pub fn group_id(group: &str) -> Result<u32, String> {
    if let Some(n) = group.strip_prefix('#') {
        return n.parse().map_err(|_| format!("group {group:?}"));
    }
    let gname = std::ffi::CString::new(group).map_err(|_| format!("group {group:?}"))?;
    // SAFETY: as for getpwnam in `user_id`.
    let gr = unsafe { libc::getgrnam(gname.as_ptr()) };
    if gr.is_null() {
        return Err(format!("group {group:?} does not exist"));
    }
    // SAFETY: gr is the non-null record just returned.
    Ok(unsafe { (*gr).gr_gid })
}

/// Runs as `user` (and its group, or `group`), with the user's
/// supplementary groups from /etc/group or those of `extra`. Only root may
/// change; others keep their identity.
pub fn switch_user(
    user: Option<&str>,
    group: Option<&str>,
    extra: Option<&[String]>,
) -> Result<(), String> {
    use std::ffi::CString;
    let Some(user) = user else {
        return Ok(());
    };
    let name = CString::new(user).map_err(|_| format!("user {user:?}"))?;
    // SAFETY: getpwnam returns null or a pointer to a static record, read at
    // once (the process is single-threaded here).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(format!("user {user:?} does not exist"));
    }
    // SAFETY: pw is the non-null record just returned.
    let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Some(group) = group {
        gid = group_id(group)?;
    }
    let extra = match extra {
        Some(names) => Some(
            std::iter::once(Ok(gid))
                .chain(names.iter().map(|g| group_id(g)))
                .collect::<Result<Vec<u32>, String>>()?,
        ),
        None => None,
    };
    // SAFETY: plain system calls with integer, C-string and slice
    // arguments (the slice's length passed with it), in the order that
    // keeps the right to change (groups first, the user last).
    let ok = unsafe {
        libc::setgid(gid) == 0
            && match &extra {
                Some(ids) => libc::setgroups(ids.len(), ids.as_ptr()) == 0,
                None => libc::initgroups(name.as_ptr(), gid) == 0,
            }
            && libc::setuid(uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cannot become {user}: {}",
            io::Error::last_os_error()
        ))
    }
}

/// Sets the process's name as `ps` and `top` show it (the first 15 bytes).
pub fn set_name(name: &str) {
    let Ok(c) = std::ffi::CString::new(
        name.as_bytes()
            .iter()
            .copied()
            .take(15)
            .collect::<Vec<u8>>(),
    ) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of up to 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
}

/// Sets what `ps -f`, `ps aux` and `pgrep -f` show as the process's command
/// line, as mod_wsgi does for its display-name: the title is written over
/// the command line's own memory (the rest of it zeroed; a longer title is
/// cut there). Only in a freshly forked, single-threaded daemon.
pub fn set_cmdline(title: &str) {
    let Some((start, end)) = cmdline_area() else {
        return;
    };
    let len = end.saturating_sub(start);
    if len < 2 {
        return;
    }
    let n = title.len().min(len - 1);
    // SAFETY: [start, end) is this process's command line as the kernel
    // reports it: the strings argv points to, in the initial stack's
    // writable memory. The caller is the only thread, and nothing holds a
    // Rust reference to those bytes.
    unsafe {
        let p = start as *mut u8;
        std::ptr::copy_nonoverlapping(title.as_ptr(), p, n);
        std::ptr::write_bytes(p.add(n), 0, len - n);
    }
}

/// Where the command line lies: fields 48 and 49 of /proc/self/stat.
fn cmdline_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The name (field 2) may hold spaces: count fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    Some((start, end))
}

/// Sets the file mode creation mask.
pub fn set_umask(mask: u32) {
    // SAFETY: umask takes a plain integer.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Sets an environment variable. Only while the process is
/// single-threaded (a daemon before it starts Python and its threads).
pub fn set_env(name: &str, value: &str) {
    // SAFETY: the caller is single-threaded (see above), so nothing reads
    // the environment concurrently.
    unsafe { std::env::set_var(name, value) };
}

extern "C" fn on_child_exit(_: libc::c_int) {}

/// Makes the death of a child interrupt the calling process's sleeps (a
/// no-op handler for SIGCHLD instead of the default, ignoring, one), so a
/// server's parent that sleeps between its looks at its children (Apache's
/// sleeps a second) reaps a daemon, and starts its replacement, at once.
/// Other system calls are restarted (`SA_RESTART`). `on`: false puts the
/// default back (in a server's worker processes).
pub fn wake_on_child_exit(on: bool) {
    // SAFETY: a zeroed sigaction with its handler and flags set and an
    // empty mask; the handler is async-signal-safe (it does nothing).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = if on {
            on_child_exit as extern "C" fn(libc::c_int) as libc::sighandler_t
        } else {
            libc::SIG_DFL
        };
        sa.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut());
    }
}

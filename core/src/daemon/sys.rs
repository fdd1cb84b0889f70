//! The system calls of daemons and their groups that std does not offer:
//! epoll, fork, signals, identities, limits, and exec with the descriptors
//! a daemon passes on to the Python it becomes.

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

/// Waits up to `timeout_ms` for `fd` to be readable (or hung up).
pub fn wait_readable(fd: i32, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes one live pollfd.
    match unsafe { libc::poll(&mut p, 1, timeout_ms) } {
        n if n >= 0 => Ok(n > 0),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Sends all of `bytes` on socket `fd` at once, without blocking and
/// without SIGPIPE: for the few bytes that open a connection, which its
/// empty buffer always takes.
pub fn send_now(fd: i32, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: sends from a live slice on a socket the caller owns.
    let n = unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::other("the socket took only part of a frame"));
    }
    Ok(())
}

/// The local time, broken down, and its microseconds.
pub fn local_tm() -> (libc::tm, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let t = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r reads a live time_t and writes a live tm; a
    // zeroed tm is a valid output buffer.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    (tm, now.subsec_micros())
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

/// Whether `pid`, a child of this process or its parent, is gone (a child
/// is reaped here). A parent that died is gone at once, whoever reaps it.
pub fn relative_gone(pid: Pid) -> bool {
    let mut status = 0;
    // SAFETY: waitpid writes one int through a pointer to a live local.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => false,
        r if r == pid => true,
        // Not a child: the parent, or the one that was.
        _ => std::os::unix::process::parent_id() as Pid != pid,
    }
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
/// With close_range(2) (Linux 5.9), which needs no /proc; else every
/// number up to the descriptor limit.
pub fn close_other_fds(keep: &[i32]) {
    let mut keep: Vec<i32> = keep.iter().copied().filter(|fd| *fd >= 0).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: u32 = 0;
    for fd in keep.iter().map(|fd| *fd as u32).chain([u32::MAX]) {
        if fd > from && !close_range(from, fd - 1) {
            close_each(from, fd - 1);
        }
        from = fd.saturating_add(1);
    }
}

/// close_range(2): false where the kernel does not have it.
fn close_range(first: u32, last: u32) -> bool {
    // SAFETY: the system call takes two descriptor numbers and flags (0);
    // nothing in this freshly forked child uses those descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) == 0 }
}

/// Closes each descriptor number in `first..=last` below the process's
/// descriptor limit.
fn close_each(first: u32, last: u32) {
    let max = u32::try_from(descriptor_limit()).unwrap_or(u32::MAX);
    for fd in first..=last.min(max.saturating_sub(1)) {
        // SAFETY: closing a descriptor number (a closed one is EBADF);
        // nothing in this freshly forked child uses those descriptors.
        unsafe { libc::close(fd as i32) };
    }
}

/// How many descriptors this process may have open (its soft
/// RLIMIT_NOFILE, at most 2^20; 1024 when it cannot be read).
pub fn descriptor_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one live rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as usize
    } else {
        1024
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
    account(user, None).map(|(_, uid, _)| uid)
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

/// `user`'s name (as C wants it), uid and primary gid (`group`'s, when
/// given). The caller is single-threaded (a server's parent reading its
/// configuration, or a daemon before it starts threads).
fn account(user: &str, group: Option<&str>) -> Result<(std::ffi::CString, u32, u32), String> {
    let name = std::ffi::CString::new(user).map_err(|_| format!("user {user:?}"))?;
    // SAFETY: getpwnam returns null or a pointer to a static record, read at
    // once (the caller is single-threaded: see above).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(format!("user {user:?} does not exist"));
    }
    // SAFETY: pw is the non-null record just returned.
    let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Some(group) = group {
        gid = group_id(group)?;
    }
    Ok((name, uid, gid))
}

/// Who `user` (with `group` as its primary group, and `extra` as its
/// supplementary groups, else those /etc/group gives it) is: its uid and
/// every gid it holds, as `switch_user` would make it.
pub fn identity_of(
    user: &str,
    group: Option<&str>,
    extra: Option<&[String]>,
) -> Result<(u32, Vec<u32>), String> {
    let (name, uid, gid) = account(user, group)?;
    let mut gids = vec![gid];
    match extra {
        Some(names) => {
            for g in names {
                gids.push(group_id(g)?);
            }
        }
        None => {
            let mut n: libc::c_int = 64;
            let mut found = vec![0 as libc::gid_t; n as usize];
            // SAFETY: getgrouplist writes at most n gids into `found`, and
            // the count it has into n; on -1 (too small) n is the count
            // needed, and the call is made again with room for it.
            unsafe {
                if libc::getgrouplist(name.as_ptr(), gid, found.as_mut_ptr(), &mut n) == -1 {
                    found.resize(n.max(0) as usize, 0);
                    libc::getgrouplist(name.as_ptr(), gid, found.as_mut_ptr(), &mut n);
                }
            }
            found.truncate(n.max(0) as usize);
            gids.extend(found);
        }
    }
    Ok((uid, gids))
}

/// Runs as `user` (and its group, or `group`), with the user's
/// supplementary groups from /etc/group or those of `extra`. Only root may
/// change; others keep their identity.
pub fn switch_user(
    user: Option<&str>,
    group: Option<&str>,
    extra: Option<&[String]>,
) -> Result<(), String> {
    let Some(user) = user else {
        return Ok(());
    };
    let (name, uid, gid) = account(user, group)?;
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

/// Sets the file mode creation mask; the one it replaced.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask takes a plain integer.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Sets an environment variable. Only while the process is
/// single-threaded (a daemon before it starts Python and its threads).
pub fn set_env(name: &str, value: &str) {
    // SAFETY: the caller is single-threaded (see above), so nothing reads
    // the environment concurrently.
    unsafe { std::env::set_var(name, value) };
}

/// Removes an environment variable. Only while the process is
/// single-threaded (a daemon before it becomes its Python).
pub fn unset_env(name: &std::ffi::OsStr) {
    // SAFETY: the caller is single-threaded (see above), so nothing reads
    // the environment concurrently.
    unsafe { std::env::remove_var(name) };
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

/// A new anonymous memory file holding `bytes`, read from its start, open
/// across exec (a daemon's handoff to the program it becomes).
pub fn memfd_with(bytes: &[u8]) -> io::Result<std::fs::File> {
    use std::io::{Seek, Write};
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create reads a NUL-terminated name; no flags (the
    // descriptor must survive exec).
    let fd = unsafe { libc::memfd_create(c"oxwsgi-handoff".as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and owned by nothing else.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(bytes)?;
    f.seek(io::SeekFrom::Start(0))?;
    Ok(f)
}

/// Lets `fd` stay open across exec.
pub fn keep_on_exec(fd: i32) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor number; a bad one is an error.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces this process with `program` run with `args` (`args[0]` is
/// the name it sees for itself); returns only on failure.
pub fn exec(program: &std::path::Path, args: &[&std::ffi::OsStr]) -> io::Error {
    use std::os::unix::ffi::OsStrExt;
    let c = |s: &std::ffi::OsStr| std::ffi::CString::new(s.as_bytes());
    let (Ok(path), Ok(args)) = (
        c(program.as_os_str()),
        args.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>(),
    ) else {
        return io::Error::new(io::ErrorKind::InvalidInput, "a NUL in an argument");
    };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: path and every argv entry are NUL-terminated strings that
    // outlive the call, argv ends with a null pointer, and `environ` is the
    // process's own environment (execv passes it on).
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    io::Error::last_os_error()
}

/// A descriptor for the shared mapping that holds `len` bytes at `addr`,
/// with the mapping's length and `addr`'s offset in it: another program
/// this process becomes maps the same memory with `map_region`. Opening a
/// mapping through /proc/self/map_files needs CAP_SYS_ADMIN (a server's
/// master running as root, before the daemon gives up its identity).
pub fn share_mapping(addr: usize, len: usize) -> io::Result<(std::fs::File, usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let range = maps
        .lines()
        .filter_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (a, b) = range.split_once('-')?;
            let (a, b) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            // A shared mapping ("rw-s"), holding the whole of [addr, addr+len).
            (rest.starts_with("rw-s") && a <= addr && addr + len <= b).then_some((range, a, b))
        })
        .next();
    let Some((range, start, end)) = range else {
        return Err(io::Error::other(
            "the metrics memory is not a shared mapping",
        ));
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/map_files/{range}"))?;
    Ok((f, end - start, addr - start))
}

/// Maps the metrics region another process shared with `share_mapping`
/// (`len`: the mapping's length, `offset`: the region's place in it), for
/// the rest of the process's life.
pub fn map_region(
    fd: i32,
    len: usize,
    offset: usize,
) -> io::Result<&'static crate::ops::metrics::Region> {
    use crate::ops::metrics::Region;
    if offset.checked_add(Region::SIZE).is_none_or(|end| end > len)
        || offset % std::mem::align_of::<Region>() != 0
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the metrics region does not fit the shared mapping",
        ));
    }
    // SAFETY: a new shared mapping placed by the kernel; it is never
    // unmapped, so addresses in it stay valid for the process's life.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: [p+offset, p+offset+SIZE) lies inside the mapping (checked
    // above), is aligned for Region (the mapping is page-aligned, the
    // offset checked), and a Region is nothing but atomics, for which any
    // bytes are a valid value; other processes change it only through
    // atomics too.
    Ok(unsafe { &*(p as *const u8).add(offset).cast::<Region>() })
}

/// Takes descriptor `fd`, which this program was given when it was
/// started (a handoff names each once), and closes it on exec again.
pub fn inherited(fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_SETFD on a descriptor number; a closed one is an error.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("descriptor {fd} was not passed on"),
        ));
    }
    // SAFETY: the descriptor is open (checked above) and was passed to this
    // program for this one owner: nothing else in the process holds it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The file of the shared object this code was loaded from (a server's
/// module, into which the core is linked).
pub fn this_object() -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let here = this_object as fn() -> Option<std::path::PathBuf> as *const libc::c_void;
    // SAFETY: dladdr reads an address of this process and writes a live,
    // zeroed Dl_info; dli_fname, when set, is a NUL-terminated string the
    // loader keeps while the object is loaded (it is copied at once).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(here, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(info.dli_fname).to_bytes();
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name)))
    }
}

/// The calling thread's id (as Apache's error log shows it).
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Points standard input and output at /dev/null.
pub fn null_stdio() {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    use std::os::fd::AsRawFd;
    for fd in [0, 1] {
        // SAFETY: dup2 between descriptors this process has.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::fd::AsRawFd;

    fn is_open(fd: i32) -> bool {
        // SAFETY: F_GETFD on a descriptor number; a closed one is an error.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    }

    /// Both ways of closing a range work, and neither goes past it.
    #[test]
    fn descriptors_close_by_range_without_proc() {
        let (r, _w) = pipe().unwrap();
        for (base, by_syscall) in [(900, true), (910, false)] {
            for fd in base..base + 4 {
                // SAFETY: dup2 onto numbers this test owns.
                assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), fd) }, fd);
            }
            if by_syscall {
                assert!(close_range(base as u32, base as u32 + 2));
            } else {
                close_each(base as u32, base as u32 + 2);
            }
            assert!((base..base + 3).all(|fd| !is_open(fd)));
            assert!(is_open(base + 3), "past the range");
            // SAFETY: closing the test's own descriptor.
            unsafe { libc::close(base + 3) };
        }
        assert!(is_open(r.as_raw_fd()));
    }
}

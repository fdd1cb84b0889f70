//! A worker's connections to the process groups' daemons: opened without
//! blocking, watched by nginx's event loop, and kept between requests (a
//! request costs no connect()). An idle connection the daemon closes (it
//! recycled) is closed here as soon as nginx sees it. Event loop only.

use std::cell::RefCell;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use ngx::ffi::{
    NGX_OK, ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_event_t, ngx_get_connection,
    ngx_handle_read_event, ngx_handle_write_event, ngx_int_t,
};
use ngx::http::HttpModuleMainConf;
use oxwsgi_core::daemon::options::GroupOptions;
use oxwsgi_core::daemon::protocol::auth::{self, Token};
use oxwsgi_core::guard;

use crate::Module;

/// Idle connections kept per group and worker; more are closed.
const MAX_IDLE: usize = 64;

/// How long nginx waits for a daemon between two reads or writes unless
/// the group's `socket_timeout` says otherwise: nginx's own proxies' 60 s.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What this worker knows of a group.
pub struct Pool {
    pub name: String,
    path: CString,
    /// How long a request waits for the group to be reachable.
    pub connect_timeout: Duration,
    /// The most nginx waits on the daemon's socket.
    pub timeout: Duration,
    /// The largest response head taken.
    pub head_limit: usize,
    /// What introduces a new connection to the group's daemons (`None`:
    /// none could be drawn; the group is not reached).
    token: Option<Token>,
    idle: Vec<*mut ngx_connection_t>,
}

impl Pool {
    fn new(name: &str, path: &std::path::Path, o: &GroupOptions) -> Pool {
        // A request timeout beyond nginx's wait would cut the daemon's own
        // 504 (and its log line with the stack) short.
        let timeout = o.socket_timeout.unwrap_or_else(|| {
            DEFAULT_TIMEOUT.max(
                o.request_timeout
                    .map_or(Duration::ZERO, |t| t + Duration::from_secs(5)),
            )
        });
        Pool {
            name: name.to_string(),
            path: CString::new(path.as_os_str().as_bytes()).unwrap_or_default(),
            connect_timeout: o.connect_timeout,
            timeout,
            head_limit: o.header_buffer_size,
            token: auth::group_token(name)
                .map_err(|e| log::error!(target: "oxwsgi", "group {name}: no token: {e}"))
                .ok(),
            idle: Vec::new(),
        }
    }
}

thread_local! {
    static PEERS: RefCell<Vec<Pool>> = const { RefCell::new(Vec::new()) };
}

/// Learns the groups of this worker's configuration (init_process).
///
/// # Safety
/// `cycle` is the worker's live cycle.
pub unsafe fn start(cycle: *mut ngx_cycle_t) {
    // SAFETY: the cycle is live (start's contract).
    let Some(main) = (unsafe { Module::main_conf(&*cycle) }) else {
        return;
    };
    // SAFETY: as above.
    let pid = unsafe { crate::group::master::pid_file(cycle) };
    let peers = main
        .groups
        .iter()
        .map(|(name, o)| Pool::new(name, &crate::group::master::socket_path(&pid, name), o))
        .collect();
    PEERS.with(|p| *p.borrow_mut() = peers);
}

/// Runs `f` with group `group`'s peer.
pub fn with<T>(group: usize, f: impl FnOnce(&mut Pool) -> T) -> Option<T> {
    PEERS.with(|p| p.borrow_mut().get_mut(group).map(f))
}

/// An idle connection to `group`, if one is kept.
pub fn take(group: usize) -> Option<*mut ngx_connection_t> {
    with(group, |p| p.idle.pop()).flatten()
}

/// Keeps `c` (between requests, clean) for the next request to `group`.
///
/// # Safety
/// `c` is a live connection of this module's, on the event loop, with no
/// request attached any more.
pub unsafe fn put(group: usize, c: *mut ngx_connection_t) {
    // SAFETY: c is live and ours (put's contract); from now on it is
    // watched only for the daemon closing it.
    unsafe {
        for ev in [(*c).read, (*c).write] {
            if (*ev).timer_set() != 0 {
                ngx::ffi::ngx_del_timer(ev);
            }
            if (*ev).posted() != 0 {
                ngx::ffi::ngx_delete_posted_event(ev);
            }
            (*ev).log = (*ngx::ffi::ngx_cycle).log;
        }
        (*c).log = (*ngx::ffi::ngx_cycle).log;
        (*c).data = std::ptr::null_mut();
        (*(*c).read).handler = Some(on_idle_read);
        (*(*c).write).handler = Some(on_idle_write);
    }
    let kept = with(group, |p| {
        if p.idle.len() < MAX_IDLE {
            p.idle.push(c);
            true
        } else {
            false
        }
    });
    if kept != Some(true) {
        // SAFETY: c is live and ours; nothing refers to it any more.
        unsafe { ngx_close_connection(c) };
    }
}

/// A new connection to `group`'s socket, watched by nginx's event loop
/// (its handlers are the caller's to set). An error when the group is not
/// there (yet): no socket, nobody listening, a full backlog.
///
/// # Safety
/// On the event loop thread, after `start`.
pub unsafe fn open(group: usize) -> io::Result<*mut ngx_connection_t> {
    let (path, token) =
        with(group, |p| (p.path.clone(), p.token.clone())).ok_or(io::ErrorKind::NotFound)?;
    let token = token.ok_or(io::ErrorKind::PermissionDenied)?;
    // SAFETY: a new socket of our own, connected to a path that fits
    // sockaddr_un (checked), without blocking.
    let fd = unsafe {
        let fd = libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_bytes_with_nul();
        if bytes.len() > addr.sun_path.len() {
            libc::close(fd);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path too long",
            ));
        }
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(fd, (&raw const addr).cast(), len) != 0 {
            let e = io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        if let Err(e) = auth::introduce(fd, &token) {
            libc::close(fd);
            return Err(e);
        }
        fd
    };
    // SAFETY: fd is our connected socket; nginx takes it over with the
    // connection (ngx_close_connection closes it).
    unsafe {
        let log = (*ngx::ffi::ngx_cycle).log;
        let c = ngx_get_connection(fd, log);
        if c.is_null() {
            libc::close(fd);
            return Err(io::Error::other(
                "no free nginx connection (worker_connections)",
            ));
        }
        (*c).log = log;
        (*(*c).read).log = log;
        (*(*c).write).log = log;
        (*(*c).read).handler = Some(on_idle_read);
        (*(*c).write).handler = Some(on_idle_write);
        if ngx_handle_read_event((*c).read, 0) != NGX_OK as ngx_int_t
            || ngx_handle_write_event((*c).write, 0) != NGX_OK as ngx_int_t
        {
            ngx_close_connection(c);
            return Err(io::Error::other("cannot watch the connection"));
        }
        Ok(c)
    }
}

/// The daemon wrote to, or closed, an idle connection: it is going (a
/// daemon says nothing between requests), so the connection goes too.
unsafe extern "C" fn on_idle_read(ev: *mut ngx_event_t) {
    guard::entry("an idle group connection", (), || {
        // SAFETY: nginx calls the handler with the connection's read event.
        let c = unsafe { (*ev).data.cast::<ngx_connection_t>() };
        PEERS.with(|p| {
            for peer in p.borrow_mut().iter_mut() {
                peer.idle.retain(|&i| i != c);
            }
        });
        // SAFETY: c is live and idle: no request refers to it.
        unsafe { ngx_close_connection(c) };
    })
}

unsafe extern "C" fn on_idle_write(_: *mut ngx_event_t) {}

/// Closes the idle connections (the worker exits).
pub fn close_all() {
    let idle: Vec<_> = PEERS.with(|p| {
        p.borrow_mut()
            .iter_mut()
            .flat_map(|peer| std::mem::take(&mut peer.idle))
            .collect()
    });
    for c in idle {
        // SAFETY: idle connections are live and referred to by nothing but
        // the list they were just taken from.
        unsafe { ngx_close_connection(c) };
    }
}

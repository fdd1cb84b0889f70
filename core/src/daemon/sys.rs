//! The one system call the daemon's dispatcher needs that std does not
//! offer: poll(2) over several sockets.

use std::io;

pub use libc::{POLLERR, POLLHUP, POLLIN, pollfd};

/// Waits until one of `fds` is ready or `timeout_ms` passed; how many are.
pub fn poll(fds: &mut [pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a live, exclusively borrowed slice of pollfd structs
    // and its length is passed with it; poll writes only their `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}

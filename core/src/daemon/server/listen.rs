//! Where and how a group's listening socket is made. Whoever can replace
//! the socket file receives the group's requests (their cookies and
//! credentials), so:
//!
//! - the socket lives in a directory of the server's own: owned by the
//!   user the server's parent runs as, writable by nobody else, never a
//!   symlink; made so when it does not exist, refused when it is not;
//! - it is made with its final mode (0600, by the umask at bind), so no
//!   connection can be made while a wider mode stands, and given to the
//!   server's workers without following a symlink put in its place.
//!
//! A directory the configuration names (Apache's `WSGISocketPrefix`) that
//! others may write is used, as mod_wsgi does, with a warning: the server
//! checks who holds a socket before it sends a request there
//! (`auth::introduce`).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::daemon::sys;

/// Makes `dir` the server's private socket directory: created (mode 0755)
/// if missing, else checked: a real directory, owned by this process's
/// user, that no one else may write.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dir)
                .map_err(|e| format!("cannot make the socket directory {}: {e}", dir.display()))?;
            // The umask may have narrowed it; the workers must get in.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    why_not_private(dir, &meta).map_or(Ok(()), Err)
}

/// Why `dir` (whose own metadata is `meta`) is no place for the groups'
/// sockets; `None` if it is one.
fn why_not_private(dir: &Path, meta: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let d = dir.display();
    if meta.file_type().is_symlink() {
        Some(format!(
            "the socket directory {d} is a symlink: refusing to put the process groups' sockets there"
        ))
    } else if !meta.is_dir() {
        Some(format!("the socket directory {d} is not a directory"))
    } else if meta.uid() != me {
        Some(format!(
            "the socket directory {d} belongs to uid {}, not to the server (uid {me}): \
             refusing to put the process groups' sockets there (remove it, or fix its owner)",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "the socket directory {d} may be written by others (mode {:o}): \
             refusing to put the process groups' sockets there",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// A warning when users other than the server's may replace files in
/// `dir` (where a configuration puts sockets or the directory holding
/// them); `None` when only the server's user can.
pub fn others_may_write(dir: &Path) -> Option<String> {
    let meta = std::fs::metadata(dir).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let writable = meta.mode() & 0o022 != 0 || meta.uid() != me;
    // A sticky directory (/tmp) keeps others from removing our files, not
    // from putting theirs at a path before us.
    writable.then(|| {
        format!(
            "{} may be written by users other than the server's (owner uid {}, mode {:o}): another \
             user could put a socket of theirs where a process group listens; use a directory only \
             the server can write",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )
    })
}

/// Binds a group's socket at `path`: a stale socket there (a previous
/// run's) is removed first, never followed; the socket is born 0600; then
/// it is given to `owner` (uid, gid; `u32::MAX`: keep) without following
/// a symlink. Call from the server's single-threaded parent (the umask is
/// the process's).
pub fn bind(path: &Path, owner: Option<(u32, u32)>, backlog: u32) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket_like() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket: refusing to replace it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let old = sys::set_umask(0o177);
    let bound = UnixListener::bind(path);
    sys::set_umask(old);
    let listener = bound?;
    sys::set_backlog(std::os::fd::AsRawFd::as_raw_fd(&listener), backlog)?;
    if let Some((uid, gid)) = owner {
        let uid = (uid != u32::MAX).then_some(uid);
        let gid = (gid != u32::MAX).then_some(gid);
        std::os::unix::fs::lchown(path, uid, gid)?;
    }
    Ok(listener)
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    /// A socket, or a symlink (which is removed, never followed: the
    /// directory is the server's, so one there is a leftover).
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket() || self.is_symlink()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oxwsgi-listen-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_socket_directory_is_made_private_or_refused() {
        let base = scratch("dir");
        let dir = base.join("sockets");
        private_dir(&dir).unwrap();
        let m = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(m.mode() & 0o777, 0o755);
        private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&dir).unwrap_err();
        assert!(e.contains("may be written by others"), "{e}");
        std::fs::remove_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&base, &dir).unwrap();
        let e = private_dir(&dir).unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(others_may_write(&base).is_none() || m.uid() != 0);
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(others_may_write(&base).is_some(), "sticky or not");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_socket_is_born_private_and_never_replaces_a_file() {
        let dir = scratch("bind");
        let path = dir.join("g.sock");
        let l = bind(&path, None, 16).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        drop(l);
        // A previous run's socket is replaced.
        let _l = bind(&path, None, 16).unwrap();
        // A file someone put there is not.
        let file = dir.join("f.sock");
        std::fs::write(&file, b"mine").unwrap();
        assert!(bind(&file, None, 16).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
        // A symlink is removed, its target untouched.
        let link = dir.join("l.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let _l2 = bind(&link, None, 16).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"mine");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_socket_like()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

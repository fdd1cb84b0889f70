//! Who may talk to a group's daemons. A process group is a boundary between
//! users, so a daemon serves only the server that started it:
//!
//! - its socket accepts a connection only from a process running as the
//!   server's worker user or as the server's parent (the peer's
//!   credentials, as the kernel reports them);
//! - the first frame on a connection is `Hello` with the group's token, a
//!   secret of the server's: a daemon serves nothing on a connection until
//!   it has seen it, and drops one that does not send it in time;
//! - the server, in turn, checks that the socket it reached was made by
//!   its own parent (a process of the parent's user) before it sends
//!   anything.
//!
//! The token of a group is derived from one secret the server's parent
//! draws when it first reads its configuration and keeps while it runs
//! (its workers inherit it): it stays the same across reloads, so the last
//! generation's workers still reach the new daemons. A daemon knows only
//! its own group's token: an app learns nothing that opens another group.
//! Apps served embedded run inside the server's workers, as the server:
//! they are trusted as the server is (as in mod_wsgi).

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;

use crate::sync::Recover;

use crate::daemon::protocol::frame::{self, Kind};

/// A group's token: the proof, on each new connection, that the server
/// opened it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; Token::LEN]);

impl Token {
    pub const LEN: usize = 32;

    pub fn from_bytes(b: &[u8]) -> Option<Token> {
        b.try_into().ok().map(Token)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `other` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, other: &[u8]) -> bool {
        other.len() == Token::LEN
            && self.0.iter().zip(other).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The server's secret, and the user its parent runs as.
#[derive(Clone, Copy)]
struct Secret {
    key: [u8; 32],
    uid: u32,
}

static SECRET: Mutex<Option<Secret>> = Mutex::new(None);

/// The server's secret: the one this process has, else `kept` (a secret
/// the server kept across the reload of its module: Apache's), else a
/// new one. Returned so a server can keep it.
pub fn server_secret(kept: Option<[u8; 32]>) -> io::Result<[u8; 32]> {
    let mut s = SECRET.lock().recover();
    if let Some(s) = *s {
        return Ok(s.key);
    }
    let key = match kept {
        Some(k) => k,
        None => random()?,
    };
    *s = Some(Secret {
        key,
        // SAFETY: geteuid has no preconditions.
        uid: unsafe { libc::geteuid() },
    });
    Ok(key)
}

/// The token of group `name`, from the server's secret (drawn now if this
/// process has none: a test, or the first group).
pub fn group_token(name: &str) -> io::Result<Token> {
    let key = server_secret(None)?;
    Ok(derive(&key, name))
}

/// The user the server's parent runs as, who makes the groups' sockets.
pub fn parent_uid() -> u32 {
    SECRET
        .lock()
        .recover()
        // SAFETY: geteuid has no preconditions.
        .map_or_else(|| unsafe { libc::geteuid() }, |s| s.uid)
}

/// Forgets the server's secret (in a new daemon, which keeps only its own
/// group's token).
pub fn forget_secret() {
    let mut s = SECRET.lock().recover();
    if let Some(s) = s.as_mut() {
        // Volatile, so the wipe is not optimised away as a dead store.
        for b in &mut s.key {
            // SAFETY: a valid, aligned, exclusive reference to a byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
    *s = None;
}

/// 32 bytes from the kernel's random source.
fn random() -> io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    let mut at = 0;
    while at < b.len() {
        // SAFETY: getrandom writes at most the given length into the live
        // buffer past `at`.
        let n = unsafe { libc::getrandom(b[at..].as_mut_ptr().cast(), b.len() - at, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        at += n as usize;
    }
    Ok(b)
}

/// A group's token: SipHash-2-4 (a keyed pseudo-random function) under
/// the secret's first half, over a counter, the secret's second half and
/// the group's name, four times for 32 bytes.
fn derive(key: &[u8; 32], name: &str) -> Token {
    #[allow(deprecated)] // std's SipHash-2-4; deprecated only as a HashMap hasher.
    use std::hash::{Hasher, SipHasher};
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap_or_default());
    let k1 = u64::from_le_bytes(key[8..16].try_into().unwrap_or_default());
    let mut out = [0u8; Token::LEN];
    for (i, part) in out.chunks_mut(8).enumerate() {
        #[allow(deprecated)]
        let mut h = SipHasher::new_with_keys(k0, k1);
        h.write(b"oxwsgi group token");
        h.write_u8(i as u8);
        h.write(&key[16..]);
        h.write_usize(name.len());
        h.write(name.as_bytes());
        part.copy_from_slice(&h.finish().to_le_bytes());
    }
    Token(out)
}

/// Who a daemon admits: connections from these users, that introduce
/// themselves with this token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The group's name (for the log).
    pub group: String,
    pub token: Token,
    pub uids: Vec<u32>,
}

impl Admission {
    /// For group `name` of this server: its token, and the server's
    /// worker user (`workers`; `None`: they run as the parent) and parent.
    pub fn for_group(name: &str, workers: Option<u32>) -> io::Result<Admission> {
        let mut uids = vec![parent_uid()];
        uids.extend(workers.filter(|u| !uids.contains(u)));
        Ok(Admission {
            group: name.to_string(),
            token: group_token(name)?,
            uids,
        })
    }

    /// Whether the process at the other end of `fd` may talk to the
    /// daemon; why not, otherwise.
    pub fn admits_peer(&self, fd: RawFd) -> Result<(), String> {
        let p = peer(fd).map_err(|e| format!("cannot tell who connected: {e}"))?;
        if self.uids.contains(&p.uid) {
            Ok(())
        } else {
            Err(format!(
                "group {}: refused a connection from process {} running as uid {} (not one of the server's users)",
                self.group, p.pid, p.uid
            ))
        }
    }
}

/// The credentials of the process at the other end of a unix socket:
/// for a connection accepted, who connected; for one made, who listens.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

pub fn peer(fd: RawFd) -> io::Result<Peer> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the live ucred.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The server's side of a new connection to a group (connected, nothing
/// sent yet): checks that the group's socket is the server's own (made
/// by a process of the parent's user: not one another user put at its
/// path), then introduces the connection with the group's token.
pub fn introduce(fd: RawFd, token: &Token) -> io::Result<()> {
    let p = peer(fd)?;
    let parent = parent_uid();
    if p.uid != parent {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the group's socket is held by process {} running as uid {}, not by the server (uid {parent}): refusing to send it requests",
                p.pid, p.uid
            ),
        ));
    }
    frame::send_now(fd, Kind::Hello, token.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_differ_by_group_and_secret() {
        let a = [1u8; 32];
        let mut b = a;
        b[20] ^= 1;
        assert_eq!(derive(&a, "shop"), derive(&a, "shop"));
        assert_ne!(derive(&a, "shop"), derive(&a, "blog"));
        assert_ne!(
            derive(&a, "shop"),
            derive(&b, "shop"),
            "the second half counts"
        );
        assert_ne!(derive(&a, "ab"), derive(&a, "a"));
        let t = derive(&a, "shop");
        assert!(t.matches(t.as_bytes()));
        assert!(!t.matches(derive(&a, "blog").as_bytes()));
        assert!(!t.matches(&t.as_bytes()[..31]));
        assert_eq!(format!("{t:?}"), "Token(..)", "never logged");
    }

    #[test]
    fn a_random_secret_is_random() {
        assert_ne!(random().unwrap(), random().unwrap());
    }

    #[test]
    fn peers_are_told_by_their_user() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let p = peer(a.as_raw_fd()).unwrap();
        // SAFETY: plain getters.
        let (uid, pid) = unsafe { (libc::geteuid(), libc::getpid()) };
        assert_eq!((p.uid, p.pid), (uid, pid));
        let mine = Admission {
            group: "g".into(),
            token: derive(&[0; 32], "g"),
            uids: vec![uid],
        };
        assert!(mine.admits_peer(b.as_raw_fd()).is_ok());
        let other = Admission {
            uids: vec![uid.wrapping_add(1)],
            ..mine
        };
        let e = other.admits_peer(b.as_raw_fd()).unwrap_err();
        assert!(e.contains(&format!("uid {uid}")), "{e}");
    }
}

//! What a group's daemons will be able to open, checked when the server
//! reads its configuration (`nginx -t` and `apache2ctl -t` too), as the
//! user and groups the daemons will run as: the interpreter they execute,
//! their home, the scripts they load. A daemon that cannot would fail at
//! every start, every 5 s, while the group's requests wait; the check names
//! the path and what is missing instead. Mode bits only: ACLs and security
//! modules are not consulted (they can only refuse more, which the daemon
//! then logs).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Who the daemons run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// As the configuration names it (for messages).
    pub name: String,
    pub uid: u32,
    /// The primary group and the supplementary ones.
    pub gids: Vec<u32>,
}

/// What the daemons must be able to do with a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Execute,
    /// A directory to work in (`home=`): enter it.
    Enter,
}

impl Identity {
    /// Whether this identity can do `need` with `path`: every directory on
    /// the way (the path's own and, through symlinks, its target's) must
    /// let it in, and the file itself allow it. The error says which.
    pub fn can(&self, path: &Path, need: Need) -> Result<(), String> {
        let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for way in [path, real.as_path()] {
            for dir in way.ancestors().skip(1) {
                let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                if !self.allows(&m, 0o1) {
                    return Err(format!(
                        "{} cannot reach {}: it may not enter {}",
                        self.name,
                        path.display(),
                        dir.display()
                    ));
                }
            }
        }
        let m = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
        let (bit, verb) = match need {
            Need::Read => (0o4, "read"),
            Need::Execute => (0o1, "execute"),
            Need::Enter => (0o1, "enter"),
        };
        if self.allows(&m, bit) && (need == Need::Enter) == m.is_dir() {
            return Ok(());
        }
        let that = if real == path {
            String::new()
        } else {
            format!(" (that is {})", real.display())
        };
        Err(format!(
            "{} cannot {verb} {}{that}",
            self.name,
            path.display()
        ))
    }

    /// Whether the mode bits of `m` give this identity `bit` (4 read, 1
    /// execute or enter).
    fn allows(&self, m: &std::fs::Metadata, bit: u32) -> bool {
        if self.uid == 0 {
            // root reads and enters anything, and executes what anyone may.
            return bit != 0o1 || m.is_dir() || m.mode() & 0o111 != 0;
        }
        let shift = if m.uid() == self.uid {
            6
        } else if self.gids.contains(&m.gid()) {
            3
        } else {
            0
        };
        (m.mode() >> shift) & bit != 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn nobody() -> Identity {
        Identity {
            name: "nobody".into(),
            uid: 65534,
            gids: vec![65534],
        }
    }

    fn set_mode(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_closed_directory_on_the_way_is_named() {
        let top = std::env::temp_dir().join(format!("oxwsgi-reach-{}", std::process::id()));
        let closed = top.join("closed");
        let open = top.join("open");
        std::fs::create_dir_all(&closed).unwrap();
        std::fs::create_dir_all(&open).unwrap();
        set_mode(&top, 0o755);
        set_mode(&open, 0o755);
        let python = closed.join("python3");
        std::fs::write(&python, b"").unwrap();
        set_mode(&python, 0o755);
        let script = open.join("app.py");
        std::fs::write(&script, b"").unwrap();
        set_mode(&script, 0o644);
        let link = open.join("python3");
        std::os::unix::fs::symlink(&python, &link).unwrap();
        let who = nobody();
        // Only when run as an unprivileged owner would mode 700 let
        // nobody in; the test files belong to whoever runs the tests.
        set_mode(&closed, 0o700);
        let e = who.can(&link, Need::Execute).unwrap_err();
        assert!(e.contains("may not enter") && e.contains("closed"), "{e}");
        set_mode(&closed, 0o755);
        who.can(&link, Need::Execute).unwrap();
        who.can(&script, Need::Read).unwrap();
        let e = who.can(&script, Need::Execute).unwrap_err();
        assert!(e.contains("cannot execute"), "{e}");
        set_mode(&script, 0o600);
        let e = who.can(&script, Need::Read).unwrap_err();
        assert!(e.contains("nobody cannot read"), "{e}");
        who.can(&open, Need::Enter).unwrap();
        assert!(who.can(&script, Need::Enter).is_err(), "a file is no home");
        assert!(who.can(&top.join("missing"), Need::Read).is_err());
        std::fs::remove_dir_all(&top).unwrap();
    }
}

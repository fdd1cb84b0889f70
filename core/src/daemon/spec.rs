//! What a process group is made of, as the server's parent hands it to the
//! daemons it forks: the group's options, socket, apps and admission
//! (`GroupSpec`), the apps its configuration mounts (`Mount`), and how a
//! daemon can become its virtualenv's own Python (`ExecSpec`).

use std::path::PathBuf;

use crate::app::AppOptions;

use crate::daemon::options::GroupOptions;
use crate::daemon::process::stderr_log::LogStyle;
use crate::daemon::protocol::auth::Admission;
use crate::daemon::sys;

/// What a group is made of (from `WSGIDaemonProcess` or
/// `wsgi_daemon_process`).
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: String,
    pub options: GroupOptions,
    /// Where the group listens.
    pub socket: PathBuf,
    /// Who may connect (the server's worker user and group): the socket is
    /// given to them, mode 0600 (`socket-user` names another owner).
    /// `None`: the current user keeps it.
    pub socket_owner: Option<(u32, u32)>,
    /// The group's apps, by the number the server names in a request.
    pub apps: Vec<AppOptions>,
    /// The group's own metrics region (`group_metrics`, mapped before the
    /// fork): the daemons count their requests there, and the status page
    /// reads it with the server's.
    pub metrics: Option<&'static crate::ops::metrics::Region>,
    /// How the daemons can become their virtualenv's Python (`None`: the
    /// server ships no daemon extension module).
    pub exec: Option<ExecSpec>,
    /// Who the daemons serve: the server's users, with the group's token.
    pub admission: Admission,
    /// The group is Apache's: its daemons offer `import mod_wsgi`.
    pub mod_wsgi: bool,
    /// The apps the server's configuration mounts for the group, which
    /// are all a daemon runs (`None`: any the server names, as mod_wsgi's
    /// daemons, where a handler may map any script of a directory).
    pub mounts: Option<Vec<Mount>>,
}

/// An app a configuration mounts: its target (script or `module:callable`),
/// callable and mount point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub target: String,
    pub callable: String,
    pub mount: String,
}

impl GroupSpec {
    /// The group's full description, from its options.
    pub fn new(
        name: &str,
        options: GroupOptions,
        socket: PathBuf,
        socket_owner: Option<(u32, u32)>,
        apps: Vec<AppOptions>,
    ) -> Result<GroupSpec, String> {
        options
            .check_isolation(socket_owner.map(|(uid, _)| uid))
            .map_err(|e| format!("process group {name}: {e}"))?;
        let mut admission = Admission::for_group(name, socket_owner.map(|(uid, _)| uid))
            .map_err(|e| format!("process group {name}: cannot draw its token: {e}"))?;
        if let Some(user) = &options.socket_user {
            let uid = sys::user_id(user)?;
            if !admission.uids.contains(&uid) {
                admission.uids.push(uid);
            }
        }
        Ok(GroupSpec {
            name: name.to_string(),
            options,
            socket,
            socket_owner,
            apps,
            metrics: None,
            exec: None,
            admission,
            mod_wsgi: false,
            mounts: None,
        })
    }
}

/// What a server gives its daemons to become another Python: oxwsgi's
/// daemon extension module, built for the Python the server embeds, and
/// the format of the server's error log (which stays their stderr).
#[derive(Clone, Debug)]
pub struct ExecSpec {
    pub extension: PathBuf,
    pub log: LogStyle,
    /// The extension's file as the server found it (device, inode, mtime):
    /// one replaced since (a package upgrade) may not be of the server
    /// module's build.
    pub(super) stamp: Option<(u64, u64, i64)>,
}

impl ExecSpec {
    /// The extension module of `server` (`nginx`, `apache2`): beside the
    /// server's module (the shared object the core is linked into: a
    /// build tree), else where its package puts it
    /// (`/usr/lib/oxwsgi/SERVER/`: Debian's tools take every file in the
    /// servers' module directories for a server module); `None` if neither
    /// is there.
    pub fn find(server: &str, log: LogStyle) -> Option<ExecSpec> {
        let beside = sys::this_object().map(|m| m.with_file_name(EXTENSION_FILE));
        let packaged = std::path::Path::new("/usr/lib/oxwsgi")
            .join(server)
            .join(EXTENSION_FILE);
        beside
            .into_iter()
            .chain([packaged])
            .find(|p| p.is_file())
            .map(|extension| ExecSpec {
                stamp: file_stamp(&extension),
                extension,
                log,
            })
    }
}

/// The daemon extension module's file name.
pub const EXTENSION_FILE: &str = "oxwsgi_daemon.so";

/// The identity and modification time of the file at `path`.
pub(super) fn file_stamp(path: &std::path::Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime()))
}

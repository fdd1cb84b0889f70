//! The options of a process group as mod_wsgi's `WSGIDaemonProcess` spells
//! them (`processes=2 threads=15 user=www-data python-home=/srv/venv`),
//! checked once for both servers. Every option mod_wsgi documents is either
//! taken or refused by name: a configuration never silently means less
//! than it says.

use std::path::PathBuf;

use super::group::GroupSpec;

/// The options oxwsgi implements.
pub const SUPPORTED: &[&str] = &[
    "processes",
    "threads",
    "user",
    "group",
    "python-home",
    "python-path",
    "home",
    "umask",
    "lang",
    "locale",
    "display-name",
];

/// Options mod_wsgi documents that oxwsgi does not implement yet.
pub const NOT_YET: &[&str] = &[
    "chroot",
    "supplementary-groups",
    "python-eggs",
    "server-metrics",
    "header-buffer-size",
    "response-buffer-size",
    "response-socket-timeout",
    "socket-timeout",
    "connect-timeout",
    "inactivity-timeout",
    "request-timeout",
    "deadlock-timeout",
    "graceful-timeout",
    "eviction-timeout",
    "restart-interval",
    "maximum-requests",
    "shutdown-timeout",
    "startup-timeout",
    "cpu-time-limit",
    "cpu-priority",
    "memory-limit",
    "virtual-memory-limit",
    "stack-size",
    "listen-backlog",
    "send-buffer-size",
    "receive-buffer-size",
    "queue-timeout",
    "socket-user",
    "script-user",
    "threads-per-process",
    "mount-point",
    "startup-time",
];

/// A group's options, before the server adds where it listens and its apps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupOptions {
    pub processes: Option<usize>,
    pub threads: Option<usize>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub home: Option<PathBuf>,
    pub umask: Option<u32>,
    pub lang: Option<String>,
    pub display_name: Option<String>,
}

impl GroupOptions {
    /// Parses `name` and the `key=value` words after it.
    pub fn parse(name: &str, words: &[&str]) -> Result<GroupOptions, String> {
        if name.is_empty() || name.contains(['/', '=']) {
            return Err(format!("invalid group name {name:?}"));
        }
        let mut o = GroupOptions::default();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("{word:?} is not an option=value"))?;
            match key {
                "processes" => o.processes = Some(count(key, value, 1, 1024)?),
                "threads" => o.threads = Some(count(key, value, 1, 1024)?),
                "user" => o.user = Some(nonempty(key, value)?),
                "group" => o.group = Some(nonempty(key, value)?),
                "python-home" => o.python_home = Some(crate::conf::parse_python_home(value)?),
                "python-path" => o.python_path.extend(crate::conf::parse_path_list(value)?),
                "home" => o.home = Some(crate::conf::parse_dir(value)?),
                "umask" => {
                    o.umask = Some(
                        u32::from_str_radix(value, 8)
                            .ok()
                            .filter(|m| *m <= 0o777)
                            .ok_or_else(|| {
                                format!("umask={value}: expected an octal mask like 0007")
                            })?,
                    )
                }
                "lang" | "locale" => o.lang = Some(nonempty(key, value)?),
                "display-name" => {
                    o.display_name = Some(match value {
                        "%{GROUP}" => format!("(wsgi:{name})"),
                        v => nonempty(key, v)?,
                    })
                }
                k if NOT_YET.contains(&k) => {
                    return Err(format!("option {k} is not supported by oxwsgi yet"));
                }
                k => return Err(format!("unknown option {k}")),
            }
        }
        Ok(o)
    }

    /// The group's full description.
    pub fn into_spec(
        self,
        name: &str,
        socket: PathBuf,
        socket_owner: Option<(u32, u32)>,
        apps: Vec<crate::app::AppOptions>,
    ) -> GroupSpec {
        GroupSpec {
            name: name.to_string(),
            processes: self.processes.unwrap_or(1),
            // mod_wsgi's default.
            threads: self.threads.unwrap_or(15),
            user: self.user,
            group: self.group,
            python_home: self.python_home,
            python_path: self.python_path,
            home: self.home,
            umask: self.umask,
            lang: self.lang,
            display_name: self.display_name,
            socket,
            socket_owner,
            apps,
        }
    }
}

fn count(key: &str, value: &str, min: usize, max: usize) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{key}={value}: expected {min} to {max}"))
}

fn nonempty(key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("{key}= needs a value"))
    } else {
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_typical_line_parses() {
        let o = GroupOptions::parse(
            "site",
            &[
                "processes=2",
                "threads=15",
                "user=www-data",
                "group=www-data",
                "display-name=%{GROUP}",
                "umask=0007",
                "lang=C.UTF-8",
                "python-path=/srv/a:/srv/b",
            ],
        )
        .unwrap();
        assert_eq!((o.processes, o.threads), (Some(2), Some(15)));
        assert_eq!(o.display_name.as_deref(), Some("(wsgi:site)"));
        assert_eq!(o.umask, Some(0o007));
        assert_eq!(o.python_path.len(), 2);
        let spec = o.into_spec("site", "/run/x.sock".into(), None, vec![]);
        assert_eq!(spec.processes, 2);
    }

    #[test]
    fn defaults_are_mod_wsgis() {
        let spec = GroupOptions::parse("g", &[])
            .unwrap()
            .into_spec("g", "/s".into(), None, vec![]);
        assert_eq!((spec.processes, spec.threads), (1, 15));
    }

    #[test]
    fn every_option_is_taken_or_refused_by_name() {
        for k in NOT_YET {
            let e = GroupOptions::parse("g", &[&format!("{k}=1")]).unwrap_err();
            assert!(
                e.contains(k) && e.contains("not supported by oxwsgi yet"),
                "{e}"
            );
        }
        let e = GroupOptions::parse("g", &["colour=blue"]).unwrap_err();
        assert_eq!(e, "unknown option colour");
        for bad in [
            "processes=0",
            "threads=x",
            "umask=999",
            "user=",
            "python-path=rel",
        ] {
            assert!(GroupOptions::parse("g", &[bad]).is_err(), "{bad}");
        }
        assert!(
            GroupOptions::parse("g", &["threads"])
                .unwrap_err()
                .contains("option=value")
        );
        assert!(GroupOptions::parse("a/b", &[]).is_err());
    }
}

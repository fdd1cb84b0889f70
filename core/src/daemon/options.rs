//! The options of a process group as mod_wsgi's `WSGIDaemonProcess` spells
//! them (`processes=2 threads=15 user=www-data python-home=/srv/venv`),
//! checked once for both servers. Every option mod_wsgi documents is either
//! taken or refused by name: a configuration never silently means less
//! than it says. Times are seconds as in mod_wsgi (`0` is off), or nginx
//! style (`500ms`, `2m`); sizes are bytes, or with a `k`, `m`, `g` suffix.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The options oxwsgi implements.
pub const SUPPORTED: &[&str] = &[
    "processes",
    "threads",
    "user",
    "group",
    "supplementary-groups",
    "python-home",
    "python-path",
    "python-eggs",
    "home",
    "umask",
    "lang",
    "locale",
    "display-name",
    "maximum-requests",
    "restart-interval",
    "inactivity-timeout",
    "request-timeout",
    "queue-timeout",
    "graceful-timeout",
    "eviction-timeout",
    "shutdown-timeout",
    "deadlock-timeout",
    "connect-timeout",
    "socket-timeout",
    "listen-backlog",
    "socket-user",
    "send-buffer-size",
    "receive-buffer-size",
    "header-buffer-size",
    "response-buffer-size",
    "cpu-time-limit",
    "cpu-priority",
    "memory-limit",
    "virtual-memory-limit",
    "stack-size",
    "server-metrics",
    "startup-timeout",
    "script-user",
    "script-group",
    "response-socket-timeout",
    // mod_wsgi 6's.
    "switch-interval",
    "interrupt-timeout",
    "response-flush-delay",
    // oxwsgi's own: nginx's wsgi_max_rss, for a group; which Python runs.
    "max-rss",
    "python-executable",
];

/// Options mod_wsgi documents that oxwsgi does not implement.
pub const NOT_YET: &[&str] = &["chroot"];

/// A switch interval as `sys.setswitchinterval()` takes it: a positive
/// number of seconds (`0.002`).
pub fn parse_switch_interval(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!("{value}: expected a positive number of seconds, as sys.setswitchinterval() takes (0.005)")
        })
}

/// Why mod_wsgi's New Relic settings are refused.
pub const NEW_RELIC_REFUSED: &str = "refused: oxwsgi does not start the New Relic agent; \
                                     initialise it in the WSGI script (newrelic.agent.initialize)";

/// How a daemon process's life goes: when it is replaced, and how long its
/// requests may take to finish when it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// Replaced after this many requests.
    pub maximum_requests: Option<u64>,
    /// Replaced when its resident memory passes this many bytes (looked at
    /// after a request, at most once a second).
    pub max_rss: Option<u64>,
    /// Replaced after running this long.
    pub restart_interval: Option<Duration>,
    /// Replaced after this long without a request (once it served one).
    pub inactivity_timeout: Option<Duration>,
    /// How long requests in progress may take to finish when the process is
    /// replaced (maximum requests, restart interval, inactivity, CPU time,
    /// a stuck request).
    pub graceful_timeout: Duration,
    /// The same on SIGUSR1 (default: the graceful timeout).
    pub eviction_timeout: Option<Duration>,
    /// The same when the group stops (SIGTERM).
    pub shutdown_timeout: Duration,
    /// The process exits when Python's GIL could not be taken for this long.
    pub deadlock_timeout: Option<Duration>,
    /// Replaced when no app has loaded this long after it started (a
    /// failed import leaves a half-imported interpreter behind).
    pub startup_timeout: Option<Duration>,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        // mod_wsgi's defaults.
        Lifecycle {
            maximum_requests: None,
            max_rss: None,
            restart_interval: None,
            inactivity_timeout: None,
            graceful_timeout: Duration::from_secs(15),
            eviction_timeout: None,
            shutdown_timeout: Duration::from_secs(5),
            deadlock_timeout: Some(Duration::from_secs(300)),
            startup_timeout: None,
        }
    }
}

/// Resource limits of each daemon process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds (RLIMIT_CPU): at the limit the process is replaced.
    pub cpu_time: Option<u64>,
    /// Data segment bytes (RLIMIT_DATA).
    pub memory: Option<u64>,
    /// Address space bytes (RLIMIT_AS).
    pub virtual_memory: Option<u64>,
    /// Each request thread's stack.
    pub stack_size: Option<usize>,
    /// Scheduling priority (nice value).
    pub cpu_priority: Option<i32>,
}

/// Which Python a group's daemons run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PythonExecutable {
    /// The virtualenv's own interpreter (`python-home`'s `bin/python3.X`;
    /// the system's `python3.X` without one), with oxwsgi's daemon loaded
    /// into it as an extension module, where the server ships that module;
    /// else `Off`.
    #[default]
    Auto,
    /// The server's own (embedded) Python, in a process forked from the
    /// server's parent.
    Off,
    /// This interpreter (of the Python version oxwsgi was built for).
    Path(PathBuf),
}

/// A group's options, before the server adds where it listens and its apps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOptions {
    pub processes: usize,
    pub threads: usize,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Groups beyond the user's primary one (default: those /etc/group
    /// gives the user).
    pub supplementary_groups: Option<Vec<String>>,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    /// `PYTHON_EGG_CACHE`.
    pub python_eggs: Option<PathBuf>,
    /// The daemons' working directory.
    pub home: Option<PathBuf>,
    pub umask: Option<u32>,
    /// `LANG` and `LC_ALL` for the daemons.
    pub lang: Option<String>,
    /// The name `ps` shows (default `(wsgi:NAME)`, as mod_wsgi).
    pub display_name: Option<String>,
    pub lifecycle: Lifecycle,
    pub limits: Limits,
    /// Per request: `oxwsgi.RequestTimeout` in the app's thread, 504, and
    /// the process replaced if the thread does not come back.
    pub request_timeout: Option<Duration>,
    /// A request that waited longer than this for a daemon thread (from
    /// when the server handed it over) gets 504 without running.
    pub queue_timeout: Option<Duration>,
    /// How long a request waits for the group to be reachable.
    pub connect_timeout: Duration,
    /// How long the server waits on the daemon's socket for a read or
    /// write (`None`: forever).
    pub socket_timeout: Option<Duration>,
    pub listen_backlog: u32,
    /// Who the socket is given to instead of the server's worker user.
    pub socket_user: Option<String>,
    pub send_buffer_size: Option<usize>,
    pub receive_buffer_size: Option<usize>,
    /// The largest response head (status and headers) the server takes
    /// from a daemon.
    pub header_buffer_size: usize,
    /// How many response bytes a daemon gathers before writing them.
    pub response_buffer_size: usize,
    /// How long a write to the client may wait while the server relays a
    /// response (default: `socket_timeout`, else the server's own).
    pub response_socket_timeout: Option<Duration>,
    /// Scripts the group runs must belong to this user ...
    pub script_user: Option<String>,
    /// ... or to this group.
    pub script_group: Option<String>,
    pub python_executable: PythonExecutable,
    /// `sys.setswitchinterval()` in the daemons (mod_wsgi 6).
    pub switch_interval: Option<Duration>,
    /// How long a request's thread has to come back after its request
    /// timeout before the daemon is replaced (mod_wsgi 6's
    /// `interrupt-timeout`; default `timeouts::STUCK_GRACE`).
    pub interrupt_timeout: Option<Duration>,
    /// The words the options were parsed from (`parse`, `add`): a daemon
    /// that becomes another program parses them again there, so options
    /// set field by field (in tests) go only to forked daemons.
    pub words: Vec<String>,
}

impl Default for GroupOptions {
    fn default() -> GroupOptions {
        // mod_wsgi's defaults.
        GroupOptions {
            processes: 1,
            threads: 15,
            user: None,
            group: None,
            supplementary_groups: None,
            python_home: None,
            python_path: Vec::new(),
            python_eggs: None,
            home: None,
            umask: None,
            lang: None,
            display_name: None,
            lifecycle: Lifecycle::default(),
            limits: Limits::default(),
            request_timeout: None,
            queue_timeout: None,
            connect_timeout: Duration::from_secs(15),
            socket_timeout: None,
            listen_backlog: 100,
            socket_user: None,
            send_buffer_size: None,
            receive_buffer_size: None,
            header_buffer_size: 32 << 10,
            response_buffer_size: 64 << 10,
            response_socket_timeout: None,
            script_user: None,
            script_group: None,
            python_executable: PythonExecutable::Auto,
            switch_interval: None,
            interrupt_timeout: None,
            words: Vec::new(),
        }
    }
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
            o.set(name, key, value).map_err(|e| {
                if e.contains(key) {
                    e
                } else {
                    format!("{key}: {e}")
                }
            })?;
            o.words.push(word.to_string());
        }
        if o.script_user.is_some() && o.script_group.is_some() {
            return Err("only one of script-user and script-group".into());
        }
        o.check_accounts()?;
        Ok(o)
    }

    /// Sets one more option (`key=value`), as if the configuration gave it
    /// last: what a server decides for a group (its request timeout, the
    /// user its daemons run as) is then among the words too.
    pub fn add(&mut self, name: &str, word: &str) -> Result<(), String> {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not an option=value"))?;
        self.set(name, key, value)?;
        if key == "user" {
            not_root(value)?;
        }
        self.words.push(word.to_string());
        Ok(())
    }

    /// Every user and group the options name exists (checked when the
    /// configuration is read: a typo must not become a daemon that fails
    /// to start again and again).
    fn check_accounts(&self) -> Result<(), String> {
        let users = [
            ("user", &self.user),
            ("socket-user", &self.socket_user),
            ("script-user", &self.script_user),
        ];
        for (key, user) in users {
            if let Some(u) = user {
                crate::daemon::sys::user_id(u).map_err(|e| format!("{key}={u}: {e}"))?;
            }
        }
        if let Some(u) = &self.user {
            not_root(u)?;
        }
        let groups = [("group", &self.group), ("script-group", &self.script_group)];
        for (key, group) in groups {
            if let Some(g) = group {
                crate::daemon::sys::group_id(g).map_err(|e| format!("{key}={g}: {e}"))?;
            }
        }
        for g in self.supplementary_groups.iter().flatten() {
            crate::daemon::sys::group_id(g)
                .map_err(|e| format!("supplementary-groups={g}: {e}"))?;
        }
        Ok(())
    }

    fn set(&mut self, name: &str, key: &str, value: &str) -> Result<(), String> {
        let life = &mut self.lifecycle;
        match key {
            "processes" => self.processes = count(key, value, 1, 1024)?,
            // 0: a group for service scripts (WSGIImportScript), which
            // takes no requests, as mod_wsgi's.
            "threads" => self.threads = count(key, value, 0, 1024)?,
            "user" => self.user = Some(nonempty(key, value)?),
            "group" => self.group = Some(nonempty(key, value)?),
            "supplementary-groups" => {
                self.supplementary_groups = Some(
                    value
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            "python-home" => self.python_home = Some(crate::conf::parse_python_home(value)?),
            "python-path" => self
                .python_path
                .extend(crate::conf::parse_path_list(value)?),
            "python-eggs" => self.python_eggs = Some(crate::conf::parse_dir(value)?),
            "home" => self.home = Some(crate::conf::parse_dir(value)?),
            "umask" => {
                self.umask = Some(
                    u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| {
                            format!("umask={value}: expected an octal mask like 0007")
                        })?,
                )
            }
            "lang" | "locale" => self.lang = Some(nonempty(key, value)?),
            "display-name" => {
                self.display_name = Some(match value {
                    "%{GROUP}" => format!("(wsgi:{name})"),
                    v => nonempty(key, v)?,
                })
            }
            "maximum-requests" => {
                life.maximum_requests =
                    Some(count(key, value, 0, usize::MAX)? as u64).filter(|n| *n > 0)
            }
            "max-rss" => life.max_rss = bytes(key, value)?,
            "restart-interval" => life.restart_interval = time(key, value)?,
            "inactivity-timeout" => life.inactivity_timeout = time(key, value)?,
            "graceful-timeout" => life.graceful_timeout = time(key, value)?.unwrap_or_default(),
            "eviction-timeout" => life.eviction_timeout = time(key, value)?,
            "shutdown-timeout" => life.shutdown_timeout = time(key, value)?.unwrap_or_default(),
            "deadlock-timeout" => life.deadlock_timeout = time(key, value)?,
            "startup-timeout" => life.startup_timeout = time(key, value)?,
            "request-timeout" => self.request_timeout = time(key, value)?,
            "queue-timeout" => self.queue_timeout = time(key, value)?,
            "connect-timeout" => {
                self.connect_timeout = time(key, value)?.unwrap_or(Duration::from_secs(15))
            }
            "socket-timeout" => self.socket_timeout = time(key, value)?,
            "response-socket-timeout" => self.response_socket_timeout = time(key, value)?,
            "python-executable" => {
                self.python_executable = match value {
                    "auto" => PythonExecutable::Auto,
                    "off" => PythonExecutable::Off,
                    v if v.starts_with('/') => PythonExecutable::Path(PathBuf::from(v)),
                    v => {
                        return Err(format!(
                            "{key}={v}: expected auto, off or an interpreter's absolute path"
                        ));
                    }
                }
            }
            "script-user" => self.script_user = Some(nonempty(key, value)?),
            "script-group" => self.script_group = Some(nonempty(key, value)?),
            "listen-backlog" => self.listen_backlog = count(key, value, 1, 65535)? as u32,
            "socket-user" => self.socket_user = Some(nonempty(key, value)?),
            "send-buffer-size" => self.send_buffer_size = buffer(key, value, 512)?,
            "receive-buffer-size" => self.receive_buffer_size = buffer(key, value, 512)?,
            "header-buffer-size" => {
                self.header_buffer_size = buffer(key, value, 8192)?.unwrap_or(32 << 10)
            }
            "response-buffer-size" => {
                self.response_buffer_size = buffer(key, value, 65536)?.unwrap_or(64 << 10)
            }
            "cpu-time-limit" => {
                self.limits.cpu_time =
                    Some(count(key, value, 0, usize::MAX)? as u64).filter(|n| *n > 0)
            }
            "cpu-priority" => {
                self.limits.cpu_priority = Some(
                    value
                        .parse::<i32>()
                        .ok()
                        .filter(|p| (-20..=19).contains(p))
                        .ok_or_else(|| format!("{key}={value}: expected -20 to 19"))?,
                )
            }
            "memory-limit" => self.limits.memory = bytes(key, value)?,
            "virtual-memory-limit" => self.limits.virtual_memory = bytes(key, value)?,
            "stack-size" => self.limits.stack_size = bytes(key, value)?.map(|n| n as usize),
            // Metrics are always kept (the status page); mod_wsgi's switch
            // is taken for compatibility.
            "server-metrics" => {
                crate::conf::parse_flag(value).map_err(|e| format!("{key}: {e}"))?;
            }
            "switch-interval" => {
                self.switch_interval =
                    Some(parse_switch_interval(value).map_err(|e| format!("{key}={e}"))?)
            }
            // oxwsgi always interrupts the request's thread first (what
            // mod_wsgi 6 does with a non-zero value); 0 keeps the default
            // grace.
            "interrupt-timeout" => {
                self.interrupt_timeout = time(key, value)?.filter(|d| !d.is_zero())
            }
            // The relay flushes where the app's chunk ends and nothing more
            // of the response is waiting, never because the daemon's
            // socket ran dry: a bulk transfer is already coalesced.
            "response-flush-delay" => {
                count(key, value, 0, usize::MAX)?;
            }
            "newrelic-config-file" | "newrelic-environment" => {
                return Err(format!("{key}: {NEW_RELIC_REFUSED}"));
            }
            k if NOT_YET.contains(&k) => {
                return Err(format!("option {k} is not supported by oxwsgi yet"));
            }
            k => return Err(format!("unknown option {k}")),
        }
        Ok(())
    }

    /// What a group's options mean for each of its apps (those it preloads
    /// and those the server names): the group's request and queue timeouts
    /// where the app has none, and 504 for a queue timeout, as mod_wsgi's
    /// daemon mode answers. No reload in place: a daemon that sees its
    /// script changed is replaced (`serve`), which also looks at the file
    /// once a request instead of twice.
    pub fn apply_to(&self, app: &mut crate::app::AppOptions) {
        app.request_timeout = app.request_timeout.or(self.request_timeout);
        app.queue_timeout = app.queue_timeout.or(self.queue_timeout);
        app.queue_timeout_status = 504;
        app.reload_on_change = false;
    }
}

impl GroupOptions {
    /// The user the group runs as when it is not the server's worker user
    /// (`workers`, a uid; `None`: the server cannot change user): a
    /// boundary between users, which a daemon forked from the server (with
    /// the server's memory) would not be.
    pub fn own_user(&self, workers: Option<u32>) -> Option<&str> {
        let user = self.user.as_deref()?;
        (crate::daemon::sys::user_id(user).ok()? != workers?).then_some(user)
    }

    /// What the server can know when it reads its configuration of a group
    /// whose daemons could not be a fresh interpreter: one with a user of
    /// its own and `python-executable=off` would be a copy of the server.
    pub fn check_isolation(&self, workers: Option<u32>) -> Result<(), String> {
        match self.own_user(workers) {
            Some(user) if self.python_executable == PythonExecutable::Off => Err(format!(
                "python-executable=off: the group runs as {user}, not as the server's user, so its \
                 daemons run a freshly executed interpreter, never a copy of the server (which \
                 holds the server's secrets, its TLS keys among them)"
            )),
            _ => Ok(()),
        }
    }
}

impl GroupOptions {
    /// Who the daemons will run as: `user=` (with `group=` and
    /// `supplementary-groups=`), else this process's own identity (a server
    /// not started as root keeps it).
    pub fn identity(&self) -> Result<crate::daemon::server::reach::Identity, String> {
        let Some(user) = &self.user else {
            // SAFETY: geteuid and getegid have no preconditions.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            return Ok(crate::daemon::server::reach::Identity {
                name: format!("uid {uid}"),
                uid,
                gids: vec![gid],
            });
        };
        let (uid, gids) = crate::daemon::sys::identity_of(
            user,
            self.group.as_deref(),
            self.supplementary_groups.as_deref(),
        )?;
        Ok(crate::daemon::server::reach::Identity {
            name: format!("user={user}"),
            uid,
            gids,
        })
    }

    /// What the server can check, as the daemons' user, of what they will
    /// open: the interpreter they execute (the virtualenv's, unless they run
    /// the server's own Python), their `home=`, and `scripts` (the WSGI
    /// scripts the group serves). The error names the path and what is
    /// missing.
    pub fn check_reach(&self, scripts: &[&Path]) -> Result<(), String> {
        use crate::daemon::server::reach::Need;
        let who = self.identity()?;
        let suffix = "; the daemons would fail at every start";
        if let Some(program) = self.interpreter() {
            if program.exists() {
                who.can(&program, Need::Execute)
                    .map_err(|e| format!("{e}: the group's interpreter{suffix}"))?;
            }
        }
        if let Some(home) = &self.home {
            who.can(home, Need::Enter)
                .map_err(|e| format!("home={}: {e}{suffix}", home.display()))?;
        }
        // A script that is not there yet is the app's business (a request
        // answers 500 and logs it, as under mod_wsgi); one that is there
        // but closed to the daemons' user is a configuration mistake.
        for script in scripts.iter().filter(|s| s.exists()) {
            who.can(script, Need::Read)
                .map_err(|e| format!("{e}: a script of the group{suffix}"))?;
        }
        Ok(())
    }

    /// The interpreter the daemons execute, unless they run the server's
    /// own Python (`python-executable=off`): the virtualenv's (or
    /// prefix's) `bin/python3.X`, the one named, or the build's.
    pub fn interpreter(&self) -> Option<PathBuf> {
        let (major, minor) = crate::python::interpreter::embedded_version();
        let versioned = format!("python{major}.{minor}");
        match &self.python_executable {
            PythonExecutable::Off => None,
            PythonExecutable::Path(p) => Some(p.clone()),
            PythonExecutable::Auto => Some(match &self.python_home {
                Some(home) => home.join("bin").join(&versioned),
                None => Path::new(env!("OXWSGI_BUILD_PYTHON")).with_file_name(&versioned),
            }),
        }
    }
}

/// A group's daemons never run as root (as mod_wsgi's): its apps would
/// own the machine.
fn not_root(user: &str) -> Result<(), String> {
    match crate::daemon::sys::user_id(user) {
        Ok(0) => Err(format!(
            "user={user}: a process group's daemons never run as root; name an unprivileged user"
        )),
        _ => Ok(()),
    }
}

fn count(key: &str, value: &str, min: usize, max: usize) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            if max == usize::MAX {
                format!("{key}={value}: expected a number, {min} or more")
            } else {
                format!("{key}={value}: expected {min} to {max}")
            }
        })
}

fn nonempty(key: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err(format!("{key}= needs a value"))
    } else {
        Ok(value.to_string())
    }
}

/// A time: `0` or `off` is none.
fn time(key: &str, value: &str) -> Result<Option<Duration>, String> {
    if value == "0" {
        return Ok(None);
    }
    crate::conf::parse_timeout(value).map_err(|e| format!("{key}: {e}"))
}

/// A size in bytes: `0` is none.
fn bytes(key: &str, value: &str) -> Result<Option<u64>, String> {
    let n = crate::conf::parse_size(value).map_err(|e| format!("{key}: {e}"))?;
    Ok(Some(n).filter(|n| *n > 0))
}

/// A buffer size of at least `min` bytes: `0` is the default.
fn buffer(key: &str, value: &str, min: u64) -> Result<Option<usize>, String> {
    match bytes(key, value)? {
        Some(n) if n < min => Err(format!("{key}={value}: must be {min} bytes or more, or 0")),
        n => Ok(n.map(|n| n as usize)),
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
                "maximum-requests=1000",
                "request-timeout=60",
                "queue-timeout=500ms",
                "memory-limit=512m",
                "inactivity-timeout=0",
            ],
        )
        .unwrap();
        assert_eq!((o.processes, o.threads), (2, 15));
        assert_eq!(o.display_name.as_deref(), Some("(wsgi:site)"));
        assert_eq!(o.umask, Some(0o007));
        assert_eq!(o.python_path.len(), 2);
        assert_eq!(o.lifecycle.maximum_requests, Some(1000));
        assert_eq!(o.request_timeout, Some(Duration::from_secs(60)));
        assert_eq!(o.queue_timeout, Some(Duration::from_millis(500)));
        assert_eq!(o.limits.memory, Some(512 << 20));
        assert_eq!(o.lifecycle.inactivity_timeout, None, "0 is off");
        assert_eq!(o.python_executable, PythonExecutable::Auto);
        let words: Vec<&str> = o.words.iter().map(String::as_str).collect();
        assert_eq!(
            GroupOptions::parse("site", &words).unwrap(),
            o,
            "parsed again"
        );
        assert_eq!(
            GroupOptions::parse("g", &["python-executable=off"])
                .unwrap()
                .python_executable,
            PythonExecutable::Off
        );
        let spec =
            super::super::spec::GroupSpec::new("site", o, "/run/x.sock".into(), None, vec![])
                .unwrap();
        assert_eq!(spec.options.processes, 2);
    }

    #[test]
    fn no_daemon_runs_as_root() {
        for user in ["root", "#0"] {
            let e = GroupOptions::parse("g", &[&format!("user={user}")]).unwrap_err();
            assert!(e.contains("never run as root"), "{e}");
            let mut o = GroupOptions::parse("g", &[]).unwrap();
            let e = o.add("g", &format!("user={user}")).unwrap_err();
            assert!(e.contains("never run as root"), "{e}");
        }
        assert!(GroupOptions::parse("g", &["user=nobody"]).is_ok());
    }

    #[test]
    fn defaults_are_mod_wsgis() {
        let o = GroupOptions::parse("g", &[]).unwrap();
        assert_eq!((o.processes, o.threads), (1, 15));
        assert_eq!(o.lifecycle.graceful_timeout, Duration::from_secs(15));
        assert_eq!(o.lifecycle.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(o.lifecycle.deadlock_timeout, Some(Duration::from_secs(300)));
        assert_eq!(o.connect_timeout, Duration::from_secs(15));
        assert_eq!(o.listen_backlog, 100);
        assert_eq!(o.lifecycle.maximum_requests, None);
    }

    #[test]
    fn mod_wsgi_6s_options_mean_what_they_say() {
        let o = GroupOptions::parse(
            "g",
            &[
                "switch-interval=0.002",
                "interrupt-timeout=2",
                "response-flush-delay=5",
            ],
        )
        .unwrap();
        assert_eq!(o.switch_interval, Some(Duration::from_millis(2)));
        assert_eq!(o.interrupt_timeout, Some(Duration::from_secs(2)));
        let o = GroupOptions::parse("g", &["interrupt-timeout=0"]).unwrap();
        assert_eq!(o.interrupt_timeout, None, "0 keeps the default grace");
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
        for k in SUPPORTED {
            assert!(!NOT_YET.contains(k), "{k}");
        }
        let e = GroupOptions::parse("g", &["colour=blue"]).unwrap_err();
        assert_eq!(e, "unknown option colour");
        for bad in [
            "processes=0",
            "threads=x",
            "umask=999",
            "user=",
            "python-path=rel",
            "maximum-requests=-1",
            "request-timeout=soon",
            "header-buffer-size=100",
            "response-buffer-size=1k",
            "cpu-priority=40",
            "user=no-such-user-here",
            "group=no-such-group-here",
            "listen-backlog=0",
            "server-metrics=maybe",
            "python-executable=python3",
            "switch-interval=0",
            "switch-interval=fast",
            "interrupt-timeout=soon",
            "response-flush-delay=-5",
            "newrelic-config-file=/etc/newrelic.ini",
        ] {
            let e = GroupOptions::parse("g", &[bad]).unwrap_err();
            let key = bad.split('=').next().unwrap();
            assert!(e.contains(key), "{bad}: {e}");
        }
        assert!(
            GroupOptions::parse("g", &["threads"])
                .unwrap_err()
                .contains("option=value")
        );
        assert!(GroupOptions::parse("a/b", &[]).is_err());
        assert!(
            GroupOptions::parse("g", &["script-user=a", "script-group=b"])
                .unwrap_err()
                .contains("only one of script-user and script-group")
        );
    }
}

//! Everything a server's configuration is made from, resolved and checked
//! once: the app, its Python, the server's files, the directories, the
//! user. The renderers (`nginx`, `apache`) only write it down.

use std::path::{Path, PathBuf};

use crate::args::{Options, Server};
use crate::install::Install;
use crate::python::Python;
use crate::target::{Source, Target};

/// How long a graceful stop may take after the drain before the command
/// ends the server (Apache's GracefulShutdownTimeout is half of it).
pub const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Plan {
    pub options: Options,
    pub target: Target,
    pub python: Python,
    pub install: Install,
    /// The server's directory: its configuration, logs, pid and temporary
    /// files.
    pub root: PathBuf,
    pub working_directory: PathBuf,
    /// The target's own, then `--python-path`'s (absolute).
    pub python_path: Vec<PathBuf>,
    /// `(URL, DIR)`, both without a trailing slash (except `/`).
    pub url_aliases: Vec<(String, PathBuf)>,
    /// Who the server's workers and the app run as, when started as root.
    pub user: Option<String>,
}

/// A directory the command was given (`flag` says which), which this user
/// must be able to read; its canonical path.
fn readable_dir(flag: &str, p: &Path) -> Result<PathBuf, String> {
    if !p.is_dir() {
        return Err(format!("{flag} {}: no such directory", p.display()));
    }
    if std::fs::read_dir(p).is_err() {
        return Err(format!("{flag} {}: this user may not read it", p.display()));
    }
    Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// The certificate and key, which must be readable.
fn check_certificates(options: &Options, cwd: &Path) -> Result<(), String> {
    let files = [
        &options.ssl_certificate_file,
        &options.ssl_certificate_key_file,
    ];
    for f in files.into_iter().flatten() {
        std::fs::File::open(cwd.join(f))
            .map_err(|e| format!("{}: cannot be read: {e}", f.display()))?;
    }
    Ok(())
}

/// What Apache's children cannot do for an app of their own (`--group`
/// can).
fn check_apache_embedded(options: &Options) -> Result<(), String> {
    if options.server != Server::Apache || options.group {
        return Ok(());
    }
    if options.max_requests.is_some() {
        return Err(
            "--max-requests on Apache needs --group: Apache replaces its own \
                    children, as under mod_wsgi's embedded mode"
                .into(),
        );
    }
    if options.working_directory.is_some() {
        return Err(
            "--working-directory on Apache needs --group: Apache's children \
                    are shared by every app"
                .into(),
        );
    }
    Ok(())
}

/// Who the app runs as: started as root, `--user` (default www-data);
/// otherwise the invoking user, and `--user` is a mistake.
fn user_to_run_as(options: &Options, is_root: bool) -> Result<Option<String>, String> {
    if is_root {
        let u = options.user.clone().unwrap_or_else(|| "www-data".into());
        if crate::sys::ids_of(&u).is_none() {
            return Err(format!("--user {u}: no such user"));
        }
        return Ok(Some(u));
    }
    match &options.user {
        Some(u) => Err(format!(
            "--user {u}: only root can run the app as another user"
        )),
        None => Ok(None),
    }
}

/// The name of the process group the app runs in with `--group`.
pub const GROUP: &str = "app";

impl Plan {
    pub fn new(
        options: Options,
        cwd: &Path,
        root: PathBuf,
        install: Install,
        active_venv: Option<PathBuf>,
        is_root: bool,
    ) -> Result<Plan, String> {
        let target = crate::target::resolve(&options.app, options.callable.as_deref(), cwd)?;
        let python_home = options.python_home.as_deref().map(|p| cwd.join(p));
        let python = crate::python::resolve(python_home.as_deref(), active_venv)?;
        let dir = |flag: &str, p: &Path| readable_dir(flag, &cwd.join(p));
        let mut python_path = target.python_path.clone();
        for p in &options.python_path {
            python_path.push(dir("--python-path", p)?);
        }
        let working_directory = match &options.working_directory {
            Some(w) => dir("--working-directory", w)?,
            None => target.directory.clone(),
        };
        let mut url_aliases = Vec::new();
        for (url, d) in &options.url_aliases {
            let d = dir(&format!("--url-alias {url}"), d)?;
            let url = match url.trim_end_matches('/') {
                "" => "/".to_string(),
                u => u.to_string(),
            };
            url_aliases.push((url, d));
        }
        check_certificates(&options, cwd)?;
        check_apache_embedded(&options)?;
        let user = user_to_run_as(&options, is_root)?;
        let paths = paths_of(
            &target,
            &python,
            &python_path,
            &url_aliases,
            &working_directory,
        );
        for p in paths {
            if p.to_string_lossy().contains(['"', '$', '\\', '\n']) {
                return Err(format!(
                    "{}: a path with \", $, \\ or a newline cannot go into a server's configuration",
                    p.display()
                ));
            }
        }
        let mut options = options;
        options.ssl_certificate_file = options.ssl_certificate_file.map(|f| cwd.join(f));
        options.ssl_certificate_key_file = options.ssl_certificate_key_file.map(|f| cwd.join(f));
        Ok(Plan {
            options,
            target,
            python,
            install,
            root,
            working_directory,
            python_path,
            url_aliases,
            user,
        })
    }

    /// How long readiness answers 503 before a graceful stop.
    pub fn drain_time(&self) -> u32 {
        let o = &self.options;
        o.drain_time
            .unwrap_or(if o.health_url.is_some() { 5 } else { 0 })
    }

    /// `host:port` as a listen directive takes it (IPv6 in brackets).
    pub fn listen(&self, port: u16) -> String {
        let h = &self.options.host;
        if h.contains(':') && !h.starts_with('[') {
            format!("[{h}]:{port}")
        } else {
            format!("{h}:{port}")
        }
    }

    /// The URL the app answers on.
    pub fn url(&self) -> String {
        format!("http://{}/", self.reachable(self.options.port))
    }

    /// `host:port` as a client on this machine reaches `port`: loopback
    /// when the server listens on every address.
    pub fn reachable(&self, port: u16) -> String {
        match self.options.host.as_str() {
            "0.0.0.0" => format!("127.0.0.1:{port}"),
            "::" | "[::]" => format!("[::1]:{port}"),
            _ => self.listen(port),
        }
    }

    /// The process group's options: mod_wsgi's spelling for Apache
    /// (`python-home=`, `maximum-requests=`), nginx's otherwise.
    pub fn group_options(&self, mod_wsgi: bool) -> String {
        let o = &self.options;
        let name = |n: &str| {
            if mod_wsgi {
                n.replace('_', "-")
            } else {
                n.to_string()
            }
        };
        let mut words = vec![
            format!("processes={}", o.processes.unwrap_or(1)),
            format!("threads={}", o.threads.unwrap_or(8)),
        ];
        if mod_wsgi {
            words.push("display-name=%{GROUP}".to_string());
        }
        if let Some(h) = &self.python.home {
            words.push(quoted(format!("{}={}", name("python_home"), h.display())));
        }
        if !self.python_path.is_empty() {
            words.push(quoted(format!(
                "{}={}",
                name("python_path"),
                self.python_path_joined()
            )));
        }
        words.push(quoted(format!("home={}", self.working_directory.display())));
        if let Some(n) = o.max_requests {
            let key = if mod_wsgi {
                "maximum-requests"
            } else {
                "max_requests"
            };
            words.push(format!("{key}={n}"));
        }
        if let Some(t) = o.request_timeout {
            words.push(format!(
                "{}={t}{}",
                name("request_timeout"),
                if mod_wsgi { "" } else { "s" }
            ));
        }
        words.join(" ")
    }

    pub fn python_path_joined(&self) -> String {
        self.python_path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The script the server is given: the app's, or for a module one the
    /// command writes into the root (Apache takes only scripts).
    pub fn script(&self) -> PathBuf {
        match &self.target.source {
            Source::Script(p) => p.clone(),
            Source::Module(_) => self.root.join("app.wsgi"),
        }
    }

    /// That script's text, for a module.
    pub fn module_script(&self) -> Option<String> {
        match &self.target.source {
            Source::Script(_) => None,
            Source::Module(m) => Some(format!(
                "# Written by oxwsgi: serves {m}:{c}.\nfrom {m} import {c} as application\n",
                c = self.target.callable
            )),
        }
    }
}

fn paths_of<'a>(
    target: &'a Target,
    python: &'a Python,
    python_path: &'a [PathBuf],
    aliases: &'a [(String, PathBuf)],
    working_directory: &'a Path,
) -> impl Iterator<Item = &'a Path> {
    let script = match &target.source {
        Source::Script(p) => Some(p.as_path()),
        Source::Module(_) => None,
    };
    script
        .into_iter()
        .chain(python.home.as_deref())
        .chain(python_path.iter().map(PathBuf::as_path))
        .chain(aliases.iter().map(|(_, d)| d.as_path()))
        .chain([working_directory])
}

/// The first lines of a configuration the command writes for `server`.
/// A configuration being written, a line at a time.
#[derive(Default)]
pub struct Lines(String);

impl Lines {
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }

    pub fn text(self) -> String {
        self.0
    }
}

pub fn header(plan: &Plan, server: &str) -> String {
    format!(
        "# Written by oxwsgi for {}: {server} with oxwsgi's module, every file it\n\
         # writes in this directory.",
        plan.target.describe
    )
}

/// `s` as one quoted token of an nginx or Apache configuration (the paths
/// were checked to hold no quote, `$` or backslash).
pub fn quoted(s: impl std::fmt::Display) -> String {
    format!("\"{s}\"")
}

//! An Apache httpd under test: /usr/sbin/apache2 from Debian's package with
//! the built module, its own configuration and files in a temp dir, on a free
//! loopback port. Dropping it stops it (by PID).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ServerProcess, built_file, free_port, output_text, repo, temp_dir};

pub const APACHE: &str = "/usr/sbin/apache2";

/// The module built by `cargo build -p oxwsgi-apache` (`make test` builds it).
pub fn module() -> PathBuf {
    built_file(
        Some("OXWSGI_APACHE_MODULE"),
        "target/debug/libmod_oxwsgi.so",
        "build it with `cargo build -p oxwsgi-apache` (make test does)",
    )
}

/// Renders a complete configuration around `body` (directives at server
/// level), loading oxwsgi.
pub fn render(dir: &std::path::Path, port: u16, mpm: &str, body: &str) -> String {
    let load = format!("LoadModule wsgi_module {}", module().display());
    render_with(dir, port, mpm, &load, body)
}

/// The LoadModule line of Debian's mod_wsgi, for comparisons: build/deps.sh
/// unpacks it into build/out (installing it would conflict with
/// libapache2-mod-oxwsgi, which the package tests install).
pub fn mod_wsgi() -> String {
    let p = built_file(
        None,
        &format!(
            "{}/usr/lib/apache2/modules/mod_wsgi.so",
            crate::unpacked("mod_wsgi")
        ),
        "build/deps.sh unpacks it (make test runs it)",
    );
    format!("LoadModule wsgi_module {}", p.display())
}

/// The LoadModule lines of oxwsgi and of Debian's mod_wsgi: a test that
/// runs the same configuration under both.
pub fn both_loads() -> [String; 2] {
    [
        format!("LoadModule wsgi_module {}", module().display()),
        mod_wsgi(),
    ]
}

/// As `render`, with `load` as the WSGI module's LoadModule line.
pub fn render_with(dir: &std::path::Path, port: u16, mpm: &str, load: &str, body: &str) -> String {
    format!(
        "ServerRoot {dir}\n\
         DefaultRuntimeDir {dir}\n\
         PidFile {dir}/httpd.pid\n\
         Listen 127.0.0.1:{port}\n\
         ServerName 127.0.0.1\n\
         User www-data\n\
         Group www-data\n\
         ErrorLog {dir}/error.log\n\
         LogLevel info\n\
         LoadModule mpm_{mpm}_module /usr/lib/apache2/modules/mod_mpm_{mpm}.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
         LoadModule env_module /usr/lib/apache2/modules/mod_env.so\n\
         LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n\
         {load}\n\
         DocumentRoot {dir}\n\
         <Directory {repo}>\n    Require all granted\n</Directory>\n\
         {body}\n",
        dir = dir.display(),
        repo = repo().display(),
    )
}

/// Runs `apache2 -t` on a configuration body; returns success and output.
pub fn check(body: &str) -> (bool, String) {
    check_env(body, &[])
}

/// `apache2ctl -t` with `body` fails, and says `message`.
pub fn assert_refused(body: &str, message: &str) {
    let (ok, out) = check(body);
    assert!(!ok, "{body}: accepted");
    assert!(out.contains(message), "{body}: {out}");
}

/// As `check`, with extra environment variables for apache2.
pub fn check_env(body: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = temp_dir("apache-t");
    let conf = dir.join("httpd.conf");
    std::fs::write(&conf, render(&dir, free_port(), "event", body)).unwrap();
    let out = Command::new(APACHE)
        .envs(env.iter().copied())
        .arg("-t")
        .arg("-f")
        .arg(&conf)
        .output()
        .expect("apache2 -t");
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), output_text(&out))
}

pub struct Apache {
    pub port: u16,
    server: ServerProcess,
}

impl Apache {
    /// Starts Apache with the `mpm` MPM (event, worker, prefork) and `body`.
    pub fn start(mpm: &str, body: &str) -> Apache {
        let load = format!("LoadModule wsgi_module {}", module().display());
        Apache::start_with(mpm, &load, body)
    }

    /// As `start`, with `load` as the WSGI module's LoadModule line; `body`
    /// may use `{port}` for the listening port.
    pub fn start_with(mpm: &str, load: &str, body: &str) -> Apache {
        Apache::start_env(mpm, load, body, &[])
    }

    /// As `start_with`, with extra environment variables for apache2.
    pub fn start_env(mpm: &str, load: &str, body: &str, env: &[(&str, &str)]) -> Apache {
        let dir = temp_dir("apache");
        let port = free_port();
        let conf = dir.join("httpd.conf");
        let body = body.replace("{port}", &port.to_string());
        std::fs::write(&conf, render_with(&dir, port, mpm, load, &body)).unwrap();
        // Its own process group: on shutdown prefork signals its whole
        // group, which must not include the test.
        let child = Command::new(APACHE)
            .envs(env.iter().copied())
            .process_group(0)
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(crate::stderr_file(&dir))
            .spawn()
            .expect("start apache2");
        let mut server = ServerProcess::new("apache2", dir, child, Duration::from_secs(15));
        server.wait_listening(port);
        Apache { port, server }
    }
}

impl Apache {
    /// The body of a GET of `path`, which must answer 200 (the error log
    /// otherwise shows in the failure).
    pub fn text_of(&self, path: &str) -> String {
        let r = crate::http::get(self.port, path);
        assert_eq!(r.status, 200, "{path}: {}", self.error_log());
        r.text()
    }

    /// `apachectl graceful-stop`; returns whether the parent exited in
    /// time.
    pub fn graceful_stop(&mut self, timeout: Duration) -> bool {
        self.server.signal(libc::SIGWINCH);
        self.server.wait_exit(timeout)
    }

    /// The parent's child processes (the ones that serve requests).
    pub fn children(&self) -> Vec<i32> {
        crate::children_of(self.server.pid())
    }
}

impl std::ops::Deref for Apache {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.server
    }
}

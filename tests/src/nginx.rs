//! An nginx under test: /usr/sbin/nginx from Debian's package with the built
//! module, its own config and files in a temp dir, on a free loopback port.
//! Dropping it stops it (by PID).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ServerProcess, built_file, free_port, output_text, temp_dir, wait_until};

pub const NGINX: &str = "/usr/sbin/nginx";

/// The module built by `cargo build -p oxwsgi-nginx` (`make test` builds it).
pub fn module() -> PathBuf {
    built_file(
        Some("OXWSGI_NGINX_MODULE"),
        "target/debug/libngx_http_oxwsgi_module.so",
        "build it with `cargo build -p oxwsgi-nginx` (make test does)",
    )
}

/// What goes into the generated configuration.
pub struct Config {
    pub workers: usize,
    /// Lines at the `http` level (e.g. `wsgi_threads 4;`).
    pub http: String,
    /// The `server` block's body, after its `listen`.
    pub server: String,
    /// Extra `listen` parameters (`http2`, `ssl`).
    pub listen: String,
    /// Environment variables for nginx, kept for its workers (`env`).
    pub env: Vec<(String, String)>,
    /// The error log's level (`info` unless a test wants `debug`).
    pub log_level: &'static str,
}

impl Config {
    pub fn new(server: &str) -> Config {
        Config {
            workers: 1,
            http: String::new(),
            server: server.into(),
            listen: String::new(),
            env: Vec::new(),
            log_level: "info",
        }
    }

    /// Sets `name=value` in nginx's environment and keeps it for workers.
    pub fn env(mut self, name: &str, value: &str) -> Config {
        self.env.push((name.into(), value.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(NGINX);
        c.envs(self.env.iter().map(|(n, v)| (n, v)));
        c
    }

    pub fn http(mut self, lines: &str) -> Config {
        self.http.push_str(lines);
        self.http.push('\n');
        self
    }

    pub fn render(&self, dir: &std::path::Path, port: u16) -> String {
        let env: String = self
            .env
            .iter()
            .map(|(n, _)| format!("env {n};\n"))
            .collect();
        format!(
            "load_module {module};\n\
             {env}\
             daemon off;\n\
             worker_processes {workers};\n\
             error_log {dir}/error.log {log_level};\n\
             pid {dir}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
                 access_log {dir}/access.log;\n\
                 client_body_temp_path {dir}/body;\n\
                 {http}\n\
                 server {{\n\
                     listen 127.0.0.1:{port} {listen};\n\
                     {server}\n\
                 }}\n\
             }}\n",
            module = module().display(),
            workers = self.workers,
            log_level = self.log_level,
            dir = dir.display(),
            http = self.http,
            listen = self.listen,
            server = self.server,
        )
    }
}

/// nginx serving the `cases.py` fixture at `/` from group `site`, with
/// `options` for its `wsgi_daemon_process`.
pub fn cases_in_group(options: &str) -> Config {
    Config::new(&format!(
        "location / {{ wsgi_process_group site; wsgi_app {}; }}",
        crate::app("cases.py")
    ))
    .http(&format!("wsgi_daemon_process site {options};"))
}

pub struct Nginx {
    pub port: u16,
    server: ServerProcess,
}

/// Runs `nginx -t` on a rendered config; returns success and nginx's output.
pub fn check(config: &Config) -> (bool, String) {
    let dir = temp_dir("nginx-t");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config.render(&dir, free_port())).unwrap();
    let out = config
        .command()
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .output()
        .expect("run nginx -t");
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), output_text(&out))
}

impl Nginx {
    /// Starts nginx with `config` and waits until it accepts connections.
    pub fn start(config: Config) -> Nginx {
        let dir = temp_dir("nginx");
        let port = free_port();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config.render(&dir, port)).unwrap();
        let child = config
            .command()
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(crate::stderr_file(&dir))
            .spawn()
            .expect("start nginx");
        let mut server = ServerProcess::new("nginx", dir, child, Duration::from_secs(10));
        server.wait_listening(port);
        // The master listens before it forks its workers, and the kernel
        // takes connections meanwhile: a test that looks at the workers
        // must find them there.
        let master = server.pid();
        wait_until(Duration::from_secs(10), || {
            crate::children_of(master).len() >= config.workers
        });
        Nginx { port, server }
    }

    pub fn master_pid(&self) -> i32 {
        self.server.pid()
    }

    /// The master's worker processes.
    pub fn workers(&self) -> Vec<i32> {
        crate::children_of(self.master_pid())
    }

    /// The daemons of process group `group` (children of the master's
    /// group manager, named `(wsgi:GROUP)`).
    pub fn group_daemons(&self, group: &str) -> Vec<i32> {
        let comm = |p: i32| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        crate::children_of(self.master_pid())
            .into_iter()
            .filter(|p| comm(*p) == "oxwsgi: groups")
            .flat_map(crate::children_of)
            .filter(|p| comm(*p) == format!("(wsgi:{group})"))
            .collect()
    }

    /// Graceful shutdown; returns whether the master exited in time.
    pub fn quit(&mut self, timeout: Duration) -> bool {
        self.server.signal(libc::SIGQUIT);
        self.server.wait_exit(timeout)
    }
}

impl std::ops::Deref for Nginx {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.server
    }
}

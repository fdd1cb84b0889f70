//! A plan's server: its files written into the root, its configuration
//! tested, then run in the foreground as a child of the command (in a
//! process group of its own, and ended with the command however that
//! ends). A signal stops it gracefully, `--reload-on-changes` reloads it.

use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::Server;
use crate::plan::{Plan, STOP_LIMIT};

/// What a command line of the server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Test,
    Foreground,
    Start,
    Stop,
    Reload,
}

/// How long a server may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

pub fn config_path(plan: &Plan) -> PathBuf {
    plan.root.join(match plan.options.server {
        Server::Nginx => "nginx.conf",
        Server::Apache => "httpd.conf",
    })
}

/// The error log's file, or `None` on the terminal.
pub fn error_log(plan: &Plan) -> Option<PathBuf> {
    (!plan.options.log_to_terminal).then(|| plan.root.join("error.log"))
}

/// The server's command line for `mode`.
pub fn argv(plan: &Plan, mode: Mode) -> Vec<String> {
    let conf = config_path(plan).display().to_string();
    let mut a = vec![plan.install.program.display().to_string()];
    match plan.options.server {
        Server::Nginx => {
            let log = error_log(plan).map_or_else(|| "stderr".into(), |p| p.display().to_string());
            a.extend(
                [
                    "-p",
                    &plan.root.display().to_string(),
                    "-c",
                    &conf,
                    "-e",
                    &log,
                ]
                .map(String::from),
            );
            match mode {
                Mode::Test => a.extend(["-t", "-q"].map(String::from)),
                Mode::Foreground => a.extend(["-g", "daemon off;"].map(String::from)),
                Mode::Start => {}
                Mode::Stop => a.extend(["-s", "quit"].map(String::from)),
                Mode::Reload => a.extend(["-s", "reload"].map(String::from)),
            }
        }
        Server::Apache => {
            a.extend(["-f".to_string(), conf]);
            a.extend(
                match mode {
                    Mode::Test => &["-t"][..],
                    Mode::Foreground => &["-DFOREGROUND"],
                    Mode::Start => &["-k", "start"],
                    Mode::Stop => &["-k", "graceful-stop"],
                    Mode::Reload => &["-k", "graceful"],
                }
                .iter()
                .map(|s| s.to_string()),
            );
        }
    }
    a
}

/// Writes the configuration (and, for a module, the script that imports
/// it) into the root.
pub fn write_files(plan: &Plan) -> Result<(), String> {
    let fail = |p: &std::path::Path, e: io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(plan.root.join("tmp")).map_err(|e| fail(&plan.root, e))?;
    let text = match plan.options.server {
        Server::Nginx => crate::nginx::render(plan),
        Server::Apache => crate::apache::render(plan),
    };
    let conf = config_path(plan);
    std::fs::write(&conf, text).map_err(|e| fail(&conf, e))?;
    if let Some(script) = plan.module_script() {
        let p = plan.script();
        std::fs::write(&p, script).map_err(|e| fail(&p, e))?;
    }
    Ok(())
}

/// Whether the ports can be listened on: one clear message if not.
pub fn check_ports(plan: &Plan) -> Result<(), String> {
    let ports = std::iter::once(plan.options.port).chain(plan.options.https_port);
    for port in ports {
        let addr = plan.listen(port);
        let addrs = addr
            .to_socket_addrs()
            .map_err(|e| format!("--host {}: {e}", plan.options.host))?;
        for a in addrs {
            if let Err(e) = TcpListener::bind(a) {
                return Err(match e.kind() {
                    io::ErrorKind::AddrInUse => format!(
                        "port {port} on {} is in use: choose another with --port",
                        plan.options.host
                    ),
                    io::ErrorKind::PermissionDenied => format!(
                        "port {port} is not allowed for this user (ports below 1024 need root): \
                         choose one above with --port"
                    ),
                    io::ErrorKind::AddrNotAvailable => format!(
                        "--host {}: not an address of this machine",
                        plan.options.host
                    ),
                    _ => format!("port {port} on {}: {e}", plan.options.host),
                });
            }
        }
    }
    Ok(())
}

/// Tests the configuration with the server itself; its first complaint.
pub fn test_config(plan: &Plan) -> Result<(), String> {
    let a = argv(plan, Mode::Test);
    let out = Command::new(&a[0])
        .args(&a[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", a[0]))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Err(first_complaint(&text).unwrap_or_else(|| format!("{} refused the configuration", a[0])))
}

/// The line that says what is wrong, without the server's prefixes (with
/// the next line when Apache's ends in a colon: the reason is there).
fn first_complaint(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let at = lines.iter().position(|l| {
        l.contains("[emerg]")
            || l.contains("[alert]")
            || l.contains("[crit]")
            || l.contains("Syntax error")
            || l.contains("AH0")
            || l.contains("oxwsgi:")
    })?;
    let l = lines[at];
    let l = l.strip_prefix("nginx: ").unwrap_or(l);
    let l = l
        .split_once("] ")
        .filter(|(head, _)| head.starts_with('['))
        .map_or(l, |(_, rest)| rest);
    Some(match lines.get(at + 1) {
        Some(next) if l.ends_with(':') && !next.is_empty() => format!("{l} {next}"),
        _ => l.to_string(),
    })
}

/// The last lines of the error log, for a server that stopped.
fn log_tail(plan: &Plan) -> String {
    let Some(p) = error_log(plan) else {
        return String::new();
    };
    let text = std::fs::read_to_string(&p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    format!("\n{tail}\n(the whole log: {})", p.display())
}

/// Runs the server in the foreground until a signal; the exit status.
pub fn run(plan: &Plan, say: &dyn Fn(&str)) -> Result<i32, String> {
    crate::sys::block_signals();
    let a = argv(plan, Mode::Foreground);
    let mut cmd = Command::new(&a[0]);
    cmd.args(&a[1..])
        .stdin(Stdio::null())
        .current_dir(&plan.root)
        .process_group(0);
    if plan.options.log_to_terminal && plan.options.server == Server::Apache {
        // Apache's error log program writes to Apache's stdout.
        cmd.stdout(std::io::stderr());
    }
    crate::sys::end_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", a[0]))?;
    serve_until_stopped(plan, Running { child: &mut child }, started, say)
}

struct Running<'a> {
    child: &'a mut Child,
}

impl Running<'_> {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, s: i32) {
        crate::sys::kill(self.child.id(), s);
    }

    /// Stops gracefully (after the drain), then for good after
    /// `STOP_LIMIT` more; returns once
    /// every process the server started is gone (a process group's
    /// daemons follow its master a moment later).
    fn stop(&mut self, server: Server, drain: Duration) {
        self.signal(match server {
            Server::Nginx => libc::SIGQUIT,
            // graceful-stop: the drain (WSGIDrainTime), then what is in
            // flight finishes (GracefulShutdownTimeout).
            Server::Apache => libc::SIGWINCH,
        });
        let t = Instant::now();
        while self.exited().is_none() {
            if t.elapsed() > STOP_LIMIT + drain {
                self.signal(libc::SIGKILL);
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_for_stragglers();
    }

    /// Waits for what the server left in its process group to go, and
    /// ends what is still there after a few seconds.
    fn wait_for_stragglers(&mut self) {
        let pgid = self.child.id();
        let t = Instant::now();
        while crate::sys::group_alive(pgid) {
            if t.elapsed() > Duration::from_secs(5) {
                crate::sys::kill_group(pgid, libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve_until_stopped(
    plan: &Plan,
    mut server: Running<'_>,
    started: Instant,
    say: &dyn Fn(&str),
) -> Result<i32, String> {
    if let Some(code) = until_listening(plan, &mut server, started)? {
        return Ok(code);
    }
    announce(plan, started, say);
    let watch = watcher(plan, say);
    serve(plan, server, watch, say)
}

/// Waits until the server listens; `Some(0)` if the command was stopped
/// meanwhile (the server stopped too), an error if the server did not
/// come up.
fn until_listening(
    plan: &Plan,
    server: &mut Running<'_>,
    started: Instant,
) -> Result<Option<i32>, String> {
    let kind = plan.options.server;
    let drain = Duration::from_secs(u64::from(plan.drain_time()));
    // Listening?
    loop {
        if let Some(status) = server.exited() {
            server.wait_for_stragglers();
            return Err(format!(
                "{} stopped as it started ({status}):{}",
                kind.name(),
                log_tail(plan)
            ));
        }
        if listening(plan) {
            break;
        }
        if started.elapsed() > START_LIMIT {
            server.stop(kind, drain);
            return Err(format!(
                "{} did not listen on {} within {} s:{}",
                kind.name(),
                plan.listen(plan.options.port),
                START_LIMIT.as_secs(),
                log_tail(plan)
            ));
        }
        if let Some(s) = crate::sys::wait_signal(Duration::from_millis(20)) {
            if s != libc::SIGHUP {
                server.stop(kind, drain);
                return Ok(Some(0));
            }
        }
    }
    Ok(None)
}

/// What a person needs to know once the server listens: its URL, its
/// health URLs and its logs.
fn announce(plan: &Plan, started: Instant, say: &dyn Fn(&str)) {
    let kind = plan.options.server;
    say(&format!(
        "serving {} through {} on {} (started in {} ms; Ctrl+C stops it)",
        plan.target.describe,
        kind.name(),
        plan.url(),
        started.elapsed().as_millis()
    ));
    if let Some(p) = plan.options.https_port {
        say(&format!("HTTPS on https://{}/", plan.reachable(p)));
    }
    if let Some(h) = &plan.options.health_url {
        say(&format!(
            "health: readiness at {h}, liveness at {}/live",
            h.trim_end_matches('/')
        ));
    }
    if let Some(log) = error_log(plan) {
        say(&format!("error log: {}", log.display()));
    }
    if plan.options.access_log {
        say(&format!(
            "access log: {}",
            plan.root.join("access.log").display()
        ));
    }
}

/// With `--reload-on-changes`, what watches the app's files.
fn watcher(plan: &Plan, say: &dyn Fn(&str)) -> Option<crate::watch::Watch> {
    plan.options.reload_on_changes.then(|| {
        let mut roots = vec![plan.target.directory.clone()];
        roots.extend(plan.python_path.iter().cloned());
        let w = crate::watch::Watch::new(roots, plan.python.home.iter().cloned().collect());
        say(&format!(
            "watching {} .py files under {} for changes",
            w.len(),
            plan.target.directory.display()
        ));
        w
    })
}

/// Serves until a signal stops the command (SIGHUP reloads), the server
/// stops on its own, or a watched file changes (a reload).
fn serve(
    plan: &Plan,
    mut server: Running<'_>,
    mut watch: Option<crate::watch::Watch>,
    say: &dyn Fn(&str),
) -> Result<i32, String> {
    let kind = plan.options.server;
    let drain = Duration::from_secs(u64::from(plan.drain_time()));
    let mut last_look = Instant::now();
    loop {
        match crate::sys::wait_signal(Duration::from_millis(200)) {
            Some(libc::SIGHUP) => reload(plan, &server, say, "SIGHUP"),
            Some(_) => {
                if drain.is_zero() {
                    say(&format!("stopping {}", kind.name()));
                } else {
                    say(&format!(
                        "stopping {}: readiness answers 503 for {} s first",
                        kind.name(),
                        drain.as_secs()
                    ));
                }
                server.stop(kind, drain);
                return Ok(0);
            }
            None => {}
        }
        if let Some(status) = server.exited() {
            server.wait_for_stragglers();
            return Err(format!(
                "{} stopped ({status}):{}",
                kind.name(),
                log_tail(plan)
            ));
        }
        if let Some(w) = watch.as_mut() {
            if last_look.elapsed() >= Duration::from_secs(1) {
                last_look = Instant::now();
                if let Some(file) = w.changed() {
                    reload(plan, &server, say, &format!("{} changed", file.display()));
                }
            }
        }
    }
}

/// A graceful reload: new processes load the app again.
fn reload(plan: &Plan, server: &Running<'_>, say: &dyn Fn(&str), why: &str) {
    say(&format!("{why}: restarting the app"));
    server.signal(match plan.options.server {
        Server::Nginx => libc::SIGHUP,
        Server::Apache => libc::SIGUSR1,
    });
}

/// Whether the server answers connections on its HTTP port.
fn listening(plan: &Plan) -> bool {
    connects(&plan.reachable(plan.options.port))
}

fn connects(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complaint_without_prefixes() {
        assert_eq!(
            first_complaint(
                "nginx: [emerg] unknown directive \"wsgi_ap\" in /r/nginx.conf:9\n\
                 nginx: configuration file /r/nginx.conf test failed\n"
            )
            .as_deref(),
            Some("unknown directive \"wsgi_ap\" in /r/nginx.conf:9")
        );
        assert_eq!(
            first_complaint(
                "AH00526: Syntax error on line 3 of /r/httpd.conf:\nInvalid command 'WSGIx'\n"
            )
            .as_deref(),
            Some("AH00526: Syntax error on line 3 of /r/httpd.conf: Invalid command 'WSGIx'")
        );
        assert_eq!(first_complaint("Syntax OK\n"), None);
    }
}

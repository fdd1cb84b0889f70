//! Helpers for the end-to-end tests: start the packaged servers with the
//! built modules on free loopback ports (configs in a temp dir), talk HTTP to
//! them with a small client that can also read slowly or hang up, and read
//! their error logs.
//!
//! - `http`: the client; `nginx`, `apache`: a server under test; `venv`:
//!   virtualenvs (Flask and Django for the site tests); `cases`, `wire`:
//!   behaviour both servers must show, checked by each server's tests;
//!   `load`: wrk; `prometheus`: the status page's metrics, and promtool;
//!   `attack`: a local attacker's client for the groups' sockets.

pub mod apache;
pub mod attack;
pub mod cases;
pub mod http;
pub mod load;
pub mod nginx;
pub mod prometheus;
pub mod venv;
pub mod wire;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The repository's top directory.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `build/out/NAME` for the Debian release the tests run on: build/deps.sh
/// unpacks per release, into `NAME-SUITE` inside another release's root
/// (where OXWSGI_DIST is set).
pub fn unpacked(name: &str) -> String {
    match std::env::var("OXWSGI_DIST") {
        Ok(dist) if !dist.is_empty() => format!("build/out/{name}-{dist}"),
        _ => format!("build/out/{name}"),
    }
}

/// A fixture app from tests/apps.
pub fn app(name: &str) -> String {
    repo().join("tests/apps").join(name).display().to_string()
}

/// A copy of the `cases.py` fixture, named `name`, in a temp dir of its
/// own: for tests that change a script while it is served.
pub fn script_copy(tag: &str, name: &str) -> PathBuf {
    let script = temp_dir(tag).join(name);
    std::fs::copy(app("cases.py"), &script).expect("copy cases.py");
    script
}

/// Rewrites a `script_copy` so that its `/pid` answers `v2 PID`: new
/// contents and a new mtime (after a pause, so the two differ).
pub fn change_script(script: &std::path::Path) {
    std::thread::sleep(Duration::from_millis(20));
    let text = std::fs::read_to_string(script).expect("read the script");
    let old = "return _text(start_response, str(os.getpid()))";
    assert!(
        text.contains(old),
        "cases.py's /pid changed: update change_script"
    );
    std::fs::write(
        script,
        text.replace(old, "return _text(start_response, 'v2 %d' % os.getpid())"),
    )
    .expect("write the script");
}

/// A changed script reaches every request: `path` (the `/pid` of a
/// `script_copy` served on `port`) is asked ten times, the script is
/// changed, and each of the next twenty requests must be answered by the
/// new script (a daemon that loaded the old one restarts when it
/// notices). `log`: the server's error log, for failures. The pids that
/// answered with the old script.
pub fn change_script_under_requests(
    port: u16,
    path: &str,
    script: &std::path::Path,
    log: impl Fn() -> String,
) -> std::collections::HashSet<i32> {
    let mut old = std::collections::HashSet::new();
    for _ in 0..10 {
        let r = http::get(port, path);
        assert_eq!(r.status, 200);
        old.insert(r.text().parse::<i32>().expect("a pid"));
    }
    change_script(script);
    for _ in 0..20 {
        let r = http::get(port, path);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().starts_with("v2 "), "{}\n{}", r.text(), log());
    }
    old
}

/// A port nobody listens on right now.
///
/// The port comes from below the kernel's ephemeral range: a port from
/// `bind(0)` is one the kernel also gives to outgoing connections, and any
/// test's client could take it as its local port before the server binds it.
/// A port is handed out once per test process, and tried for TCP and UDP
/// (HTTP/3 listens on the same number).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let (low, high) = (10_000u64, ephemeral_low().max(12_000) as u64);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ ((std::process::id() as u64) << 32);
    let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        // xorshift: each process walks its own sequence of candidates.
        let mut x = STATE.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        let port = (low + x % (high - low)) as u16;
        if given.contains(&port) {
            continue;
        }
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            given.push(port);
            return port;
        }
    }
    panic!("no free port below {high} on 127.0.0.1");
}

/// The first port the kernel hands to outgoing connections.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A fresh directory for one server's files, readable by nginx's workers.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("oxwsgi-e2e-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    set_mode(&dir, 0o777);
    dir
}

pub fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A file the build makes (`env` names a variable that can point elsewhere);
/// a missing one fails the test with the command that makes it.
pub fn built_file(env: Option<&str>, path: &str, how: &str) -> PathBuf {
    if let Some(p) = env.and_then(std::env::var_os) {
        return PathBuf::from(p);
    }
    // Another release's root builds into a target directory of its own
    // (build/dist-env.sh).
    let p = match (
        path.strip_prefix("target/"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(rest), Some(dir)) => repo().join(dir).join(rest),
        _ => repo().join(path),
    };
    assert!(p.exists(), "{} is missing: {how}", p.display());
    p
}

/// A finished command's stdout and stderr, as one text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Where a server started by `ServerProcess` writes its stderr, in its dir.
pub const STDERR_FILE: &str = "stderr.log";

/// A file in `dir` for a server's stderr (see `ServerProcess::stderr_text`).
pub fn stderr_file(dir: &std::path::Path) -> Stdio {
    std::fs::File::create(dir.join(STDERR_FILE)).map_or(Stdio::null(), Stdio::from)
}

/// A server process a test started (nginx's master, Apache's parent), with
/// its files in `dir`. Dropping it stops it by PID and removes `dir`, or
/// prints the error log when the test failed.
pub struct ServerProcess {
    pub dir: PathBuf,
    child: Option<std::process::Child>,
    name: &'static str,
    grace: Duration,
}

impl ServerProcess {
    pub fn new(
        name: &'static str,
        dir: PathBuf,
        child: std::process::Child,
        grace: Duration,
    ) -> ServerProcess {
        ServerProcess {
            dir,
            child: Some(child),
            name,
            grace,
        }
    }

    /// Waits until it accepts connections on `port`; fails the test with
    /// the error log when it exits instead.
    pub fn wait_listening(&mut self, port: u16) {
        let up = wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || self.exited()
        });
        assert!(
            up && !self.exited(),
            "{} did not start:\n{}{}",
            self.name,
            self.stderr_text(),
            self.error_log()
        );
    }

    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// It exited on its own (a graceful quit): nothing left to stop.
    pub fn forget(&mut self) {
        self.child = None;
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling the server process this test started, by PID.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for it to exit by itself (after a graceful stop); whether it
    /// did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let done = wait_until(timeout, || self.exited());
        if done {
            self.forget();
        }
        done
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// What the server wrote to stderr: the reason it gives when it fails
    /// before it opens its error log (a port taken, a bad directive).
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.join(STDERR_FILE)).unwrap_or_default()
    }

    /// Waits for each of `lines` to show up in the error log; fails the
    /// test naming the first one missing.
    pub fn expect_logged(&self, lines: &[&str]) {
        for line in lines {
            assert!(
                self.wait_log(line),
                "{line:?} missing:\n{}",
                self.error_log()
            );
        }
    }

    /// Waits for `needle` to show up in the error log.
    pub fn wait_log(&self, needle: &str) -> bool {
        wait_until(Duration::from_secs(10), || {
            self.error_log().contains(needle)
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_process(c, self.grace);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} stderr ---\n{}--- {} error log ---\n{}",
                self.name,
                self.stderr_text(),
                self.name,
                self.error_log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Stops a server this test started, by PID: SIGTERM, then SIGKILL if it
/// has not exited within `grace`.
pub fn stop_process(mut child: std::process::Child, grace: Duration) {
    // SAFETY: signalling a process this test spawned, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = wait_until(grace, || child.try_wait().ok().flatten().is_some());
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 in `dir`: (certificate, key).
pub fn test_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl could not make a test certificate");
    (cert, key)
}

/// The resident memory of `pids` together, in KiB (0 for a process gone).
pub fn rss_kib(pids: &[i32]) -> u64 {
    pids.iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Files a group's daemons could not open, in a new temp dir: an
/// interpreter reached through a directory only root may enter (as a
/// virtualenv made from a Python under /root), and a WSGI script only root
/// may read.
pub fn unreachable_files() -> (PathBuf, PathBuf) {
    let dir = temp_dir("reach");
    set_mode(&dir, 0o755);
    let closed = dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    let python = closed.join("python3");
    std::os::unix::fs::symlink("/usr/bin/python3", &python).unwrap();
    set_mode(&closed, 0o700);
    let script = dir.join("secret.py");
    std::fs::write(&script, "def application(e, s):\n    pass\n").unwrap();
    set_mode(&script, 0o600);
    (python, script)
}

/// The processes whose parent is `parent` (a server's workers or children).
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let ppid: i32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent && parent != 0 {
            out.push(pid);
        }
    }
    out
}

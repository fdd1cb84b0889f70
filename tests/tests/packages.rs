//! The Debian packages built by `make deb`, as a user meets them: installed
//! into this machine with apt, enabled the distro way, serving
//! examples/hello.py through the system nginx and apache2 configured only
//! through /etc, upgraded to a newer build (the user's configuration stays),
//! then purged, leaving nothing behind.
//!
//! It changes the machine, so it puts back what it touched (the default
//! sites, ports.conf) when it ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oxwsgi_e2e::{free_port, http, output_text, repo, wait_until};

const APACHE_PKG: &str = "libapache2-mod-oxwsgi";
const NGINX_PKG: &str = "libnginx-mod-http-oxwsgi";
const COMMAND_PKG: &str = "oxwsgi";
const SITE: &str = "oxwsgi-package-test";

/// Runs a command; its output, or a failure that shows it.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = output_text(&out);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn apt(args: &[&str]) -> String {
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-y", "-q", "-o", "Dpkg::Options::=--force-confold"])
        .args(args))
}

/// The one build of `pkg` for this Debian release, in dist/RELEASE/ (`make
/// deb`; `make test` runs it first).
fn built(pkg: &str) -> PathBuf {
    let release = std::fs::read_to_string("/etc/os-release")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_string))
        .expect("/etc/os-release names the release");
    let dist = repo().join("dist").join(release);
    let found: Vec<PathBuf> = std::fs::read_dir(&dist)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{pkg}_")) && name.ends_with(".deb")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {pkg} in {}: run `make deb` (make test does)",
        dist.display()
    );
    found[0].clone()
}

fn field(deb: &Path, name: &str) -> String {
    run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
        .trim()
        .to_string()
}

fn installed_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", pkg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.strip_prefix("install ok installed ")
        .map(str::to_string)
}

/// Everything whose name mentions oxwsgi where the packages put files or
/// their maintainer scripts keep state.
fn leftovers() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // The test's own site is not the packages' business.
            if name.contains("oxwsgi") && !name.contains(SITE) {
                out.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    for dir in [
        "/etc/apache2",
        "/etc/nginx",
        "/var/lib/apache2",
        "/usr/lib/apache2/modules",
        "/usr/lib/nginx/modules",
        "/usr/share/nginx",
        "/usr/share/doc",
        "/usr/share/lintian/overrides",
        "/usr/share/man/man1",
        "/usr/bin",
    ] {
        walk(Path::new(dir), &mut out);
    }
    out
}

/// A daemon started through its packaged scripts, stopped by the PID in its
/// pid file.
struct Daemon {
    pid_file: &'static str,
}

impl Daemon {
    /// Refuses to go on when the daemon already runs: the test must stop
    /// only what it started.
    fn assert_not_running(pid_file: &'static str) {
        let d = Daemon { pid_file };
        if let Some(pid) = d.pid() {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "a server is already running (pid {pid}, {pid_file}): the package test starts \
                 the system nginx and apache2 itself; stop them first"
            );
        }
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGTERM to the master; whether it exited within 20 s.
    fn terminate(&self) -> bool {
        let Some(pid) = self.pid() else {
            return true;
        };
        // SAFETY: signalling the master process this test started, by the
        // PID it wrote.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        wait_until(Duration::from_secs(20), || {
            !Path::new(&format!("/proc/{pid}")).exists()
        })
    }
}

/// What the test changed on the machine, put back on drop.
struct Machine {
    ports_conf: Option<String>,
    nginx_default_site: bool,
    policy_created: bool,
    /// Installing libapache2-mod-oxwsgi removes Debian's mod_wsgi (they
    /// conflict); it is put back afterwards if it was there.
    mod_wsgi_installed: bool,
    daemons: Vec<Daemon>,
}

const MOD_WSGI_PKG: &str = "libapache2-mod-wsgi-py3";

const POLICY: &str = "/usr/sbin/policy-rc.d";
const PORTS_CONF: &str = "/etc/apache2/ports.conf";
const NGINX_DEFAULT: &str = "/etc/nginx/sites-enabled/default";

impl Machine {
    fn take() -> Machine {
        // The packages' scripts must not start the servers on the default
        // port 80 (all interfaces): invoke-rc.d asks policy-rc.d first.
        let policy_created = !Path::new(POLICY).exists();
        if policy_created {
            std::fs::write(POLICY, "#!/bin/sh\nexit 101\n").unwrap();
            oxwsgi_e2e::set_mode(Path::new(POLICY), 0o755);
        }
        Machine {
            ports_conf: std::fs::read_to_string(PORTS_CONF).ok(),
            nginx_default_site: std::fs::symlink_metadata(NGINX_DEFAULT).is_ok(),
            policy_created,
            mod_wsgi_installed: installed_version(MOD_WSGI_PKG).is_some(),
            daemons: Vec::new(),
        }
    }

    fn stop_servers(&mut self) {
        for d in self.daemons.drain(..) {
            assert!(d.terminate(), "{} did not stop", d.pid_file);
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        for d in self.daemons.drain(..) {
            d.terminate();
        }
        let _ = Command::new("a2dissite").args(["-q", SITE]).output();
        let _ = std::fs::remove_file(format!("/etc/apache2/sites-available/{SITE}.conf"));
        for state in ["enabled_by_admin", "disabled_by_admin"] {
            let _ = std::fs::remove_file(format!("/var/lib/apache2/site/{state}/{SITE}"));
        }
        let _ = std::fs::remove_file(format!("/etc/nginx/sites-enabled/{SITE}"));
        if let Some(ports) = &self.ports_conf {
            let _ = std::fs::write(PORTS_CONF, ports);
        }
        if self.nginx_default_site && std::fs::symlink_metadata(NGINX_DEFAULT).is_err() {
            let _ = std::os::unix::fs::symlink("/etc/nginx/sites-available/default", NGINX_DEFAULT);
        }
        if std::thread::panicking() {
            let _ = Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["-y", "-q", "purge", APACHE_PKG, NGINX_PKG])
                .output();
        }
        if self.mod_wsgi_installed && installed_version(MOD_WSGI_PKG).is_none() {
            let _ = Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["-y", "-q", "install", MOD_WSGI_PKG])
                .output();
        }
        if self.policy_created {
            let _ = std::fs::remove_file(POLICY);
        }
    }
}

/// Configures both servers through /etc to serve examples/hello.py on
/// loopback ports; returns (nginx port, apache port).
fn configure_sites() -> (u16, u16) {
    let examples = repo().join("examples");
    let hello = examples.join("hello.py");
    let (nginx_port, apache_port) = (free_port(), free_port());
    // The default site listens on port 80 of every interface: not here.
    let _ = std::fs::remove_file(NGINX_DEFAULT);
    std::fs::write(
        format!("/etc/nginx/sites-enabled/{SITE}"),
        format!(
            "wsgi_daemon_process pkgn processes=1 threads=2;\n\
             server {{\n    listen 127.0.0.1:{nginx_port};\n    location / {{\n        wsgi_app {h};\n    }}\n\
             \x20   location /group {{\n        wsgi_process_group pkgn;\n        wsgi_app {h};\n    }}\n}}\n",
            h = hello.display()
        ),
    )
    .unwrap();
    std::fs::write(PORTS_CONF, format!("Listen 127.0.0.1:{apache_port}\n")).unwrap();
    std::fs::write(
        format!("/etc/apache2/sites-available/{SITE}.conf"),
        format!(
            "WSGIDaemonProcess pkga processes=1 threads=2\n\
             <VirtualHost 127.0.0.1:{apache_port}>\n    WSGIScriptAlias / {}\n    <Directory {}>\n        Require all granted\n    </Directory>\n\
             \x20   <Location /group>\n        WSGIProcessGroup pkga\n    </Location>\n</VirtualHost>\n",
            hello.display(),
            examples.display()
        ),
    )
    .unwrap();
    run(Command::new("a2ensite").args(["-q", SITE]));
    (nginx_port, apache_port)
}

/// Starts the system servers the way their packages do, checks both serve.
fn serve(m: &mut Machine, ports: (u16, u16)) {
    run(Command::new("/usr/sbin/nginx").arg("-t"));
    run(&mut Command::new("/usr/sbin/nginx"));
    m.daemons.push(Daemon {
        pid_file: "/run/nginx.pid",
    });
    run(Command::new("apache2ctl").arg("configtest"));
    run(Command::new("apache2ctl").arg("start"));
    m.daemons.push(Daemon {
        pid_file: "/run/apache2/apache2.pid",
    });
    for (server, port) in [("nginx", ports.0), ("apache2", ports.1)] {
        let up = wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "the system {server} does not listen on {port}");
        assert_eq!(
            http::get(port, "/").text(),
            "<h1>Hello, web!</h1>",
            "{server}"
        );
        assert_eq!(
            http::get(port, "/packages").text(),
            "<h1>Hello, packages!</h1>",
            "{server}"
        );
        // nginx mounts the app at its location, Apache's alias is at /.
        let group = if server == "nginx" { "web" } else { "group" };
        assert_eq!(
            http::get(port, "/group").text(),
            format!("<h1>Hello, {group}!</h1>"),
            "{server}"
        );
    }
    // Each server's group runs the system's Python with the daemon
    // extension its package ships.
    let python = std::fs::canonicalize("/usr/bin/python3").unwrap();
    for group in ["pkgn", "pkga"] {
        let daemons: Vec<PathBuf> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                std::fs::read_to_string(p.join("comm"))
                    .is_ok_and(|c| c.trim() == format!("(wsgi:{group})"))
            })
            .collect();
        assert_eq!(daemons.len(), 1, "{group}: {daemons:?}");
        assert_eq!(
            std::fs::read_link(daemons[0].join("exe")).unwrap(),
            python,
            "{group}"
        );
    }
}

#[test]
fn install_serve_upgrade_and_purge_the_packages() {
    assert!(
        // SAFETY: a plain libc query.
        unsafe { libc::geteuid() } == 0,
        "the package test installs packages: it runs as root (as CI does)"
    );
    Daemon::assert_not_running("/run/nginx.pid");
    Daemon::assert_not_running("/run/apache2/apache2.pid");
    let (apache_deb, nginx_deb) = (built(APACHE_PKG), built(NGINX_PKG));
    let command_deb = built(COMMAND_PKG);
    assert!(
        field(&command_deb, "Depends").contains("libnginx-mod-http-oxwsgi (= "),
        "the command needs a module of its own build"
    );
    assert!(field(&nginx_deb, "Recommends").contains(COMMAND_PKG));
    let version = field(&apache_deb, "Version");

    // The dependencies that keep a server upgrade from breaking the module.
    let libpython = format!("libpython{}", oxwsgi_e2e::venv::python_version());
    let depends = field(&nginx_deb, "Depends");
    let abi = run(Command::new("dpkg-query").args(["-W", "-f", "${Provides}", "nginx"]));
    let abi = abi
        .split(", ")
        .find(|p| p.starts_with("nginx-abi-"))
        .expect("nginx provides its ABI");
    assert!(depends.contains(abi), "{depends} lacks {abi}");
    assert!(depends.contains(&libpython), "{depends}");
    let depends = field(&apache_deb, "Depends");
    assert!(depends.contains("apache2-api-20120211"), "{depends}");
    assert!(depends.contains(&libpython), "{depends}");
    assert!(field(&apache_deb, "Conflicts").contains("libapache2-mod-wsgi-py3"));

    let mut m = Machine::take();
    apt(&[
        "install",
        apache_deb.to_str().unwrap(),
        nginx_deb.to_str().unwrap(),
        command_deb.to_str().unwrap(),
    ]);
    assert_eq!(installed_version(APACHE_PKG).as_deref(), Some(&*version));
    assert_eq!(installed_version(NGINX_PKG).as_deref(), Some(&*version));
    assert_eq!(installed_version(COMMAND_PKG).as_deref(), Some(&*version));
    serve_with_the_command("nginx");
    serve_with_the_command("apache");
    the_command_suite_passes_on_the_installed_command();
    // Enabled the distro way: by the packages' scripts, and a2enmod agrees.
    let nginx_link = Path::new("/etc/nginx/modules-enabled/50-mod-http-oxwsgi.conf");
    assert_eq!(
        std::fs::read_link(nginx_link).unwrap(),
        Path::new("/usr/share/nginx/modules-available/mod-http-oxwsgi.conf")
    );
    assert!(std::fs::read_link("/etc/apache2/mods-enabled/oxwsgi.load").is_ok());
    run(Command::new("a2enmod").arg("oxwsgi"));

    let ports = configure_sites();
    serve(&mut m, ports);
    m.stop_servers();

    // The user edits the module's configuration, then a newer build arrives.
    let conf = "/etc/apache2/mods-available/oxwsgi.conf";
    let edited = format!(
        "{}\n# edited by the package test\nWSGIPassAuthorization On\n",
        std::fs::read_to_string(conf).unwrap()
    );
    std::fs::write(conf, &edited).unwrap();
    let newer = oxwsgi_e2e::temp_dir("newer-debs");
    let newer_version = format!("{version}.1");
    run(Command::new("bash")
        .arg(repo().join("packaging/build-deb.sh"))
        .args(["--version", &newer_version, "--out"])
        .arg(&newer));
    let debs: Vec<String> = std::fs::read_dir(&newer)
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    assert_eq!(debs.len(), 3, "{debs:?}");
    let mut args = vec!["install"];
    args.extend(debs.iter().map(String::as_str));
    apt(&args);
    let _ = std::fs::remove_dir_all(&newer);
    assert_eq!(
        installed_version(APACHE_PKG).as_deref(),
        Some(&*newer_version)
    );
    assert_eq!(
        installed_version(NGINX_PKG).as_deref(),
        Some(&*newer_version)
    );
    assert_eq!(
        std::fs::read_to_string(conf).unwrap(),
        edited,
        "the user's edit was lost"
    );
    assert!(!Path::new(&format!("{conf}.dpkg-dist")).exists());
    assert!(std::fs::read_link(nginx_link).is_ok());
    assert!(std::fs::read_link("/etc/apache2/mods-enabled/oxwsgi.load").is_ok());
    serve(&mut m, ports);
    m.stop_servers();

    // Purged: nothing of the packages remains, enabled links included.
    let _ = Command::new("a2dissite").args(["-q", SITE]).output();
    apt(&["purge", APACHE_PKG, NGINX_PKG, COMMAND_PKG]);
    assert_eq!(installed_version(COMMAND_PKG), None);
    assert_eq!(installed_version(APACHE_PKG), None);
    assert_eq!(installed_version(NGINX_PKG), None);
    let _ = std::fs::remove_file(format!("/etc/apache2/sites-available/{SITE}.conf"));
    let left = leftovers();
    assert!(left.is_empty(), "left behind after purge: {left:#?}");
    assert!(
        !Path::new("/usr/lib/oxwsgi").exists(),
        "left behind after purge"
    );
    drop(m);
}

/// The packaged command, as a user who is not root: examples/hello.py
/// through a private server with the packaged module, then Ctrl+C's
/// SIGINT stops it, leaving nothing.
fn serve_with_the_command(server: &str) {
    let dir = oxwsgi_e2e::temp_dir("packaged-command");
    let port = free_port();
    let err = dir.join("stderr");
    let mut child = oxwsgi_e2e::attack::as_user("nobody", "/usr/bin/oxwsgi")
        .args(["serve", "--server", server, "--port", &port.to_string()])
        .arg(repo().join("examples/hello.py"))
        .current_dir(&dir)
        .env("HOME", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run /usr/bin/oxwsgi");
    let said = || std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || said()
            .contains("oxwsgi: serving ")),
        "{server}: {}",
        said()
    );
    assert_eq!(
        http::get(port, "/packages").text(),
        "<h1>Hello, packages!</h1>",
        "{server}"
    );
    // SAFETY: signalling the command this test started, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{server}: {}", said());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// tests/tests/command.rs, all of it, on the installed `/usr/bin/oxwsgi`
/// (with the packaged modules) instead of the build tree's: its test
/// binary, built beside this one, run with OXWSGI_COMMAND.
fn the_command_suite_passes_on_the_installed_command() {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let suite = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            use std::os::unix::fs::PermissionsExt;
            name.starts_with("command-")
                && p.extension().is_none()
                && p.metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("the command suite's test binary (cargo builds it with this one)");
    let out = Command::new(&suite)
        .env("OXWSGI_COMMAND", "/usr/bin/oxwsgi")
        .arg("--test-threads=2")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "the command suite on /usr/bin/oxwsgi:\n{text}"
    );
    assert!(
        text.contains("test result: ok.") && !text.contains(" 0 passed"),
        "{text}"
    );
}

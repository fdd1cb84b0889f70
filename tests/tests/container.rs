//! The container recipe (examples/container/Dockerfile) carried out and
//! run. No OCI runtime can pull Debian's image here (the network reaches
//! Debian's, PyPI's and crates' archives only), so its steps run in a
//! fresh Debian 12 root made as its `-slim` image is (debootstrap's
//! minbase; build/container-base.sh, build/recipe.sh), and its CMD runs
//! there as its USER, in a network namespace of its own: the health URLs
//! answer, the app serves, and SIGTERM drains, then stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxwsgi_e2e::{output_text, repo, temp_dir, wait_until};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = output_text(&out);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Why the recipe cannot be carried out here, if it cannot.
fn cannot() -> Option<String> {
    // SAFETY: a plain libc query.
    if unsafe { libc::geteuid() } != 0 {
        return Some("carrying out the recipe needs root (debootstrap, chroot)".into());
    }
    if std::env::var_os("OXWSGI_DIST").is_some_and(|d| !d.is_empty()) {
        return Some("the recipe is Debian 12's; it runs on the Debian 12 pass".into());
    }
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if !release.contains("VERSION_CODENAME=bookworm") {
        return Some(
            "the recipe installs Debian 12's packages; this machine is not Debian 12".into(),
        );
    }
    None
}

/// `curl` inside the network namespace of process `pid`: status and body.
fn curl_in(pid: u32, path: &str) -> (u16, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["curl", "-s", "-m", "2", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:8000{path}"))
        .output()
        .expect("nsenter curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_container_recipe_builds_and_serves() {
    if let Some(why) = cannot() {
        eprintln!("skipped: {why}");
        return;
    }
    let top = repo();
    run(Command::new("bash")
        .arg(top.join("build/container-base.sh"))
        .arg("bookworm"));
    let root: PathBuf = temp_dir("container").join("root");
    run(Command::new("cp")
        .arg("-a")
        .arg(top.join("build/out/container-base-bookworm"))
        .arg(&root));
    let _cleanup = RemoveOnDrop(root.clone());
    run(Command::new("bash")
        .arg(top.join("build/recipe.sh"))
        .arg(top.join("examples/container/Dockerfile"))
        .arg(&top)
        .arg(&root));
    let recipe = std::fs::read_to_string(root.join(".recipe")).unwrap();
    let field = |name: &str| {
        recipe
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_string()
    };
    let (user, workdir, cmd) = (field("USER"), field("WORKDIR"), field("CMD"));
    assert_eq!(user, "app");
    assert!(cmd.contains("oxwsgi serve"), "{cmd}");

    // The CMD, as the image's USER in its WORKDIR, with a network of its
    // own (its port is 8000 whatever else runs here).
    let inner = format!(
        "ip link set lo up && exec {in_root} {root} setpriv --reuid={user} --regid={user} \
         --init-groups /bin/sh -c {script}",
        in_root = top.join("build/in-root.sh").display(),
        root = root.display(),
        script = shell_quote(&format!("cd {workdir} && exec {cmd}")),
    );
    let err = root.join("..").join("cmd.log");
    let child = Command::new("unshare")
        .args(["--net", "--", "/bin/sh", "-c", &inner])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&err).unwrap())
        .stderr(std::fs::File::create(root.join("..").join("cmd.err")).unwrap())
        .spawn()
        .expect("unshare");
    let pid = child.id();
    let mut running = Running(Some(child));
    let said = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&err).unwrap_or_default(),
            std::fs::read_to_string(root.join("..").join("cmd.err")).unwrap_or_default()
        )
    };
    assert!(
        wait_until(Duration::from_secs(30), || curl_in(pid, "/healthz").0
            == 200),
        "the container's app did not become ready:\n{}",
        said()
    );
    assert_eq!(curl_in(pid, "/healthz"), (200, "ready\n".into()));
    assert_eq!(curl_in(pid, "/healthz/live").0, 200);
    let (status, body) = curl_in(pid, "/");
    assert_eq!(status, 200);
    assert!(body.starts_with("hello from "), "{body}");
    let (status, metrics) = curl_in(pid, "/metrics?format=prometheus");
    assert_eq!(status, 200);
    assert!(metrics.contains("oxwsgi_info"), "{metrics}");

    // SIGTERM (the runtime's stop): readiness 503 while it drains, then
    // gone.
    let t = Instant::now();
    // SAFETY: signalling the process this test started (the CMD, which
    // the exec chain made of it), by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(2), || curl_in(pid, "/healthz").0 == 503),
        "{}",
        said()
    );
    assert_eq!(curl_in(pid, "/").0, 200, "still serving while it drains");
    let mut child = running.0.take().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", said());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = Path::new(&self.0).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

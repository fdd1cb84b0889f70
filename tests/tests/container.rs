//! The container recipe (examples/container/Dockerfile) carried out and
//! run. No OCI runtime can pull Debian's image here (the network reaches
//! Debian's, PyPI's and crates' archives only), so its steps run in a
//! fresh Debian 12 root made as its `-slim` image is (debootstrap's
//! minbase; build/container-base.sh, build/recipe.sh), and its CMD runs
//! there as its USER, in a network namespace of its own: the health URLs
//! answer, the app serves, and the kubelet's stop of the Kubernetes example
//! (its preStop hook, then SIGTERM) drains, then stops within its grace
//! period. The Kubernetes example is checked against the image's CMD on
//! every pass.

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

    // The kubelet's stop (examples/container/kubernetes.yaml): the preStop
    // hook while the pod still serves, then SIGTERM: readiness 503 while it
    // drains, within the probe's period, then gone within the grace period.
    let example = Example::read();
    let hook = Instant::now();
    while hook.elapsed() < Duration::from_secs(example.pre_stop_sleep()) {
        assert_eq!(curl_in(pid, "/healthz").0, 200, "ready during preStop");
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = Instant::now();
    // SAFETY: signalling the process this test started (the CMD, which
    // the exec chain made of it), by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(
        wait_until(
            Duration::from_secs(example.seconds("ready_period")),
            || curl_in(pid, "/healthz").0 == 503
        ),
        "{}",
        said()
    );
    assert_eq!(curl_in(pid, "/").0, 200, "still serving while it drains");
    let mut child = running.0.take().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", said());
    let took = t.elapsed();
    let grace = Duration::from_secs(example.seconds("grace") - example.pre_stop_sleep());
    assert!(
        took >= Duration::from_millis(4500) && took < grace,
        "{took:?} (the grace period leaves {grace:?} after preStop)"
    );
}

/// What the Kubernetes example (examples/container/kubernetes.yaml) and
/// the image's CMD say, read as Kubernetes and the image would read them
/// (PyYAML, the JSON form of CMD): one `key=value` per line.
const READ_EXAMPLE: &str = r#"
import json, re, sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
dockerfile = open(sys.argv[2]).read().replace("\\\n", " ")
cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
deploy = next(d for d in docs if d["kind"] == "Deployment")
service = next(d for d in docs if d["kind"] == "Service")
pod = deploy["spec"]["template"]
c = pod["spec"]["containers"][0]
opt = lambda name: cmd[cmd.index(name) + 1]
out = {
    "ready_path": c["readinessProbe"]["httpGet"]["path"],
    "ready_port": c["readinessProbe"]["httpGet"]["port"],
    "ready_period": c["readinessProbe"]["periodSeconds"],
    "ready_failures": c["readinessProbe"].get("failureThreshold", 3),
    "live_path": c["livenessProbe"]["httpGet"]["path"],
    "live_port": c["livenessProbe"]["httpGet"]["port"],
    "container_port": c["ports"][0]["containerPort"],
    "service_port": service["spec"]["ports"][0]["targetPort"],
    "metrics_path": pod["metadata"]["annotations"]["prometheus.io/path"],
    "metrics_port": pod["metadata"]["annotations"]["prometheus.io/port"],
    "grace": pod["spec"]["terminationGracePeriodSeconds"],
    "pre_stop": " ".join(c["lifecycle"]["preStop"]["exec"]["command"]),
    "image": c["image"],
    "cmd_port": opt("--port"),
    "cmd_health": opt("--health-url"),
    "cmd_status": opt("--status-url"),
    "cmd_drain": opt("--drain-time"),
}
for k, v in out.items():
    print("%s=%s" % (k, v))
"#;

/// The Kubernetes example, read: field name to value.
struct Example(Vec<(String, String)>);

impl Example {
    fn read() -> Example {
        let top = repo();
        let text = run(Command::new("python3")
            .args(["-c", READ_EXAMPLE])
            .arg(top.join("examples/container/kubernetes.yaml"))
            .arg(top.join("examples/container/Dockerfile")));
        Example(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{key} missing from the example"))
    }

    fn seconds(&self, key: &str) -> u64 {
        let v = self.get(key);
        v.parse()
            .unwrap_or_else(|_| panic!("{key}: {v} is no number"))
    }

    /// The preStop hook's sleep, in seconds.
    fn pre_stop_sleep(&self) -> u64 {
        let hook = self.get("pre_stop");
        hook.strip_prefix("sleep ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("preStop is not a sleep: {hook}"))
    }
}

/// The Kubernetes example fits the image it runs: the probes and the
/// metrics annotations point at the URLs and the port the CMD serves, and
/// the grace period outlasts the preStop hook, the drain and the longest
/// stop the command allows (10 s after the drain). Read on every pass; the
/// recipe's test then stops the CMD as the kubelet would.
#[test]
fn the_kubernetes_example_fits_the_image() {
    let e = Example::read();
    let port = e.get("cmd_port");
    for key in [
        "ready_port",
        "live_port",
        "container_port",
        "service_port",
        "metrics_port",
    ] {
        assert_eq!(e.get(key), port, "{key}: the CMD serves on {port}");
    }
    let health = e.get("cmd_health");
    assert_eq!(e.get("ready_path"), health);
    assert_eq!(e.get("live_path"), format!("{health}/live"));
    assert_eq!(e.get("metrics_path"), e.get("cmd_status"));
    let stop = e.pre_stop_sleep() + e.seconds("cmd_drain") + 10;
    assert!(
        e.seconds("grace") > stop,
        "terminationGracePeriodSeconds {} must outlast preStop, the drain and the stop ({stop} s)",
        e.get("grace")
    );
    // The readiness probe sees the drain before it ends.
    assert!(e.seconds("ready_period") * e.seconds("ready_failures") < e.seconds("cmd_drain"));
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

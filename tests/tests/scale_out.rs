//! More than one machine: three hosts, each an nginx with oxwsgi in a
//! network namespace of its own with its own address on a bridge this test
//! makes, behind an nginx load balancer (passive health checks: a refused
//! connection or a 502/503/504 moves the request to another host), under a
//! steady load:
//! 1. each host in turn is upgraded (a graceful stop, which drains first,
//!    then a start on the app's next version) with no failed request, and
//!    every host serves the new version after; and restarted again behind
//!    HAProxy, which
//!    polls readiness and retries nothing: the host leaves its pool while
//!    it drains;
//! 2. one host killed outright costs at most its requests in flight, and
//!    the traffic moves to the other two;
//! 3. one Prometheus scrape configuration covers the three hosts
//!    (`promtool check config`, and each host's scrape checked).
//!
//! It needs root and network namespaces (`ip netns`); where they are not
//! there it says "skipped:" and why.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxwsgi_e2e::{free_port, http, load, nginx, temp_dir, wait_until};

const APP: &str = "def application(environ, start_response):\n\
    \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
    \x20   return [environ['SERVER_NAME'].encode()]\n";

/// The app's next version, which each host is upgraded to.
const APP_V2: &str = "def application(environ, start_response):\n\
    \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
    \x20   return [environ['SERVER_NAME'].encode() + b' v2']\n";

fn ip(args: &[&str]) -> Result<(), String> {
    run_ip(Command::new("ip").args(args), args)
}

/// A command in namespace `ns` (nsenter, not `ip netns exec`, which
/// remounts / and fails where / is not a mount point: a chroot).
fn in_ns(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"));
    c
}

/// `ip ARGS` inside namespace `ns`.
fn ip_in(ns: &str, args: &[&str]) -> Result<(), String> {
    run_ip(in_ns(ns).arg("ip").args(args), args)
}

fn run_ip(cmd: &mut Command, args: &[&str]) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The bridge, the namespaces and their links; removed when dropped.
struct Network {
    bridge: String,
    spaces: Vec<String>,
    /// `10.X.Y.`: the hosts are `.11`, `.12`, `.13`.
    prefix: String,
}

impl Network {
    fn make(hosts: usize) -> Result<Network, String> {
        // SAFETY: a plain libc query.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        let id = std::process::id();
        let prefix = format!("10.{}.{}.", 200 + id % 50, (id / 50) % 250);
        let mut net = Network {
            bridge: format!("oxbr{id}"),
            spaces: Vec::new(),
            prefix,
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}1/24", net.prefix),
            "dev",
            &net.bridge,
        ])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for i in 1..=hosts {
            let ns = format!("oxh{id}-{i}");
            ip(&["netns", "add", &ns])?;
            net.spaces.push(ns.clone());
            let (outer, inner) = (format!("oxv{id}{i}a"), format!("oxv{id}{i}b"));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &outer, "master", &net.bridge, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            let addr = format!("{}/24", net.host(i));
            ip_in(&ns, &["addr", "add", &addr, "dev", &inner])?;
            ip_in(&ns, &["link", "set", &inner, "up"])?;
            ip_in(&ns, &["link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn host(&self, i: usize) -> String {
        format!("{}{}", self.prefix, 10 + i)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in &self.spaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// One host's nginx in its namespace.
struct Host {
    ns: String,
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Host {
    fn config(&self, addr: &str, app: &Path) -> String {
        let d = self.dir.display();
        format!(
            "load_module {module};\n\
             daemon off;\nworker_processes 2;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
                 access_log off;\n\
                 client_body_temp_path {d}/body;\n\
                 wsgi_drain_time 1s;\n\
                 server {{\n\
                     listen {addr}:8080;\n\
                     server_name {name};\n\
                     location = /healthz {{ wsgi_health ready; }}\n\
                     location = /metrics {{ wsgi_status; }}\n\
                     location / {{ wsgi_app {app}; }}\n\
                 }}\n\
             }}\n",
            module = nginx::module().display(),
            name = self.name,
            app = app.display(),
        )
    }

    fn start(&mut self) {
        let conf = self.dir.join("nginx.conf");
        let child = in_ns(&self.ns)
            .args(["/usr/sbin/nginx", "-p"])
            .arg(&self.dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx in its namespace");
        self.child = Some(child);
    }

    /// Every process in the host's namespace.
    fn pids(&self) -> Vec<i32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// A graceful stop (nginx drains first); waits until it is gone.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the nginx master this test started.
            unsafe { libc::kill(c.id() as i32, libc::SIGQUIT) };
            let _ = c.wait();
        }
        assert!(wait_until(Duration::from_secs(10), || self
            .pids()
            .is_empty()));
    }

    /// The host dies: every process of it, at once.
    fn kill(&mut self) {
        for p in self.pids() {
            // SAFETY: processes in the namespace this test made.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn three_hosts_behind_a_load_balancer() {
    let net = match Network::make(3) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = temp_dir("scale-out");
    let app = dir.join("app.py");
    std::fs::write(&app, APP).unwrap();
    let app_v2 = dir.join("app_v2.py");
    std::fs::write(&app_v2, APP_V2).unwrap();
    let mut hosts: Vec<Host> = (1..=3)
        .map(|i| {
            let h = Host {
                ns: net.spaces[i - 1].clone(),
                name: format!("h{i}"),
                dir: dir.join(format!("h{i}")),
                child: None,
            };
            std::fs::create_dir_all(&h.dir).unwrap();
            oxwsgi_e2e::set_mode(&h.dir, 0o777);
            std::fs::write(h.dir.join("nginx.conf"), h.config(&net.host(i), &app)).unwrap();
            h
        })
        .collect();
    for h in &mut hosts {
        h.start();
    }
    let ready = |i: usize| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "1"])
            .arg(format!("http://{}:8080/healthz", net.host(i)))
            .output()
            .is_ok_and(|o| o.stdout == b"200")
    };
    for i in 1..=3 {
        assert!(
            wait_until(Duration::from_secs(15), || ready(i)),
            "host {i} did not start"
        );
    }

    // The load balancer, in this namespace.
    let port = free_port();
    let upstreams: String = (1..=3)
        .map(|i| format!("server {}:8080 max_fails=1 fail_timeout=2s;\n", net.host(i)))
        .collect();
    let lb_dir = dir.join("lb");
    std::fs::create_dir_all(&lb_dir).unwrap();
    let lb_conf = lb_dir.join("nginx.conf");
    std::fs::write(
        &lb_conf,
        format!(
            "daemon off;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
                 access_log off;\n\
                 client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
                 upstream hosts {{ {upstreams} keepalive 16; }}\n\
                 server {{\n\
                     listen 127.0.0.1:{port};\n\
                     location / {{\n\
                         proxy_pass http://hosts;\n\
                         proxy_http_version 1.1;\n\
                         proxy_set_header Connection \"\";\n\
                         proxy_connect_timeout 1s;\n\
                         proxy_next_upstream error timeout http_502 http_503 http_504;\n\
                     }}\n\
                 }}\n\
             }}\n",
            d = lb_dir.display()
        ),
    )
    .unwrap();
    let lb = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(&lb_dir)
        .arg("-c")
        .arg(&lb_conf)
        .arg("-e")
        .arg(lb_dir.join("error.log"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start the load balancer");
    let _lb = Stopper(Some(lb));
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let names: std::collections::HashSet<String> =
        (0..30).map(|_| http::get(port, "/").text()).collect();
    assert_eq!(names.len(), 3, "all three hosts answer: {names:?}");

    // 1. Each host in turn upgraded to the app's next version under load:
    // nothing fails.
    let upgrades = std::thread::spawn(move || load::wrk(port, "/", 14));
    std::thread::sleep(Duration::from_secs(1));
    for (i, h) in hosts.iter_mut().enumerate() {
        let t = Instant::now();
        h.stop();
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{} drained first",
            h.name
        );
        std::fs::write(
            h.dir.join("nginx.conf"),
            h.config(&net.host(i + 1), &app_v2),
        )
        .unwrap();
        h.start();
        std::thread::sleep(Duration::from_secs(2));
    }
    let l = upgrades.join().unwrap();
    assert!(l.requests > 1000, "{}", l.output);
    assert_eq!(l.failures(), 0, "upgrades failed requests:\n{}", l.output);
    eprintln!("upgrades: {} requests, none failed", l.requests);
    for i in 1..=3 {
        assert!(
            wait_until(Duration::from_secs(10), || ready(i)),
            "host {i} is back"
        );
    }
    let names: std::collections::HashSet<String> =
        (0..30).map(|_| http::get(port, "/").text()).collect();
    let upgraded: std::collections::HashSet<String> = (1..=3).map(|i| format!("h{i} v2")).collect();
    assert_eq!(names, upgraded, "every host serves the new version");

    // 1b. The same behind HAProxy, which polls readiness and retries
    // nothing: a restarted host leaves the pool while it drains, before
    // it refuses anything.
    let ha_port = free_port();
    let ha_conf = dir.join("haproxy.cfg");
    let servers: String = (1..=3)
        .map(|i| format!("    server h{i} {}:8080 check\n", net.host(i)))
        .collect();
    std::fs::write(
        &ha_conf,
        format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    retries 0\n    timeout connect 1s\n\
             \x20   timeout client 30s\n    timeout server 30s\n\
             frontend site\n    bind 127.0.0.1:{ha_port}\n    default_backend hosts\n\
             backend hosts\n    option httpchk GET /healthz\n\
             \x20   default-server inter 100ms fall 1 rise 2\n{servers}"
        ),
    )
    .unwrap();
    let ha = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&ha_conf)
        .stdin(Stdio::null())
        .spawn()
        .expect("haproxy (build/deps.sh installs it)");
    let _ha = Stopper(Some(ha));
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            ha_port
        ))
        .is_ok()),
        "haproxy did not listen"
    );
    assert!(wait_until(Duration::from_secs(10), || {
        (0..9)
            .map(|_| http::get(ha_port, "/").text())
            .collect::<std::collections::HashSet<_>>()
            == upgraded
    }));
    let restarts = std::thread::spawn(move || load::wrk(ha_port, "/", 12));
    std::thread::sleep(Duration::from_secs(1));
    for h in hosts.iter_mut() {
        h.stop();
        h.start();
        std::thread::sleep(Duration::from_secs(2));
    }
    let l = restarts.join().unwrap();
    assert!(l.requests > 1000, "{}", l.output);
    assert_eq!(
        l.failures(),
        0,
        "restarts behind HAProxy failed requests:\n{}",
        l.output
    );
    eprintln!(
        "restarts behind HAProxy: {} requests, none failed",
        l.requests
    );
    for i in 1..=3 {
        assert!(
            wait_until(Duration::from_secs(10), || ready(i)),
            "host {i} is back"
        );
    }

    // 2. One host dies: at most its requests in flight fail (wrk keeps 16
    // connections), and the others take the traffic.
    let killed = std::thread::spawn(move || load::wrk(port, "/", 4));
    std::thread::sleep(Duration::from_secs(1));
    hosts[1].kill();
    let l = killed.join().unwrap();
    assert!(
        l.failures() <= 16,
        "a killed host cost more than its requests:\n{}",
        l.output
    );
    eprintln!(
        "a killed host: {} requests, {} failed",
        l.requests,
        l.failures()
    );
    let after: Vec<String> = (0..20).map(|_| http::get(port, "/").text()).collect();
    assert!(
        after.iter().all(|n| n == "h1 v2" || n == "h3 v2"),
        "{after:?}"
    );

    // 3. One scrape configuration for every host, and each host's scrape.
    let targets: Vec<String> = [1, 3]
        .iter()
        .map(|i| format!("'{}:8080'", net.host(*i)))
        .collect();
    let prom = dir.join("prometheus.yml");
    std::fs::write(
        &prom,
        format!(
            "scrape_configs:\n  - job_name: oxwsgi\n    metrics_path: /metrics\n    \
             params:\n      format: [prometheus]\n    static_configs:\n      - targets: [{}, '{}:8080']\n",
            targets.join(", "),
            net.host(2)
        ),
    )
    .unwrap();
    let promtool = oxwsgi_e2e::repo()
        .join(oxwsgi_e2e::unpacked("prometheus"))
        .join("usr/bin/promtool");
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(&prom)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", oxwsgi_e2e::output_text(&out));
    hosts[1].start();
    assert!(wait_until(Duration::from_secs(15), || ready(2)));
    for i in 1..=3 {
        let out = Command::new("curl")
            .args(["-s", "-m", "5"])
            .arg(format!(
                "http://{}:8080/metrics?format=prometheus",
                net.host(i)
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("oxwsgi_"), "host {i}: {text}");
        oxwsgi_e2e::prometheus::promtool_check(&text);
    }
    drop(hosts);
    drop(net);
}

/// Stops a server this test started, by its PID, when dropped.
struct Stopper(Option<Child>);

impl Drop for Stopper {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            oxwsgi_e2e::stop_process(c, Duration::from_secs(5));
        }
    }
}

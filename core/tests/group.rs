//! A process group for real: daemons forked from this (single-threaded,
//! Python-free) process as from a server's parent, serving the cases app
//! over their socket; one killed with SIGKILL is replaced; `stop` ends them
//! all and removes the socket.
//!
//! harness = false, because fork needs a single-threaded parent: `main` is
//! the test. `--list` answers nextest's listing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oxwsgi_core::daemon::options::GroupOptions;
use oxwsgi_core::daemon::protocol::auth::{self, Admission, Token};
use oxwsgi_core::daemon::protocol::frame::AppRef;
use oxwsgi_core::daemon::server::group::Group;
use oxwsgi_core::daemon::server::proxy::Pool;
use oxwsgi_core::daemon::spec::GroupSpec;
use oxwsgi_core::testing::{MemoryRequest, MemorySink};
use oxwsgi_core::{AppOptions, AppSpec, Outcome};

const NAME: &str = "daemons_serve_are_replaced_and_stop";

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        eprintln!("[{} {}] {}", std::process::id(), r.level(), r.args());
    }
    fn flush(&self) {}
}

fn logger() {
    let _ = log::set_logger(&Stderr);
    log::set_max_level(log::LevelFilter::Info);
}

fn get(pool: &Pool, path: &str) -> (u16, String) {
    let (mut sink, shared) = MemorySink::new();
    let outcome = pool.serve(&AppRef::Index(0), &mut MemoryRequest::get(path), &mut sink);
    let resp = shared.lock().unwrap().clone();
    assert!(
        matches!(outcome, Outcome::Complete | Outcome::Error(_)),
        "{path}: {outcome:?}"
    );
    (resp.status(), resp.text())
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{NAME}: test");
        }
        return;
    }
    logger();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let apps = repo.join("tests/apps").canonicalize().unwrap();
    let dir = std::env::temp_dir().join(format!("oxwsgi-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("test.sock");
    let spec = GroupSpec {
        name: "test".into(),
        options: GroupOptions {
            processes: 2,
            threads: 2,
            python_path: vec![apps.clone()],
            home: Some(dir.clone()),
            umask: Some(0o027),
            lang: Some("C.UTF-8".into()),
            ..Default::default()
        },
        socket: socket.clone(),
        socket_owner: None,
        metrics: None,
        exec: None,
        admission: Admission::for_group("test", None).unwrap(),
        mod_wsgi: false,
        mounts: None,
        apps: vec![AppOptions::new(
            AppSpec::parse(apps.join("cases.py").to_str().unwrap(), None).unwrap(),
        )],
    };
    let mut group = Group::start(spec, logger).unwrap();
    let pids = group.pids();
    assert_eq!(pids.len(), 2);
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let pool = Pool::new(socket.clone(), Some(Duration::from_secs(30)), token("test"));
    let mut served_by = std::collections::HashSet::new();
    for _ in 0..40 {
        let (status, pid) = get(&pool, "/pid");
        assert_eq!(status, 200);
        served_by.insert(pid.parse::<i32>().unwrap());
    }
    assert!(
        served_by.iter().all(|p| pids.contains(p)),
        "{served_by:?} vs {pids:?}"
    );
    for pid in &pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "(wsgi:test)", "ps shows the group");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            cmdline.starts_with(b"(wsgi:test)\0"),
            "ps -f shows the group: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
    }
    // The daemons run in the group's home, with its locale.
    let (_, env) = get(&pool, "/env");
    assert!(env.contains("\"wsgi.multithread\": true"), "{env}");

    // kill -9 one: replaced within a second, and requests go on.
    let victim = pids[0];
    // SAFETY: signalling a daemon this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let t = Instant::now();
    while group.pids().contains(&victim) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "not replaced within 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
        group.check();
    }
    assert_eq!(group.pids().len(), 2);
    for _ in 0..20 {
        assert_eq!(get(&pool, "/cookies").0, 200);
    }

    let all = group.pids();
    group.stop(Duration::from_secs(10));
    for pid in all {
        assert!(!alive(pid), "daemon {pid} still running");
    }
    assert!(!socket.exists(), "the socket is removed");

    recycling(&apps, &dir);
    timeouts(&apps, &dir);
    managed(&apps, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{NAME}: ok");
}

/// Group `name`'s token, as the server that started it has it.
fn token(name: &str) -> Token {
    auth::group_token(name).unwrap()
}

/// A group of the cases app, listening in `dir`.
fn spec(
    apps: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    options: GroupOptions,
) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        options: GroupOptions {
            python_path: vec![apps.to_path_buf()],
            ..options
        },
        socket: dir.join(format!("{name}.sock")),
        socket_owner: None,
        metrics: None,
        exec: None,
        admission: Admission::for_group(name, None).unwrap(),
        mod_wsgi: false,
        mounts: None,
        apps: vec![AppOptions::new(
            AppSpec::parse(apps.join("cases.py").to_str().unwrap(), None).unwrap(),
        )],
    }
}

fn start(
    apps: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    options: GroupOptions,
) -> (Group, Pool) {
    let spec = spec(apps, dir, name, options);
    let socket = spec.socket.clone();
    let group = Group::start(spec, logger).unwrap();
    (
        group,
        Pool::new(socket, Some(Duration::from_secs(30)), token(name)),
    )
}

/// Runs `client` on a thread while this (the groups' parent) looks after
/// the group as a server's parent does, as often as Apache's does at most.
fn while_supervised<T: Send>(group: &mut Group, client: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(client);
        while !h.is_finished() {
            group.check();
            std::thread::sleep(Duration::from_millis(20));
        }
        h.join().unwrap()
    })
}

/// maximum-requests: each daemon serves its share and is replaced; no
/// request fails, none waits long.
fn recycling(apps: &std::path::Path, dir: &std::path::Path) {
    let (mut group, pool) = start(
        apps,
        dir,
        "recycle",
        GroupOptions {
            processes: 1,
            threads: 2,
            lifecycle: oxwsgi_core::daemon::options::Lifecycle {
                maximum_requests: Some(10),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let (pids, slowest) = while_supervised(&mut group, || {
        let mut pids = Vec::new();
        let mut slowest = Duration::ZERO;
        for _ in 0..60 {
            let t = Instant::now();
            let (status, pid) = get(&pool, "/pid");
            slowest = slowest.max(t.elapsed());
            assert_eq!(status, 200, "{pid}");
            pids.push(pid.parse::<i32>().unwrap());
        }
        (pids, slowest)
    });
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "one daemon per 10 requests: {pids:?}");
    for run in pids.chunk_by(|a, b| a == b) {
        assert_eq!(run.len(), 10, "{pids:?}");
    }
    assert!(
        slowest < Duration::from_secs(3),
        "a request waited {slowest:?}"
    );
    group.stop(Duration::from_secs(5));
}

/// request-timeout: 504 at the deadline though the app sleeps on (in C);
/// queue-timeout: a request that waited for the one thread gets 504
/// without running.
fn timeouts(apps: &std::path::Path, dir: &std::path::Path) {
    let (mut group, pool) = start(
        apps,
        dir,
        "timeouts",
        GroupOptions {
            processes: 1,
            threads: 1,
            request_timeout: Some(Duration::from_millis(800)),
            queue_timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    );
    while_supervised(&mut group, || {
        let t = Instant::now();
        let (status, body) = get(&pool, "/sleep?ms=2500");
        assert_eq!(status, 504, "{body}");
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "{:?}",
            t.elapsed()
        );
        // The thread is still asleep in the app: this one waits for it,
        // past the queue timeout.
        let (status, body) = get(&pool, "/pid");
        assert_eq!(status, 504, "{body}");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(get(&pool, "/pid").0, 200, "the thread is back");
        let t = Instant::now();
        assert_eq!(get(&pool, "/spin").0, 504, "a busy loop is stopped");
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(get(&pool, "/pid").0, 200);
    });
    group.stop(Duration::from_secs(5));
}

/// The processes whose parent is `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        if f.next().and_then(|p| p.parse::<i32>().ok()) == Some(parent) && state != Some("Z") {
            out.push(pid);
        }
    }
    out
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn managed_spec(apps: &std::path::Path, dir: &std::path::Path, name: &str) -> GroupSpec {
    let options = GroupOptions {
        processes: 2,
        threads: 2,
        ..Default::default()
    };
    spec(apps, dir, name, options)
}

/// The daemons among the manager `m`'s children (its warden is one too).
fn daemons_of(m: i32) -> Vec<i32> {
    children_of(m)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() != "oxwsgi: warden")
        })
        .collect()
}

/// A manager process owns the groups (nginx's master reaps every child it
/// has, so it must not have the daemons): it replaces a daemon that dies by
/// itself, stops them on SIGTERM (its warden then starts another manager),
/// and when its master dies however it dies (the warden goes too).
fn managed(apps: &std::path::Path, dir: &std::path::Path) {
    use oxwsgi_core::daemon::server::manager;
    let spec = managed_spec(apps, dir, "managed");
    let pool = Pool::new(
        spec.socket.clone(),
        Some(Duration::from_secs(30)),
        token("managed"),
    );
    let manager = manager::spawn(vec![spec], "oxwsgi: groups", None, logger).unwrap();
    let m = manager.pid;
    wait_for("2 daemons", Duration::from_secs(10), || {
        daemons_of(m).len() == 2
    });
    let daemons = daemons_of(m);
    assert_eq!(get(&pool, "/cookies").0, 200);
    let pid: i32 = get(&pool, "/pid").1.parse().unwrap();
    assert!(daemons.contains(&pid), "{pid} is one of the manager's");
    // SAFETY: signalling a daemon this test started.
    unsafe { libc::kill(daemons[0], libc::SIGKILL) };
    wait_for("the daemon replaced", Duration::from_secs(1), || {
        let now = daemons_of(m);
        now.len() == 2 && !now.contains(&daemons[0])
    });
    assert_eq!(get(&pool, "/cookies").0, 200);
    let all = daemons_of(m);
    let warden = children_of(m)
        .into_iter()
        .find(|p| !all.contains(p))
        .expect("a warden");
    // SAFETY: signalling the manager this test started.
    unsafe { libc::kill(m, libc::SIGTERM) };
    let mut status = 0;
    // SAFETY: waiting for this process's own child.
    unsafe { libc::waitpid(m, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status}"
    );
    for p in all {
        assert!(!alive(p), "daemon {p} outlived its manager");
    }
    assert!(alive(warden), "the warden stays, to start another manager");

    drop(manager);
    wait_for(
        "the warden gone with the lifeline",
        Duration::from_secs(5),
        || !alive(warden),
    );

    // A master killed with SIGKILL: its manager and daemons go too (the
    // lifeline it held closes).
    let spec = managed_spec(apps, dir, "orphans");
    // SAFETY: this process is single-threaded here (the clients' threads
    // have ended); the child only forks the manager and sleeps.
    let master = unsafe { libc::fork() };
    if master == 0 {
        let kept = manager::spawn(vec![spec], "oxwsgi: groups", None, logger);
        std::thread::sleep(Duration::from_secs(60));
        drop(kept);
        std::process::exit(0);
    }
    wait_for("a manager", Duration::from_secs(10), || {
        children_of(master).len() == 1
    });
    let m = children_of(master)[0];
    wait_for("its daemons and warden", Duration::from_secs(10), || {
        daemons_of(m).len() == 2 && children_of(m).len() == 3
    });
    let daemons = daemons_of(m);
    let warden: Vec<i32> = children_of(m)
        .into_iter()
        .filter(|p| !daemons.contains(p))
        .collect();
    assert_eq!(warden.len(), 1, "a warden");
    // SAFETY: killing the stand-in master this test forked.
    unsafe { libc::kill(master, libc::SIGKILL) };
    // SAFETY: reaping it.
    unsafe { libc::waitpid(master, &mut status, 0) };
    wait_for("no orphan", Duration::from_secs(10), || {
        !alive(m) && daemons.iter().chain(&warden).all(|p| !alive(*p))
    });
}

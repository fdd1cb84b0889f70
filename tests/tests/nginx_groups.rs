//! nginx's process groups (`wsgi_daemon_process`), first part: the master
//! starts a manager that owns the groups' daemons, which follow nginx's
//! life (replaced when killed, replaced on reload, gone on stop and when
//! the master is killed), and `nginx -t` checks the options.

use std::time::Duration;

use oxwsgi_e2e::nginx::{self, Config, Nginx};
use oxwsgi_e2e::{children_of, wait_until};

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// The master's group manager.
fn managers(n: &Nginx) -> Vec<i32> {
    children_of(n.master_pid())
        .into_iter()
        .filter(|p| comm(*p) == "oxwsgi: groups")
        .collect()
}

fn daemons(manager: i32) -> Vec<i32> {
    children_of(manager)
        .into_iter()
        .filter(|p| comm(*p) == "(wsgi:site)")
        .collect()
}

fn site() -> Config {
    Config::new("location / { return 200 'static'; }").http(&format!(
        "wsgi_daemon_process site processes=2 threads=2 python_path={} max_requests=1000 request_timeout=30s;",
        oxwsgi_e2e::repo().join("tests/apps").display()
    ))
}

#[test]
fn groups_follow_nginx_from_start_to_reload_to_stop() {
    let n = Nginx::start(site());
    assert!(wait_until(Duration::from_secs(10), || managers(&n).len()
        == 1
        && daemons(managers(&n)[0]).len() == 2));
    let manager = managers(&n)[0];
    let first = daemons(manager);
    // The daemons run as nginx's workers do (nobody, nginx's default user,
    // when the master is root), and the socket is beside the pid file.
    let uid = |pid: i32| -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let worker = n.workers().into_iter().find(|p| *p != manager).unwrap();
    assert_eq!(uid(first[0]), uid(worker));
    assert!(n.dir.join("nginx-oxwsgi/site.sock").exists());

    // kill -9: the manager replaces the daemon within a second.
    // SAFETY: signalling a daemon of the nginx this test started.
    unsafe { libc::kill(first[0], libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(1), || {
        let d = daemons(manager);
        d.len() == 2 && !d.contains(&first[0])
    }));

    // A reload starts the new configuration's groups and retires the old.
    let before = daemons(manager);
    n.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || {
        let m = managers(&n);
        m.len() == 1 && m[0] != manager && daemons(m[0]).len() == 2
    }));
    assert!(wait_until(Duration::from_secs(10), || !alive(manager)
        && before.iter().all(|p| !alive(*p))));
    assert!(
        n.dir.join("nginx-oxwsgi/site.sock").exists(),
        "the new group's socket stays"
    );

    // The master killed: no Python process outlives it.
    let manager = managers(&n)[0];
    let all = daemons(manager);
    let workers: Vec<i32> = n.workers().into_iter().filter(|p| *p != manager).collect();
    n.signal(libc::SIGKILL);
    let gone = wait_until(Duration::from_secs(10), || {
        !alive(manager) && all.iter().all(|p| !alive(*p))
    });
    // nginx's own workers outlive a killed master (they are nginx's, not
    // the groups'): this test ends them, or each run would leave one.
    for w in workers {
        // SAFETY: signalling a worker of the nginx this test started.
        unsafe { libc::kill(w, libc::SIGKILL) };
    }
    assert!(gone, "orphans: {manager} {all:?}");
}

#[test]
fn stopping_nginx_stops_the_groups() {
    let mut n = Nginx::start(site());
    assert!(wait_until(Duration::from_secs(10), || managers(&n).len()
        == 1
        && daemons(managers(&n)[0]).len() == 2));
    let manager = managers(&n)[0];
    let all = daemons(manager);
    assert!(n.quit(Duration::from_secs(10)));
    assert!(wait_until(Duration::from_secs(10), || !alive(manager)
        && all.iter().all(|p| !alive(*p))));
    assert!(
        n.error_log().contains("group site: daemon process"),
        "{}",
        n.error_log()
    );
}

#[test]
fn nginx_t_checks_the_group_options() {
    for (line, message) in [
        (
            "wsgi_daemon_process site colour=blue;",
            "group site: unknown option colour",
        ),
        (
            "wsgi_daemon_process site user=no-such-user-here;",
            "user=no-such-user-here",
        ),
        ("wsgi_daemon_process site processes=0;", "processes=0"),
        (
            "wsgi_daemon_process site python_home=/nonexistent/venv;",
            "python_home",
        ),
        (
            "wsgi_daemon_process site python_executable=python3;",
            "python_executable=python3: expected auto, off or an interpreter's absolute path",
        ),
        (
            "wsgi_daemon_process site chroot=/srv;",
            "option chroot is not supported by oxwsgi yet",
        ),
        (
            "wsgi_daemon_process a;\nwsgi_daemon_process a;",
            "group a is defined twice",
        ),
    ] {
        let (ok, out) = nginx::check(&Config::new("").http(line));
        assert!(!ok, "{line}");
        assert!(out.contains(message), "{line}: {out}");
    }
    let (ok, out) = nginx::check(&site());
    assert!(ok, "{out}");
}

/// `nginx -t` checks, as the group's user (here nginx's workers'), what its
/// daemons will open: an interpreter it may not reach or a script it may
/// not read fails the check naming the path, instead of daemons that fail
/// at every start while requests wait.
#[test]
fn nginx_t_checks_what_the_groups_user_can_reach() {
    let (python, script) = oxwsgi_e2e::unreachable_files();
    let hello = oxwsgi_e2e::repo().join("examples/hello.py");
    let config = |app: &std::path::Path, options: &str| {
        Config::new(&format!(
            "location / {{ wsgi_process_group site; wsgi_app {}; }}",
            app.display()
        ))
        .http(&format!("wsgi_daemon_process site {options};"))
    };
    let (ok, out) = nginx::check(&config(
        &hello,
        &format!("python_executable={}", python.display()),
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("may not enter") && out.contains("closed") && out.contains("interpreter"),
        "{out}"
    );
    let (ok, out) = nginx::check(&config(&script, ""));
    assert!(!ok, "{out}");
    assert!(
        out.contains("cannot read") && out.contains("secret.py"),
        "{out}"
    );
    // Root's own group may: the check is the daemons' user's.
    let (ok, out) = nginx::check(&config(&hello, ""));
    assert!(ok, "{out}");
}

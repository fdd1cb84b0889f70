//! Apache's daemon mode (WSGIDaemonProcess / WSGIProcessGroup) end to end:
//! the apps run in the group's processes (not Apache's children), as
//! Apache's User, under the group's name in `ps`; the shared behaviour and
//! mistake tables give what embedded mode gives; a killed daemon is
//! replaced; stopping Apache leaves no daemon behind.

use std::time::{Duration, Instant};

use oxwsgi_e2e::apache::{self, Apache};
use oxwsgi_e2e::http;
use oxwsgi_e2e::{app, wait_until, wire};

fn daemon_site(mpm: &str) -> Apache {
    Apache::start(
        mpm,
        &format!(
            "WSGIDaemonProcess site processes=2 threads=4 display-name=%{{GROUP}}\n\
             WSGIProcessGroup site\n\
             WSGIScriptAlias /cases {}",
            app("cases.py")
        ),
    )
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn daemons(a: &Apache) -> Vec<i32> {
    oxwsgi_e2e::children_of(a.pid())
        .into_iter()
        .filter(|p| comm(*p) == "(wsgi:site)")
        .collect()
}

fn served_by(a: &Apache) -> i32 {
    http::get(a.port, "/cases/pid").text().parse().unwrap()
}

#[test]
fn apps_run_in_the_groups_processes_under_every_mpm() {
    for mpm in ["event", "prefork"] {
        let a = daemon_site(mpm);
        let pid = served_by(&a);
        assert!(
            daemons(&a).contains(&pid),
            "{mpm}: {pid} is not a daemon of the group"
        );
        assert!(
            !a.children()
                .iter()
                .any(|c| *c == pid && comm(*c) != "(wsgi:site)")
        );
        assert_eq!(daemons(&a).len(), 2, "{mpm}: processes=2");
        let www_data = uid_of(
            a.children()
                .into_iter()
                .find(|c| comm(*c) != "(wsgi:site)")
                .unwrap(),
        );
        assert_eq!(
            uid_of(pid),
            www_data,
            "{mpm}: the daemons run as Apache's User"
        );
        // The project's shared behaviour table, through the daemons.
        wire::no_body_leaks(a.port, "/cases");
        wire::latin1_headers(a.port, "/cases");
        wire::length_promises(a.port, "/cases");
        wire::each_chunk_leaves_at_once(a.port, "/cases");
        wire::streaming_while_reading_and_logging(a.port, "/cases", || a.error_log());
        for &(path, message) in oxwsgi_e2e::cases::MISTAKES {
            let r = http::get(a.port, &format!("/cases{path}"));
            assert_eq!(r.status, 500, "{mpm} {path}");
            assert!(a.wait_log(message), "{mpm} {path}: {message:?} not logged");
        }
    }
}

#[test]
fn a_killed_daemon_is_replaced_and_stopping_apache_leaves_none() {
    let a = daemon_site("event");
    let victim = served_by(&a);
    // SAFETY: signalling a daemon of the Apache this test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let t = Instant::now();
    assert!(wait_until(Duration::from_secs(5), || {
        let d = daemons(&a);
        d.len() == 2 && !d.contains(&victim)
    }));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    for _ in 0..20 {
        assert_eq!(http::get(a.port, "/cases/cookies").status, 200);
    }
    assert!(a.wait_log("was killed by signal 9; starting another"));
    let all = daemons(&a);
    // SAFETY: signalling the Apache parent this test started.
    unsafe { libc::kill(a.pid(), libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(15), || all
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())),
        "a daemon outlived Apache"
    );
}

#[test]
fn daemon_options_are_taken_or_refused_by_name() {
    let (ok, out) = apache::check(
        "WSGIDaemonProcess site processes=2 threads=15 user=www-data group=www-data display-name=%{GROUP} umask=0007",
    );
    assert!(ok, "{out}");
    let (ok, out) = apache::check("WSGIDaemonProcess site maximum-requests=1000");
    assert!(!ok);
    assert!(
        out.contains("option maximum-requests is not supported by oxwsgi yet"),
        "{out}"
    );
    let (ok, out) = apache::check("WSGIDaemonProcess site colour=blue");
    assert!(!ok);
    assert!(out.contains("unknown option colour"), "{out}");
    let (ok, out) = apache::check("WSGIDaemonProcess a\nWSGIDaemonProcess a");
    assert!(!ok);
    assert!(out.contains("process group a is defined twice"), "{out}");
}

/// A graceful restart replaces the group; requests arriving meanwhile wait
/// for the new one instead of failing.
#[test]
fn graceful_restarts_under_load_fail_no_request() {
    let a = daemon_site("event");
    let port = a.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match http::send(
                        port,
                        &http::Request::get("/cases/sleep?ms=2").to_bytes(port),
                        false,
                    ) {
                        Ok(r) if r.status == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let first = daemons(&a);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: signalling the Apache parent this test started.
        unsafe { libc::kill(a.pid(), libc::SIGUSR1) };
    }
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.join().unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 100, "{ok}");
    let now = daemons(&a);
    assert_eq!(now.len(), 2);
    assert!(
        now.iter().all(|p| !first.contains(p)),
        "the group was replaced"
    );
}

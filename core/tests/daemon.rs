//! A request through a daemon: the server's side (`daemon::proxy`) and the
//! daemon's (`daemon::serve`) over a real unix socket, here in one process
//! (threads), so the protocol is tested apart from process management. The
//! answers must be what embedded mode gives.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use common::{cases, fixture};
use oxwsgi_core::daemon::process::serve::Apps;
use oxwsgi_core::daemon::protocol::auth::Admission;
use oxwsgi_core::daemon::protocol::frame::AppRef;
use oxwsgi_core::daemon::server::proxy::Pool;
use oxwsgi_core::testing::{MemoryRequest, MemoryResponse, MemorySink, serve};
use oxwsgi_core::{App, Body, Outcome};

/// A daemon with the cases app as app 0, serving on a socket of its own.
fn daemon() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let app: Arc<App> = Arc::new(common::app_with(
            fixture("cases.py").to_str().unwrap(),
            |_| {},
        ));
        let dir = std::env::temp_dir().join(format!("oxwsgi-daemon-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path: PathBuf = dir.join("group.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                let apps = Apps::new(vec![app.clone()], true, false).with_admission(admission());
                std::thread::spawn(move || {
                    oxwsgi_core::ensure_thread_state();
                    let _ = oxwsgi_core::daemon::process::serve::serve_connection(&apps, stream);
                });
            }
        });
        Pool::new(path, None, admission().token)
    })
}

/// The test daemons' admission: this process's user, group `test`'s token.
fn admission() -> Admission {
    Admission::for_group("test", None).unwrap()
}

fn via_daemon(mut req: MemoryRequest) -> (MemoryResponse, Outcome) {
    let (mut sink, shared) = MemorySink::new();
    let outcome = daemon().serve(&AppRef::Index(0), &mut req, &mut sink);
    let resp = shared.lock().unwrap().clone();
    (resp, outcome)
}

fn both(path: &str) -> [(MemoryResponse, Outcome); 2] {
    [
        serve(cases(), MemoryRequest::get(path)),
        via_daemon(MemoryRequest::get(path)),
    ]
}

#[test]
fn responses_are_what_embedded_mode_gives() {
    for path in [
        "/stream?n=20&size=100",
        "/write",
        "/cookies",
        "/empty",
        "/big?size=300000",
        "/exc-info",
        "/raise-early",
        "/raise-late",
        "/str-body",
        "/no-start",
        "/short-body",
        "/file",
        "/latin1",
    ] {
        let [(e, eo), (d, dout)] = both(path);
        assert_eq!(d.status(), e.status(), "{path}");
        assert_eq!(d.text(), e.text(), "{path}");
        assert_eq!(d.finished(), e.finished(), "{path}");
        assert_eq!(d.aborted(), e.aborted(), "{path}");
        assert_eq!(dout, eo, "{path}");
        for h in ["Content-Type", "Content-Length", "Set-Cookie"] {
            assert_eq!(d.header(h), e.header(h), "{path} {h}");
        }
    }
}

#[test]
fn environ_is_what_embedded_mode_gives() {
    let req = || {
        MemoryRequest::get("/env?a=1")
            .header("X-Thing", "caf\u{e9}")
            .extra_var("REMOTE_USER", "ann")
            .https()
    };
    let embedded = serve(cases(), req()).0.text();
    let daemon = via_daemon(req()).0.text();
    assert_eq!(daemon, embedded);
}

#[test]
fn request_bodies_are_pulled_as_the_app_reads() {
    // 8 MiB read in pieces by the app, sent in 64 KiB reads of the client.
    let body: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let req = MemoryRequest::new("POST", "/echo")
        .header("Content-Length", &body.len().to_string())
        .body(Body::stream(std::io::Cursor::new(body.clone())));
    let (resp, outcome) = via_daemon(req);
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.status(), 200);
    assert!(resp.body == body, "the body came back whole and in order");
    // Chunked, with no length.
    let req = MemoryRequest::new("POST", "/echo")
        .chunked_body(std::io::Cursor::new(b"hello chunks".to_vec()));
    assert_eq!(via_daemon(req).0.text(), "hello chunks");
}

/// A client body that fails mid-way reaches the app as an error.
#[test]
fn a_failing_client_body_is_an_error_in_the_app() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("client went away"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
    }
    let req = || {
        MemoryRequest::new("POST", "/echo")
            .header("Content-Length", "100000")
            .body(Body::stream(Failing(1000)))
    };
    let (embedded, _) = serve(cases(), req());
    let (daemon, _) = via_daemon(req());
    assert_eq!(daemon.status(), embedded.status(), "{}", daemon.text());
    assert!(daemon.status() >= 400, "{}", daemon.text());
    assert!(
        common::logs_with("client went away").len() >= 2,
        "the reason reaches the log"
    );
}

#[test]
fn connections_are_reused() {
    for _ in 0..200 {
        assert_eq!(via_daemon(MemoryRequest::get("/cookies")).0.status(), 200);
    }
    // A client gone mid-response drops that connection only.
    let (mut sink, shared) = MemorySink::failing_after(2);
    let mut req = MemoryRequest::get("/stream?n=50&size=10");
    let outcome = daemon().serve(&AppRef::Index(0), &mut req, &mut sink);
    assert_eq!(outcome, Outcome::ClientGone);
    assert!(!shared.lock().unwrap().finished());
    assert_eq!(via_daemon(MemoryRequest::get("/cookies")).0.status(), 200);
}

#[test]
fn no_daemon_is_a_503() {
    let pool = Pool::new("/nonexistent/oxwsgi.sock".into(), None, admission().token)
        .with_connect_timeout(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    let (mut sink, shared) = MemorySink::new();
    let outcome = pool.serve(&AppRef::Index(0), &mut MemoryRequest::get("/"), &mut sink);
    assert_eq!(outcome, Outcome::Error(503));
    assert_eq!(shared.lock().unwrap().status(), 503);
    let waited = t.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(300),
        "it waited for the group: {waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(2), "{waited:?}");
}

/// A daemon process's dispatcher with 2 Python threads, behind its own
/// socket; `stop` ends it.
fn dispatched(
    name: &str,
    threads: usize,
) -> (
    Pool,
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
    PathBuf,
) {
    let app: Arc<App> = Arc::new(common::app_with(
        fixture("cases.py").to_str().unwrap(),
        |_| {},
    ));
    let options = oxwsgi_core::daemon::options::GroupOptions {
        threads,
        ..Default::default()
    };
    run_daemon(name, move || Apps::new(vec![app], true, false), options)
}

/// A daemon's dispatcher serving the apps `apps` makes (with the test
/// admission) on a socket of its own, on a thread, until its stop flag is
/// set; a pool for it, the flag, the thread and the socket's path.
fn run_daemon(
    name: &str,
    apps: impl FnOnce() -> Apps + Send + 'static,
    options: oxwsgi_core::daemon::options::GroupOptions,
) -> (
    Pool,
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
    PathBuf,
) {
    let dir = std::env::temp_dir().join(format!(
        "oxwsgi-dispatch-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("group.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            oxwsgi_core::daemon::process::dispatch::run(
                listener,
                apps().with_admission(admission()),
                &options,
                stop,
            )
            .unwrap();
        })
    };
    (
        Pool::new(path.clone(), None, admission().token),
        stop,
        run,
        path,
    )
}

#[test]
fn idle_pooled_connections_do_not_hold_the_daemons_threads() {
    let (pool, stop, run, _) = dispatched("idle", 2);
    let pool = Arc::new(pool);
    // 16 clients at once: 16 pooled connections to a daemon of 2 threads.
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let (mut sink, shared) = MemorySink::new();
                    let path = if i % 4 == 0 {
                        "/sleep?ms=5"
                    } else {
                        "/cookies"
                    };
                    let outcome =
                        pool.serve(&AppRef::Index(0), &mut MemoryRequest::get(path), &mut sink);
                    assert_eq!(outcome, Outcome::Complete);
                    assert_eq!(shared.lock().unwrap().status(), 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // A slow request holds one thread; the other serves on.
    let slow = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let (mut sink, shared) = MemorySink::new();
            pool.serve(
                &AppRef::Index(0),
                &mut MemoryRequest::get("/sleep?ms=600"),
                &mut sink,
            );
            let resp = shared.lock().unwrap().clone();
            resp.status()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let t = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(cookies(&pool), 200);
    }
    assert!(
        t.elapsed() < std::time::Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(slow.join().unwrap(), 200);
    stop.store(true, std::sync::atomic::Ordering::Release);
    run.join().unwrap();
}

/// `/cookies` of app 0 through `pool`: its status, once it completed.
fn cookies(pool: &Pool) -> u16 {
    let (mut sink, shared) = MemorySink::new();
    let outcome = pool.serve(
        &AppRef::Index(0),
        &mut MemoryRequest::get("/cookies"),
        &mut sink,
    );
    assert_eq!(outcome, Outcome::Complete);
    shared.lock().unwrap().status()
}

/// An app the group was not started with, named by the server: loaded on
/// first use, mounted where the server says, then kept.
#[test]
fn a_named_app_is_loaded_on_first_use() {
    let named = AppRef::Named {
        target: fixture("cases.py").to_str().unwrap().to_string(),
        callable: None,
        mount: "/m".into(),
        reload: true,
        group: String::new(),
    };
    for _ in 0..3 {
        let (mut sink, shared) = MemorySink::new();
        let outcome = daemon().serve(&named, &mut MemoryRequest::get("/m/env"), &mut sink);
        assert_eq!(outcome, Outcome::Complete);
        let text = shared.lock().unwrap().text();
        assert!(text.contains("\"SCRIPT_NAME\": \"/m\""), "{text}");
        assert!(text.contains("\"PATH_INFO\": \"/env\""), "{text}");
    }
    let bad = AppRef::Named {
        target: "relative.py".into(),
        callable: None,
        mount: String::new(),
        reload: true,
        group: String::new(),
    };
    let (mut sink, shared) = MemorySink::new();
    assert_eq!(
        daemon().serve(&bad, &mut MemoryRequest::get("/"), &mut sink),
        Outcome::Error(500)
    );
    assert_eq!(shared.lock().unwrap().status(), 500);
}

/// Sends `bytes` on a new connection to the daemon at `path` (as a process
/// that is not the server would) and reads what comes back until the
/// daemon closes the connection, after its `Accepted`; `None` if it kept
/// it open for 10 s.
fn raw(path: &std::path::Path, bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(bytes).unwrap();
    // A daemon takes every connection of the server's user first, before
    // it reads anything of it.
    let mut accepted = [0u8; 5];
    s.read_exact(&mut accepted).unwrap();
    assert_eq!(accepted, [13, 0, 0, 0, 0], "Accepted comes first");
    let mut back = Vec::new();
    match s.read_to_end(&mut back) {
        Ok(_) => Some(back),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(back),
        Err(_) => {
            eprintln!(
                "kept open after {} bytes: {:?}",
                back.len(),
                String::from_utf8_lossy(&back)
            );
            None
        }
    }
}

/// A head naming a script of the sender's choice, with a forged user.
fn forged_head(script: &std::path::Path) -> Vec<u8> {
    use oxwsgi_core::daemon::protocol::frame::{self, BodyKind, Kind};
    let req = MemoryRequest::get("/").extra_var("REMOTE_USER", "admin");
    let named = AppRef::Named {
        target: script.to_str().unwrap().to_string(),
        callable: None,
        mount: String::new(),
        reload: true,
        group: String::new(),
    };
    let mut out = Vec::new();
    frame::write(
        &mut out,
        Kind::Head,
        &frame::encode_head(&named, &req, BodyKind::None),
    )
    .unwrap();
    out
}

/// Only the server may talk to a daemon: a request head sent without the
/// group's token, or with another, is refused before anything of it runs
/// (the script it names is never even loaded); with the token (what the
/// server sends) the same head runs.
#[test]
fn a_request_without_the_groups_token_runs_nothing() {
    use oxwsgi_core::daemon::protocol::frame::{self, Kind};
    let (_pool, stop, run, path) = dispatched("forged", 1);
    let dir = path.parent().unwrap().to_path_buf();
    let marker = dir.join("ran");
    let script = dir.join("attacker.py");
    std::fs::write(
        &script,
        format!(
            "open({:?}, 'w').write('loaded')\n\
             def application(environ, start_response):\n\
             \x20   start_response('200 OK', [])\n\
             \x20   return [environ.get('REMOTE_USER', '').encode()]\n",
            marker.to_str().unwrap()
        ),
    )
    .unwrap();
    let hello = |token: &[u8]| {
        let mut out = Vec::new();
        frame::write(&mut out, Kind::Hello, token).unwrap();
        out
    };
    let other = Admission::for_group("another-group", None).unwrap().token;
    let attempts: [(&str, Vec<u8>); 5] = [
        ("no introduction", forged_head(&script)),
        (
            "another group's token",
            [hello(other.as_bytes()), forged_head(&script)].concat(),
        ),
        (
            "a token cut short",
            [
                hello(&admission().token.as_bytes()[..31]),
                forged_head(&script),
            ]
            .concat(),
        ),
        ("a body frame first", {
            let mut out = Vec::new();
            frame::write(&mut out, Kind::Body, b"x").unwrap();
            [out, forged_head(&script)].concat()
        }),
        // Claims 16 MiB of introduction: refused on its header, nothing
        // read or allocated for it.
        ("a huge introduction", vec![Kind::Hello as u8, 0, 0, 0, 1]),
    ];
    for (what, bytes) in attempts {
        let back = raw(&path, &bytes);
        assert_eq!(back, Some(Vec::new()), "{what}: closed, nothing answered");
        assert!(!marker.exists(), "{what}: the script ran");
    }
    // The control: the server's introduction, then the same head.
    let back = raw(
        &path,
        &[hello(admission().token.as_bytes()), forged_head(&script)].concat(),
    );
    assert_eq!(back, None, "served, and the connection kept for the next");
    assert!(marker.exists(), "with the token, the request runs");
    stop.store(true, std::sync::atomic::Ordering::Release);
    run.join().unwrap();
}

/// A connection that never introduces itself is closed after a few
/// seconds (it holds no thread, but a descriptor of the daemon's).
#[test]
fn a_silent_connection_is_dropped() {
    let (pool, stop, run, path) = dispatched("silent", 1);
    let t = std::time::Instant::now();
    let back = raw(&path, b"");
    assert_eq!(back, Some(Vec::new()));
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(5) && took < std::time::Duration::from_secs(9),
        "{took:?}"
    );
    // The daemon serves on.
    assert_eq!(cookies(&pool), 200);
    stop.store(true, std::sync::atomic::Ordering::Release);
    run.join().unwrap();
}

/// A daemon given the configuration's mounts runs those and nothing else,
/// even for a request with the group's token (an app embedded in the
/// server's workers could forge one): the script named is never loaded.
#[test]
fn a_daemon_runs_only_the_apps_mounted_for_it() {
    use oxwsgi_core::daemon::spec::Mount;
    // Python started (by the shared daemon's app).
    let _ = daemon();
    let dir = std::env::temp_dir().join(format!("oxwsgi-mounts-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let script = dir.join("other.py");
    std::fs::write(
        &script,
        format!(
            "open({:?}, 'w').write('loaded')\napplication = None\n",
            marker.to_str().unwrap()
        ),
    )
    .unwrap();
    let cases = fixture("cases.py").to_str().unwrap().to_string();
    let mounted = Mount {
        target: cases.clone(),
        callable: "application".into(),
        mount: "/m".into(),
    };
    let (pool, stop, run, _) = run_daemon(
        "mounts",
        move || Apps::new(vec![], true, false).with_mounts(Some(vec![mounted])),
        oxwsgi_core::daemon::options::GroupOptions {
            threads: 1,
            ..Default::default()
        },
    );
    let named = |target: &str, mount: &str| AppRef::Named {
        target: target.into(),
        callable: Some("application".into()),
        mount: mount.into(),
        reload: true,
        group: String::new(),
    };
    let (mut sink, shared) = MemorySink::new();
    let outcome = pool.serve(
        &named(&cases, "/m"),
        &mut MemoryRequest::get("/m/cookies"),
        &mut sink,
    );
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(shared.lock().unwrap().status(), 200);
    for (target, mount) in [
        (script.to_str().unwrap(), "/m"),
        (cases.as_str(), "/elsewhere"),
    ] {
        let (mut sink, shared) = MemorySink::new();
        let outcome = pool.serve(
            &named(target, mount),
            &mut MemoryRequest::get("/m/x"),
            &mut sink,
        );
        assert_eq!(outcome, Outcome::Error(500), "{target} at {mount}");
        assert_eq!(shared.lock().unwrap().status(), 500);
    }
    assert!(
        !marker.exists(),
        "an app the configuration does not mount was loaded"
    );
    stop.store(true, std::sync::atomic::Ordering::Release);
    run.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A connection that sends part of a head and then nothing is dropped
/// after the group's socket timeout: it held a thread only that long.
#[test]
fn a_head_sent_in_part_is_dropped_after_the_socket_timeout() {
    use oxwsgi_core::daemon::protocol::frame::{self, Kind};
    let _ = daemon();
    let app: Arc<App> = Arc::new(common::app_with(
        fixture("cases.py").to_str().unwrap(),
        |_| {},
    ));
    let (pool, stop, run, path) = run_daemon(
        "partial",
        move || Apps::new(vec![app], true, false),
        oxwsgi_core::daemon::options::GroupOptions {
            threads: 1,
            socket_timeout: Some(std::time::Duration::from_secs(1)),
            ..Default::default()
        },
    );
    let mut bytes = Vec::new();
    frame::write(&mut bytes, Kind::Hello, admission().token.as_bytes()).unwrap();
    bytes.extend_from_slice(&[Kind::Head as u8, 200, 0, 0, 0, 1, 2, 3]);
    let t = std::time::Instant::now();
    assert_eq!(raw(&path, &bytes), Some(Vec::new()), "closed");
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    // Its one thread is free again.
    assert_eq!(cookies(&pool), 200);
    stop.store(true, std::sync::atomic::Ordering::Release);
    run.join().unwrap();
}

/// An introduction sent in part holds a daemon thread no longer than an
/// introduction may take (5 s), whatever the group's socket timeout.
#[test]
fn an_introduction_sent_in_part_is_dropped_soon() {
    let _ = daemon();
    let app: Arc<App> = Arc::new(common::app_with(
        fixture("cases.py").to_str().unwrap(),
        |_| {},
    ));
    let (pool, stop, run, path) = run_daemon(
        "hello-part",
        move || Apps::new(vec![app], true, false),
        oxwsgi_core::daemon::options::GroupOptions {
            threads: 1,
            socket_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        },
    );
    let t = std::time::Instant::now();
    assert_eq!(raw(&path, &[12, 32, 0, 0, 0, 1, 2, 3]), Some(Vec::new()));
    let took = t.elapsed();
    assert!(took < std::time::Duration::from_secs(9), "{took:?}");
    assert_eq!(cookies(&pool), 200);
    stop.store(true, std::sync::atomic::Ordering::Release);
    run.join().unwrap();
}

/// A group whose socket is there but whose daemons take no connection
/// (none could start): the request waits the connect timeout, gets 503,
/// and was never sent: a daemon that takes the connection later finds the
/// introduction and nothing else.
#[test]
fn a_request_no_daemon_takes_gets_503_after_the_connect_timeout() {
    use oxwsgi_core::daemon::protocol::frame::{self, Kind};
    let dir = std::env::temp_dir().join(format!("oxwsgi-untaken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("group.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let pool = Pool::new(path, None, admission().token)
        .with_connect_timeout(std::time::Duration::from_millis(1500));
    let mut req = MemoryRequest::post("/echo", "text/plain", b"do it once");
    let (mut sink, shared) = MemorySink::new();
    let t = std::time::Instant::now();
    let outcome = pool.serve(&AppRef::Index(0), &mut req, &mut sink);
    let took = t.elapsed();
    assert_eq!(shared.lock().unwrap().status(), 503, "{outcome:?}");
    assert!(
        took >= std::time::Duration::from_millis(1400) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    listener.set_nonblocking(true).unwrap();
    let mut taken = 0;
    while let Ok((mut s, _)) = listener.accept() {
        taken += 1;
        let mut sent = Vec::new();
        s.read_to_end(&mut sent).unwrap();
        let mut hello = Vec::new();
        frame::write(&mut hello, Kind::Hello, admission().token.as_bytes()).unwrap();
        assert_eq!(sent, hello, "only the introduction was sent");
    }
    assert!(taken >= 1, "the request waited on a connection");
}

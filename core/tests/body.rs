//! Request bodies through wsgi.input, and gzip both ways.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use oxwsgi_core::testing::{MemoryRequest, serve};
use oxwsgi_core::{App, Body, Outcome};

/// Hands out the body a few bytes at a time, like a socket.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = 7.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn post(uri: &str, body: &[u8]) -> MemoryRequest {
    MemoryRequest::post(uri, "application/octet-stream", body)
}

#[test]
fn every_read_style_sees_the_whole_body() {
    let body = b"first line\nsecond line\n\nlast without newline";
    for how in [
        "read",
        "chunks&size=5",
        "lines",
        "iter",
        "readline",
        "readline&size=4",
    ] {
        let (resp, outcome) = serve(cases(), post(&format!("/echo?how={how}"), body));
        assert_eq!(outcome, Outcome::Complete, "{how}");
        assert_eq!(resp.body, body, "{how}");
    }
}

#[test]
fn streamed_bodies_are_read_as_they_arrive() {
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    for how in ["read", "chunks&size=65536", "lines"] {
        let req = MemoryRequest::new("POST", &format!("/echo?how={how}"))
            .header("Content-Length", &body.len().to_string())
            .body(Body::stream(Trickle {
                data: body.clone(),
                pos: 0,
            }));
        let (resp, _) = serve(cases(), req);
        assert_eq!(resp.header("X-Received"), Some("1000000"), "{how}");
        assert!(resp.body == body, "{how}: body differs");
    }
}

#[test]
fn file_bodies() {
    let f = tempfile_with(b"body from a temp file\nline two\n");
    let req = MemoryRequest::new("POST", "/echo?how=lines")
        .header("Content-Length", "31")
        .body(Body::File(f));
    let (resp, _) = serve(cases(), req);
    assert_eq!(resp.text(), "body from a temp file\nline two\n");
}

fn tempfile_with(data: &[u8]) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("oxwsgi-body-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

#[test]
fn chunked_bodies_read_to_eof() {
    let req = MemoryRequest::new("POST", "/echo").chunked_body(Trickle {
        data: b"de-chunked by the server".to_vec(),
        pos: 0,
    });
    let (resp, _) = serve(cases(), req);
    assert_eq!(resp.text(), "de-chunked by the server");
}

#[test]
fn body_read_errors_become_500() {
    struct Reset;
    impl Read for Reset {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer reset"))
        }
    }
    let req = MemoryRequest::new("POST", "/echo?how=lines")
        .header("Content-Length", "10")
        .body(Body::stream(Reset));
    let (resp, _) = serve(cases(), req);
    assert_eq!(resp.status(), 500);
    assert!(
        !logs_with("POST /echo?how=lines: OSError: reading the request body failed: peer reset")
            .is_empty()
    );
}

/// A body that arrives only when the test says so.
struct Gate(mpsc::Receiver<Vec<u8>>, Vec<u8>);

impl Read for Gate {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1.is_empty() {
            match self.0.recv() {
                Ok(v) => self.1 = v,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1.drain(..n);
        Ok(n)
    }
}

#[test]
fn the_gil_is_released_while_waiting_for_body_bytes() {
    python();
    let (tx, rx) = mpsc::channel();
    let waiting = std::thread::spawn(move || {
        let req = MemoryRequest::new("POST", "/echo").chunked_body(Gate(rx, Vec::new()));
        serve(cases(), req).0.text()
    });
    std::thread::sleep(Duration::from_millis(100));
    // The other request is blocked inside wsgi.input.read(); this one must
    // still get through Python.
    let (resp, _) = get(cases(), "/cookies");
    assert_eq!(resp.status(), 200);
    tx.send(b"late bytes".to_vec()).unwrap();
    drop(tx);
    assert_eq!(waiting.join().unwrap(), "late bytes");
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

fn gzip_app() -> App {
    app_with(fixture("cases.py").to_str().unwrap(), |o| {
        o.gzip = true;
        o.inflate_request = true;
        o.inflate_max = 1 << 20;
    })
}

#[test]
fn responses_are_gzipped_for_clients_that_accept_it() {
    let app = gzip_app();
    let (resp, _) = serve(
        &app,
        MemoryRequest::get("/big?size=50000").header("Accept-Encoding", "gzip, br"),
    );
    assert_eq!(resp.header("Content-Encoding"), Some("gzip"));
    assert_eq!(resp.header("Vary"), Some("Accept-Encoding"));
    let len: usize = resp.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(len, resp.body.len());
    assert!(len < 5000, "compressed to {len}");
    let plain = gunzip(&resp.body);
    assert_eq!(plain.len(), 50000);
    assert!(plain.starts_with(b"oxwsgi compresses text well. "));
}

#[test]
fn identity_for_clients_that_refuse_gzip_but_vary_is_set() {
    let app = gzip_app();
    for accept in [None, Some("gzip;q=0"), Some("br")] {
        let mut req = MemoryRequest::get("/big?size=50000");
        if let Some(a) = accept {
            req = req.header("Accept-Encoding", a);
        }
        let (resp, _) = serve(&app, req);
        assert_eq!(resp.header("Content-Encoding"), None, "{accept:?}");
        assert_eq!(resp.header("Vary"), Some("Accept-Encoding"), "{accept:?}");
        assert_eq!(resp.body.len(), 50000, "{accept:?}");
    }
}

#[test]
fn streaming_gzip_flushes_every_chunk() {
    let app = gzip_app();
    let (resp, outcome) = serve(
        &app,
        MemoryRequest::get("/big?size=40000&stream=1").header("Accept-Encoding", "gzip"),
    );
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(resp.header("Content-Encoding"), Some("gzip"));
    assert_eq!(resp.header("Content-Length"), None);
    // 10 chunks of 4 KiB, each flushed: at least 10 writes plus the trailer.
    assert!(resp.writes() >= 11, "{} writes", resp.writes());
    assert_eq!(gunzip(&resp.body).len(), 40000);
}

#[test]
fn small_and_incompressible_bodies_are_left_alone() {
    let app = gzip_app();
    let (resp, _) = serve(
        &app,
        MemoryRequest::get("/big?size=100").header("Accept-Encoding", "gzip"),
    );
    assert_eq!(resp.header("Content-Encoding"), None);
    assert_eq!(resp.body.len(), 100);
    let (resp, _) = serve(
        &app,
        MemoryRequest::get("/big?size=50000&type=image/png").header("Accept-Encoding", "gzip"),
    );
    assert_eq!(resp.header("Content-Encoding"), None);
    assert_eq!(resp.header("Vary"), None);
}

#[test]
fn gzip_is_off_unless_enabled() {
    let (resp, _) = serve(
        cases(),
        MemoryRequest::get("/big?size=50000").header("Accept-Encoding", "gzip"),
    );
    assert_eq!(resp.header("Content-Encoding"), None);
    assert_eq!(resp.header("Vary"), None);
}

fn gzip_post(uri: &str, plain: &[u8]) -> MemoryRequest {
    let body = gzip_bytes(plain);
    MemoryRequest::new("POST", uri)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Encoding", "gzip")
        .header("Content-Length", &body.len().to_string())
        .body(Body::Memory(body))
}

#[test]
fn gzip_request_bodies_are_inflated() {
    let app = gzip_app();
    let plain = b"field=value&other=thing".repeat(100);
    let (resp, _) = serve(&app, gzip_post("/echo", &plain));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, plain);
    let (resp, _) = serve(&app, gzip_post("/env", &plain));
    let env = resp.text();
    assert!(
        env.contains(&format!("\"CONTENT_LENGTH\": \"{}\"", plain.len())),
        "{env}"
    );
    assert!(!env.contains("HTTP_CONTENT_ENCODING"), "{env}");
}

#[test]
fn zip_bombs_get_413_without_running_the_app() {
    let app = gzip_app();
    let bomb = vec![0u8; 16 << 20];
    let (resp, outcome) = serve(&app, gzip_post("/echo?bomb", &bomb));
    assert_eq!(outcome, Outcome::Error(413));
    assert_eq!(resp.status(), 413);
    assert!(
        !logs_with("POST /echo?bomb: gzip request body inflates to more than 1048576 bytes")
            .is_empty()
    );
}

#[test]
fn corrupt_gzip_bodies_get_400() {
    let app = gzip_app();
    let req = MemoryRequest::new("POST", "/echo?corrupt")
        .header("Content-Encoding", "gzip")
        .header("Content-Length", "12")
        .body(Body::Memory(b"not gzip....".to_vec()));
    let (resp, _) = serve(&app, req);
    assert_eq!(resp.status(), 400);
}

#[test]
fn inflation_is_off_unless_enabled() {
    let plain = b"stays compressed";
    let (resp, _) = serve(cases(), gzip_post("/echo", plain));
    assert_eq!(resp.body, gzip_bytes(plain));
}

/// A body source that writes into uninitialised memory (as Apache's does)
/// and counts the reads that went the other way.
struct Direct {
    data: Vec<u8>,
    pos: usize,
    plain_reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Read for Direct {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.plain_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl oxwsgi_core::BodyStream for Direct {
    fn read_uninit(&mut self, buf: &mut [std::mem::MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        // A socket's worth at a time.
        let n = 8000.min(buf.len()).min(self.data.len() - self.pos);
        for (d, s) in buf.iter_mut().zip(&self.data[self.pos..self.pos + n]) {
            d.write(*s);
        }
        self.pos += n;
        Some(Ok(n))
    }
}

#[test]
fn large_reads_fill_the_bytes_object_straight_from_the_source() {
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    // The whole body, and one shorter than its Content-Length.
    for (sent, promised) in [(data.len(), data.len()), (600_000, data.len())] {
        let plain_reads = std::sync::Arc::default();
        let source = Direct {
            data: data[..sent].to_vec(),
            pos: 0,
            plain_reads: std::sync::Arc::clone(&plain_reads),
        };
        let req = MemoryRequest::new("POST", "/echo?how=read")
            .header("Content-Length", &promised.to_string())
            .body(Body::Stream(Box::new(source)));
        let (resp, _) = serve(cases(), req);
        assert_eq!(resp.header("X-Received"), Some(&*sent.to_string()));
        assert!(resp.body == data[..sent], "the bytes differ");
        assert_eq!(
            plain_reads.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "the large read went through read(), not read_uninit()"
        );
    }
}

#[test]
fn a_stream_shorter_than_its_content_length() {
    // The client promised 200 000 bytes and sent 100 000: read(n) returns
    // what came, not zero padding.
    let data = vec![b'z'; 100_000];
    let req = MemoryRequest::new("POST", "/echo?how=read")
        .header("Content-Length", "200000")
        .body(Body::stream(io::Cursor::new(data.clone())));
    let (resp, _) = serve(cases(), req);
    assert_eq!(resp.header("X-Received"), Some("100000"));
    assert!(resp.body == data);
}

/// A body already in the server's hands (as nginx's pipe after the event
/// loop read it), or not, that notes whether each read held the GIL.
struct Arrived {
    data: Vec<u8>,
    pos: usize,
    says_ready: bool,
    reads_with_gil: std::sync::Arc<std::sync::Mutex<Vec<bool>>>,
}

impl Read for Arrived {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads_with_gil
            .lock()
            .unwrap()
            .push(oxwsgi_core::python::interpreter::holds_gil());
        // A server buffer's worth at a time.
        let n = 65536.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl oxwsgi_core::BodyStream for Arrived {
    fn ready(&self, want: usize) -> bool {
        self.says_ready && self.data.len() - self.pos >= want.min(self.data.len() - self.pos)
    }
}

#[test]
fn pieces_already_arrived_are_read_without_releasing_the_gil() {
    python();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for says_ready in [true, false] {
        for piece in [8192, 65536] {
            let reads = std::sync::Arc::default();
            let source = Arrived {
                data: data.clone(),
                pos: 0,
                says_ready,
                reads_with_gil: std::sync::Arc::clone(&reads),
            };
            let req = MemoryRequest::new("POST", &format!("/echo?how=chunks&size={piece}"))
                .header("Content-Length", &data.len().to_string())
                .body(Body::Stream(Box::new(source)));
            let (resp, _) = serve(cases(), req);
            assert!(resp.body == data, "piece {piece}: the bytes differ");
            let reads = reads.lock().unwrap();
            assert!(!reads.is_empty());
            // Ready pieces keep the GIL; a source that cannot tell is read
            // with it released, as it may wait for the client.
            assert!(
                reads.iter().all(|&held| held == says_ready),
                "ready={says_ready} piece={piece}: {reads:?}"
            );
        }
    }
}

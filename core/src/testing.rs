//! A server made of memory, for testing: a `Request` and a `ResponseSink`
//! with no server behind them, for the core's tests, the fixtures and the
//! benchmark.

use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use crate::app::App;
use crate::handler::handle;
use crate::request::environ::percent_decode;
use crate::request::{Body, OwnedRequest};
use crate::response::ResponseHead;
use crate::response::responder::Outcome;
use crate::response::sink::{Chunk, ResponseSink};

/// A request built in code: the core's `OwnedRequest` with builders.
pub type MemoryRequest = OwnedRequest;

impl MemoryRequest {
    /// `method` on `uri` (path and query), HTTP/1.1 from 127.0.0.1 to localhost:80.
    pub fn new(method: &str, uri: &str) -> MemoryRequest {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        MemoryRequest {
            method: method.as_bytes().to_vec(),
            uri: uri.as_bytes().to_vec(),
            path: percent_decode(path.as_bytes()),
            query: query.as_bytes().to_vec(),
            protocol: b"HTTP/1.1".to_vec(),
            https: false,
            server_name: b"localhost".to_vec(),
            server_port: 80,
            remote_addr: b"127.0.0.1".to_vec(),
            remote_port: 40000,
            headers: vec![(b"Host".to_vec(), b"localhost".to_vec())],
            extra_vars: Vec::new(),
            chunked: false,
            body: None,
        }
    }

    pub fn get(uri: &str) -> MemoryRequest {
        MemoryRequest::new("GET", uri)
    }

    /// A POST with a body in memory and its Content-Length.
    pub fn post(uri: &str, content_type: &str, body: &[u8]) -> MemoryRequest {
        MemoryRequest::new("POST", uri)
            .header("Content-Type", content_type)
            .header("Content-Length", &body.len().to_string())
            .body(Body::Memory(body.to_vec()))
    }

    pub fn header(mut self, name: &str, value: &str) -> MemoryRequest {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    pub fn raw_header(mut self, name: &[u8], value: &[u8]) -> MemoryRequest {
        self.headers.push((name.to_vec(), value.to_vec()));
        self
    }

    pub fn extra_var(mut self, name: &str, value: &str) -> MemoryRequest {
        self.extra_vars
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    pub fn body(mut self, body: Body) -> MemoryRequest {
        self.body = Some(body);
        self
    }

    /// A de-chunked body of unknown length, streamed from `reader`.
    pub fn chunked_body(mut self, reader: impl Read + Send + 'static) -> MemoryRequest {
        self.chunked = true;
        self.body = Some(Body::stream(reader));
        self
    }

    pub fn https(mut self) -> MemoryRequest {
        self.https = true;
        self.server_port = 443;
        self
    }
}

/// Everything a `MemorySink` was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start(ResponseHead),
    Write(usize),
    SendFile { offset: u64, len: u64 },
    Flush,
    Finish,
    Abort,
}

/// A recorded response.
#[derive(Debug, Default, Clone)]
pub struct MemoryResponse {
    pub head: Option<ResponseHead>,
    pub body: Vec<u8>,
    pub events: Vec<Event>,
}

impl MemoryResponse {
    pub fn status(&self) -> u16 {
        self.head.as_ref().map_or(0, |h| h.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.as_ref().and_then(|h| h.header(name))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn finished(&self) -> bool {
        self.events.contains(&Event::Finish)
    }

    pub fn aborted(&self) -> bool {
        self.events.contains(&Event::Abort)
    }

    pub fn writes(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Write(_)))
            .count()
    }
}

/// A sink that records into a shared `MemoryResponse`; it can also play a
/// client that goes away after some writes.
pub struct MemorySink {
    shared: Arc<Mutex<MemoryResponse>>,
    fail_after_writes: Option<usize>,
    writes: usize,
}

impl MemorySink {
    pub fn new() -> (MemorySink, Arc<Mutex<MemoryResponse>>) {
        let shared = Arc::new(Mutex::new(MemoryResponse::default()));
        (
            MemorySink {
                shared: shared.clone(),
                fail_after_writes: None,
                writes: 0,
            },
            shared,
        )
    }

    /// The client disconnects after `n` body writes succeeded.
    pub fn failing_after(n: usize) -> (MemorySink, Arc<Mutex<MemoryResponse>>) {
        let (mut s, shared) = MemorySink::new();
        s.fail_after_writes = Some(n);
        (s, shared)
    }

    fn record(&self, e: Event) {
        self.shared.lock().expect("sink lock").events.push(e);
    }
}

impl ResponseSink for MemorySink {
    fn start(&mut self, head: ResponseHead) -> io::Result<()> {
        let mut r = self.shared.lock().expect("sink lock");
        assert!(r.head.is_none(), "start called twice");
        r.events.push(Event::Start(head.clone()));
        r.head = Some(head);
        Ok(())
    }

    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        if self.fail_after_writes.is_some_and(|n| self.writes >= n) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        self.writes += 1;
        let mut r = self.shared.lock().expect("sink lock");
        r.body.extend_from_slice(&chunk);
        r.events.push(Event::Write(chunk.len()));
        Ok(())
    }

    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        self.record(Event::SendFile { offset, len });
        use std::io::{Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::new();
        file.take(len).read_to_end(&mut data)?;
        self.shared.lock().expect("sink lock").body.extend(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.record(Event::Flush);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.record(Event::Finish);
        Ok(())
    }

    fn abort(&mut self) {
        self.record(Event::Abort);
    }
}

/// Serves `req` with `app` through a `MemorySink`; returns the recording and
/// the outcome.
pub fn serve(app: &App, mut req: MemoryRequest) -> (MemoryResponse, Outcome) {
    let (sink, shared) = MemorySink::new();
    let outcome = handle(app, &mut req, Box::new(sink));
    let resp = shared.lock().expect("sink lock").clone();
    (resp, outcome)
}

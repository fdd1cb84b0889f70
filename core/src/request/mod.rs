//! What a server hands the core for one request: the `Request` trait and the
//! request body.
//!
//! The request side: `environ` builds the WSGI environ (PEP 3333 names and
//! types), with `proxy_headers` (a front proxy's `X-Forwarded-*`, when
//! trusted); `input` is `wsgi.input`, reading a body that `body_pipe` feeds
//! from a server's event loop (backpressure, reused buffers).

pub mod body_pipe;
pub mod environ;
pub mod input;
pub mod proxy_headers;

use std::fs::File;
use std::io::{self, Read};
use std::mem::MaybeUninit;

/// One request as the server received it. Byte strings are passed as they
/// came off the wire; the core decodes them (latin-1) for `environ`.
pub trait Request {
    /// `GET`, `POST`, ...
    fn method(&self) -> &[u8];
    /// The request target as received, query included (`REQUEST_URI`).
    fn uri(&self) -> &[u8];
    /// The path, percent-decoded (and normalised, as the server does it).
    fn path(&self) -> &[u8];
    /// The raw query string without `?`, empty when there is none.
    fn query(&self) -> &[u8];
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    fn protocol(&self) -> &[u8];
    /// Whether the request came over TLS.
    fn is_https(&self) -> bool;
    fn server_name(&self) -> &[u8];
    fn server_port(&self) -> u16;
    fn remote_addr(&self) -> &[u8];
    fn remote_port(&self) -> u16;
    /// Every header in the order received, duplicates included.
    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8]));
    /// Extra CGI-style variables the server wants in `environ` (Apache's
    /// `SetEnv`, `REMOTE_USER`, SSL variables, ...).
    fn for_each_extra_var(&self, _f: &mut dyn FnMut(&[u8], &[u8])) {}
    /// Whether the server de-chunked the body (no Content-Length was sent):
    /// the app must then read `wsgi.input` to its end.
    fn body_is_chunked(&self) -> bool {
        false
    }
    /// Hands the body over; called once per request.
    fn take_body(&mut self) -> Body;
}

/// A request body, in whatever form the server has it.
pub enum Body {
    Empty,
    /// Entirely in memory.
    Memory(Vec<u8>),
    /// In a (temporary) file, read from its current position.
    File(File),
    /// Arriving while the app reads it; reads may block (the GIL is released).
    Stream(Box<dyn BodyStream>),
}

/// A request body arriving while the app reads it.
pub trait BodyStream: Read + Send {
    /// Reads into `buf`, which may be uninitialised, and returns how many
    /// bytes at its start are now written (0 at the end of the body); None
    /// (the default) when the stream can only `read` into initialised
    /// memory, and the core zeroes the buffer once first. A stream that
    /// writes through a pointer (Apache's ap_get_client_block) saves that
    /// pass over large reads.
    fn read_uninit(&mut self, _buf: &mut [MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        None
    }

    /// Whether a read of `want` bytes completes now, without waiting for the
    /// client (also true at the end of the body or after an error: the read
    /// returns at once); false (the default) when the stream cannot tell. A
    /// read the stream can serve at once runs without releasing the GIL:
    /// framework parsers read bodies in many small pieces, and a release per
    /// piece costs more than the copy when threads contend for the GIL.
    fn ready(&self, _want: usize) -> bool {
        false
    }

    /// Whether more body bytes are already waiting (a read now returns
    /// some without waiting for the client); false (the default) when the
    /// stream cannot tell. Daemon mode's proxy sends what is waiting in one
    /// frame instead of one read's worth.
    fn pending(&self) -> bool {
        false
    }
}

/// An in-memory body: every read completes at once.
struct InMemory<R>(R);

impl<R: Read> Read for InMemory<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Send> BodyStream for InMemory<R> {
    fn ready(&self, _want: usize) -> bool {
        true
    }

    fn pending(&self) -> bool {
        true
    }
}

impl BodyStream for File {}

/// Any reader as a body stream.
struct Plain<R>(R);

impl<R: Read> Read for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Send> BodyStream for Plain<R> {}

impl Body {
    /// A streamed body read from `r`.
    pub fn stream(r: impl Read + Send + 'static) -> Body {
        Body::Stream(Box::new(Plain(r)))
    }

    /// The body as a stream (in-memory bodies are always ready).
    pub fn into_stream(self) -> Box<dyn BodyStream> {
        match self {
            Body::Empty => Box::new(InMemory(io::empty())),
            Body::Memory(v) => Box::new(InMemory(io::Cursor::new(v))),
            Body::File(f) => Box::new(f),
            Body::Stream(r) => r,
        }
    }

    /// A blocking reader over the whole body, for the core's own consumers
    /// (request inflation).
    pub fn into_reader(self) -> Box<dyn Read + Send> {
        match self {
            Body::Empty => Box::new(io::empty()),
            Body::Memory(v) => Box::new(io::Cursor::new(v)),
            Body::File(f) => Box::new(f),
            Body::Stream(r) => Box::new(r),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Memory(v) => write!(f, "Body::Memory({} bytes)", v.len()),
            Body::File(_) => f.write_str("Body::File"),
            Body::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

/// A request whose parts are owned byte strings: what a server copies out of
/// its own request structure (Apache), and what tests build in code
/// (`memory::MemoryRequest` adds builders).
#[derive(Debug)]
pub struct OwnedRequest {
    pub method: Vec<u8>,
    pub uri: Vec<u8>,
    pub path: Vec<u8>,
    pub query: Vec<u8>,
    pub protocol: Vec<u8>,
    pub https: bool,
    pub server_name: Vec<u8>,
    pub server_port: u16,
    pub remote_addr: Vec<u8>,
    pub remote_port: u16,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub extra_vars: Vec<(Vec<u8>, Vec<u8>)>,
    pub chunked: bool,
    pub body: Option<Body>,
}

impl Request for OwnedRequest {
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn uri(&self) -> &[u8] {
        &self.uri
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn query(&self) -> &[u8] {
        &self.query
    }
    fn protocol(&self) -> &[u8] {
        &self.protocol
    }
    fn is_https(&self) -> bool {
        self.https
    }
    fn server_name(&self) -> &[u8] {
        &self.server_name
    }
    fn server_port(&self) -> u16 {
        self.server_port
    }
    fn remote_addr(&self) -> &[u8] {
        &self.remote_addr
    }
    fn remote_port(&self) -> u16 {
        self.remote_port
    }
    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in &self.headers {
            f(n, v);
        }
    }
    fn for_each_extra_var(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in &self.extra_vars {
            f(n, v);
        }
    }
    fn body_is_chunked(&self) -> bool {
        self.chunked
    }
    fn take_body(&mut self) -> Body {
        self.body.take().unwrap_or(Body::Empty)
    }
}

/// Whether a request of HTTP version `major.minor` may reach an app: HTTP/1.x
/// (a later 1.x is read as 1.1, RFC 9112 §2.3), HTTP/0.9 where the server
/// allows it, and HTTP/2 only when it arrived over HTTP/2 (`multiplexed`),
/// not as the words "HTTP/2.0" in an HTTP/1 request line. Anything else gets
/// 505 from the server, before the app sees it.
pub fn version_supported(major: u32, minor: u32, multiplexed: bool) -> bool {
    match major {
        0 => minor == 9,
        1 => true,
        2 => minor == 0 && multiplexed,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::version_supported;

    #[test]
    fn versions_an_app_may_see() {
        for (major, minor, multiplexed, ok) in [
            (1, 1, false, true),
            (1, 0, false, true),
            (1, 9, false, true),
            (0, 9, false, true),
            (2, 0, true, true),
            (2, 0, false, false),
            (3, 0, false, false),
            (9, 9, false, false),
            (0, 8, false, false),
            (2, 1, true, false),
        ] {
            assert_eq!(
                version_supported(major, minor, multiplexed),
                ok,
                "HTTP/{major}.{minor} multiplexed={multiplexed}"
            );
        }
    }
}

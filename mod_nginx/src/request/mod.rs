//! A snapshot of an nginx request, owned, so a Python thread can read it
//! while the event loop goes on: every string is copied into one buffer, and
//! the body becomes memory, or a reader over nginx's temporary file.
//!
//! `body`: a body still arriving from nginx's reader, fed into the core's
//! `body_pipe` (backpressure: the client waits for the app's pace).

pub mod body;

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use ngx::ffi::{
    ngx_chain_t, ngx_connection_local_sockaddr, ngx_http_request_t, ngx_inet_get_port,
    ngx_list_part_t, ngx_str_t, ngx_table_elt_t,
};
use ngx::http::{HttpModuleServerConf, NgxHttpCoreModule};
use oxwsgi_core::{Body, Request};

/// A range of `NginxRequest::data`.
#[derive(Clone, Copy, Default)]
struct Span(u32, u32);

pub struct NginxRequest {
    data: Vec<u8>,
    method: Span,
    uri: Span,
    path: Span,
    query: Span,
    protocol: Span,
    server_name: Span,
    remote_addr: Span,
    headers: Vec<(Span, Span)>,
    https: bool,
    chunked: bool,
    server_port: u16,
    remote_port: u16,
    body: Option<Body>,
}

/// # Safety
/// `s` must describe valid memory (or be empty).
pub(crate) unsafe fn bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        // SAFETY: s describes s.len readable bytes at s.data (the
        // function's contract; empty and null were handled above).
        unsafe { std::slice::from_raw_parts(s.data, s.len) }
    }
}

impl NginxRequest {
    fn push(&mut self, b: &[u8]) -> Span {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(b);
        Span(start, b.len() as u32)
    }

    fn get(&self, s: Span) -> &[u8] {
        &self.data[s.0 as usize..(s.0 + s.1) as usize]
    }

    /// Copies what the app needs out of `r`; `body` is how the app reads
    /// the request body (`None`: it is all in nginx's buffers already).
    ///
    /// # Safety
    /// `r` is a live request on the event loop thread.
    pub unsafe fn snapshot(
        r: *mut ngx_http_request_t,
        body: Option<Body>,
    ) -> io::Result<NginxRequest> {
        // SAFETY: r and its connection are live on the event loop thread
        // (snapshot's contract), and nothing else touches them meanwhile.
        let (rr, c) = unsafe { (&*r, &mut *(*r).connection) };
        let mut q = NginxRequest {
            data: Vec::with_capacity(512),
            method: Span::default(),
            uri: Span::default(),
            path: Span::default(),
            query: Span::default(),
            protocol: Span::default(),
            server_name: Span::default(),
            remote_addr: Span::default(),
            headers: Vec::with_capacity(16),
            https: !c.ssl.is_null(),
            chunked: rr.headers_in.chunked() != 0,
            server_port: 0,
            remote_port: 0,
            body: None,
        };
        // SAFETY: nginx's request strings point into the request's buffers and
        // pool, alive for the request.
        unsafe {
            q.method = q.push(bytes(&rr.method_name));
            q.uri = q.push(bytes(&rr.unparsed_uri));
            q.path = q.push(bytes(&rr.uri));
            q.query = q.push(bytes(&rr.args));
            q.protocol = q.push(bytes(&rr.http_protocol));
            q.remote_addr = q.push(bytes(&c.addr_text));
            q.remote_port = ngx_inet_get_port(c.sockaddr);
            if ngx_connection_local_sockaddr(c, std::ptr::null_mut(), 0)
                == ngx::ffi::NGX_OK as isize
            {
                q.server_port = ngx_inet_get_port(c.local_sockaddr);
            }
            let req = ngx::http::Request::from_ngx_http_request(r);
            let configured = NgxHttpCoreModule::server_conf(req)
                .map(|cscf| bytes(&cscf.server_name))
                .unwrap_or(&[]);
            q.server_name = if configured.is_empty() {
                q.push(bytes(&rr.headers_in.server))
            } else {
                q.push(configured)
            };
            for_each_header_in(rr, |n, v| {
                let name = q.push(n);
                let value = q.push(v);
                q.headers.push((name, value));
            });
            q.body = Some(match body {
                Some(b) => b,
                None => take_body(rr)?,
            });
        }
        Ok(q)
    }
}

/// Calls `f` with each request header as received (deleted ones skipped).
///
/// # Safety
/// `r` is a live request on the event loop thread: its header list and the
/// strings in it live in its pool.
pub unsafe fn for_each_header_in<'r>(
    r: &'r ngx_http_request_t,
    mut f: impl FnMut(&'r [u8], &'r [u8]),
) {
    let mut part: *const ngx_list_part_t = &r.headers_in.headers.part;
    while !part.is_null() {
        // SAFETY: each part of the live request's header list holds `nelts`
        // initialised elements, and the last part's `next` is null.
        unsafe {
            let elts = (*part).elts as *const ngx_table_elt_t;
            for i in 0..(*part).nelts {
                let h = &*elts.add(i);
                if h.hash != 0 {
                    f(bytes(&h.key), bytes(&h.value));
                }
            }
            part = (*part).next;
        }
    }
}

/// A piece of the body: in memory, or a range of nginx's temporary file.
enum Segment {
    Memory(Vec<u8>),
    File { file: File, pos: u64, end: u64 },
}

/// # Safety
/// `r`'s body was read by nginx and its buffers are alive.
unsafe fn take_body(r: &ngx_http_request_t) -> io::Result<Body> {
    let rb = r.request_body;
    if rb.is_null() {
        return Ok(Body::Empty);
    }
    let mut segments = Vec::new();
    let mut all_memory = true;
    // SAFETY: the body chain and its buffers belong to the live request.
    unsafe {
        let mut cl: *mut ngx_chain_t = (*rb).bufs;
        while !cl.is_null() {
            let b = &*(*cl).buf;
            if b.in_file() != 0 && !b.file.is_null() {
                all_memory = false;
                let fd = (*b.file).fd;
                let file = std::os::fd::BorrowedFd::borrow_raw(fd).try_clone_to_owned()?;
                segments.push(Segment::File {
                    file: File::from(file),
                    pos: b.file_pos as u64,
                    end: b.file_last as u64,
                });
            } else if !b.pos.is_null() && b.last > b.pos {
                let len = b.last.offset_from(b.pos) as usize;
                segments.push(Segment::Memory(
                    std::slice::from_raw_parts(b.pos, len).to_vec(),
                ));
            }
            cl = (*cl).next;
        }
    }
    if segments.is_empty() {
        return Ok(Body::Empty);
    }
    if all_memory {
        if segments.len() == 1 {
            let Some(Segment::Memory(v)) = segments.pop() else {
                unreachable!()
            };
            return Ok(Body::Memory(v));
        }
        let mut v = Vec::new();
        for s in segments {
            if let Segment::Memory(m) = s {
                v.extend_from_slice(&m);
            }
        }
        return Ok(Body::Memory(v));
    }
    Ok(Body::Stream(Box::new(Segments {
        segments,
        memory_pos: 0,
    })))
}

/// Reads the segments in order; file ranges with pread, so nginx's own file
/// offset does not matter.
struct Segments {
    segments: Vec<Segment>,
    memory_pos: usize,
}

impl oxwsgi_core::BodyStream for Segments {}

impl Read for Segments {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(first) = self.segments.first_mut() {
            match first {
                Segment::Memory(v) => {
                    let n = buf.len().min(v.len() - self.memory_pos);
                    if n > 0 {
                        buf[..n].copy_from_slice(&v[self.memory_pos..self.memory_pos + n]);
                        self.memory_pos += n;
                        return Ok(n);
                    }
                    self.memory_pos = 0;
                }
                Segment::File { file, pos, end } => {
                    let want = buf.len().min((*end - *pos) as usize);
                    if want > 0 {
                        let n = file.read_at(&mut buf[..want], *pos)?;
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the request body's temporary file is shorter than expected",
                            ));
                        }
                        *pos += n as u64;
                        return Ok(n);
                    }
                }
            }
            self.segments.remove(0);
        }
        Ok(0)
    }
}

impl Request for NginxRequest {
    fn method(&self) -> &[u8] {
        self.get(self.method)
    }
    fn uri(&self) -> &[u8] {
        self.get(self.uri)
    }
    fn path(&self) -> &[u8] {
        self.get(self.path)
    }
    fn query(&self) -> &[u8] {
        self.get(self.query)
    }
    fn protocol(&self) -> &[u8] {
        self.get(self.protocol)
    }
    fn is_https(&self) -> bool {
        self.https
    }
    fn server_name(&self) -> &[u8] {
        self.get(self.server_name)
    }
    fn server_port(&self) -> u16 {
        self.server_port
    }
    fn remote_addr(&self) -> &[u8] {
        self.get(self.remote_addr)
    }
    fn remote_port(&self) -> u16 {
        self.remote_port
    }
    fn for_each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for &(n, v) in &self.headers {
            f(self.get(n), self.get(v));
        }
    }
    fn body_is_chunked(&self) -> bool {
        self.chunked
    }
    fn take_body(&mut self) -> Body {
        self.body.take().unwrap_or(Body::Empty)
    }
}

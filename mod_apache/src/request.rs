//! A `request_rec` as the core's `Request`: what the app needs, copied once,
//! and the body read through Apache's input filters as the app asks for it.

use std::io::{self, Read};

use oxwsgi_core::{Body, Request};

use crate::cstr_bytes;
use crate::ffi::{self, request_rec};

pub struct ApacheRequest {
    method: Vec<u8>,
    uri: Vec<u8>,
    path: Vec<u8>,
    query: Vec<u8>,
    protocol: Vec<u8>,
    server_name: Vec<u8>,
    server_port: u16,
    remote_addr: Vec<u8>,
    remote_port: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    chunked: bool,
    body: Option<Body>,
}

impl ApacheRequest {
    /// # Safety
    /// `r` is the live request of the calling thread's handler.
    pub unsafe fn new(r: *mut request_rec) -> Result<ApacheRequest, i32> {
        // SAFETY: by the caller's contract; every string is copied.
        unsafe {
            let rc = ffi::ap_setup_client_block(r, ffi::REQUEST_CHUNKED_DECHUNK as i32);
            if rc != ffi::OK as i32 {
                return Err(rc);
            }
            let mut headers = Vec::new();
            let arr = ffi::apr_table_elts((*r).headers_in);
            let elts = (*arr).elts as *const ffi::apr_table_entry_t;
            for i in 0..(*arr).nelts as usize {
                let e = &*elts.add(i);
                if !e.key.is_null() {
                    headers.push((cstr_bytes(e.key).to_vec(), cstr_bytes(e.val).to_vec()));
                }
            }
            let body = if ffi::ap_should_client_block(r) != 0 {
                Body::Stream(Box::new(ApacheBody { r }))
            } else {
                Body::Empty
            };
            let remote_port = if (*r).useragent_addr.is_null() {
                0
            } else {
                (*(*r).useragent_addr).port
            };
            Ok(ApacheRequest {
                method: cstr_bytes((*r).method).to_vec(),
                uri: cstr_bytes((*r).unparsed_uri).to_vec(),
                path: cstr_bytes((*r).uri).to_vec(),
                query: cstr_bytes((*r).args).to_vec(),
                protocol: cstr_bytes((*r).protocol).to_vec(),
                server_name: cstr_bytes(ffi::ap_get_server_name(r)).to_vec(),
                server_port: ffi::ap_get_server_port(r),
                remote_addr: cstr_bytes((*r).useragent_ip).to_vec(),
                remote_port,
                headers,
                chunked: (*r).read_chunked != 0,
                body: Some(body),
            })
        }
    }
}

/// Reads the request body with ap_get_client_block.
struct ApacheBody {
    r: *mut request_rec,
}

// SAFETY: the body is read only by the core, on the handler's thread, while
// the handler runs (the request outlives it).
unsafe impl Send for ApacheBody {}

impl Read for ApacheBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: r is live during the handler (see Send above).
        let n =
            unsafe { ffi::ap_get_client_block(self.r, buf.as_mut_ptr().cast(), buf.len() as _) };
        if n < 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "reading the request body failed",
            ));
        }
        Ok(n as usize)
    }
}

impl Request for ApacheRequest {
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
        false
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
    fn body_is_chunked(&self) -> bool {
        self.chunked
    }
    fn take_body(&mut self) -> Body {
        self.body.take().unwrap_or(Body::Empty)
    }
}

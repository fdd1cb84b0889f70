//! A `request_rec` as the core's `Request`: what the app needs, copied once,
//! and the body read through Apache's input filters as the app asks for it.

use std::io::{self, Read};
use std::sync::Arc;

use oxwsgi_core::{Body, OwnedRequest};

use crate::cstr::cstr_bytes;
use crate::ffi::{self, request_rec};
use crate::writer::WriteBehind;

/// The request as the core sees it: its parts copied out of the
/// request_rec, its body read through Apache's input filters. An `Err` is
/// the status Apache should answer with (411 for an unwanted chunked body).
/// `route`: how it reached its app (the alias's or handler script's
/// `pass-authorization=`, the handler script's target file).
///
/// # Safety
/// `r` is the live request of the calling thread's handler.
pub unsafe fn from_request_rec(
    r: *mut request_rec,
    writer: &Arc<WriteBehind>,
    process_group: Option<&str>,
    route: &crate::route::Route<'_>,
    app: &oxwsgi_core::App,
) -> Result<OwnedRequest, i32> {
    // SAFETY: r is the live request of this thread's handler
    // (from_request_rec's contract); every string is copied.
    unsafe {
        let rc = ffi::ap_setup_client_block(r, ffi::REQUEST_CHUNKED_DECHUNK as i32);
        if rc != ffi::OK as i32 {
            return Err(rc);
        }
        if (*r).read_chunked != 0 && !crate::conf::chunked_request(r) {
            // mod_wsgi's behaviour unless WSGIChunkedRequest On.
            return Err(ffi::HTTP_LENGTH_REQUIRED as i32);
        }
        let extra = extra_vars(r, process_group, route, app);
        let https = extra
            .iter()
            .any(|(k, v)| k.as_slice() == b"HTTPS" && v.eq_ignore_ascii_case(b"on"));
        let body = if ffi::ap_should_client_block(r) != 0 {
            Body::Stream(Box::new(ApacheBody {
                r,
                writer: writer.clone(),
                socket: client_socket(r),
            }))
        } else {
            Body::Empty
        };
        let remote_port = if (*r).useragent_addr.is_null() {
            0
        } else {
            (*(*r).useragent_addr).port
        };
        // WSGIMapHEADToGET.
        let method = if crate::conf::head_as_get(r) {
            b"GET".to_vec()
        } else {
            cstr_bytes((*r).method).to_vec()
        };
        let mut req = OwnedRequest {
            method,
            uri: cstr_bytes((*r).unparsed_uri).to_vec(),
            path: cstr_bytes((*r).uri).to_vec(),
            query: cstr_bytes((*r).args).to_vec(),
            protocol: cstr_bytes((*r).protocol).to_vec(),
            server_name: cstr_bytes(ffi::ap_get_server_name(r)).to_vec(),
            server_port: ffi::ap_get_server_port(r),
            remote_addr: cstr_bytes((*r).useragent_ip).to_vec(),
            remote_port,
            headers: headers(r, route),
            extra_vars: extra,
            https,
            chunked: (*r).read_chunked != 0,
            body: Some(body),
        };
        // What a trusted front proxy says of the client (the daemon gets
        // the request as rewritten).
        if let Some(trusted) = crate::conf::trusted_proxies_of(r) {
            trusted.apply(&mut req);
        }
        Ok(req)
    }
}

/// The request's headers, without its credentials unless
/// WSGIPassAuthorization (or the alias's `pass-authorization=`) says so.
///
/// # Safety
/// `r` is the live request of the calling thread's handler.
unsafe fn headers(r: *mut request_rec, route: &crate::route::Route<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    // SAFETY: r is live (the contract); its headers table outlives this.
    unsafe {
        let pass_authorization = route
            .inline
            .and_then(|i| i.pass_authorization)
            .unwrap_or_else(|| crate::conf::pass_authorization(r));
        table((*r).headers_in)
            // Credentials reach the app only when WSGIPassAuthorization On
            // (a proxy's as the origin's, as Apache's CGIPassAuth).
            .filter(|(k, _)| {
                pass_authorization
                    || !(k.eq_ignore_ascii_case(b"authorization")
                        || k.eq_ignore_ascii_case(b"proxy-authorization"))
            })
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }
}

/// What Apache knows besides the headers: SetEnv/mod_env variables,
/// mod_ssl's HTTPS, the authenticated user, and mod_wsgi's own variables.
///
/// # Safety
/// `r` is the live request of the calling thread's handler.
unsafe fn extra_vars(
    r: *mut request_rec,
    process_group: Option<&str>,
    route: &crate::route::Route<'_>,
    app: &oxwsgi_core::App,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    // SAFETY: r is live (the contract); every string is copied.
    unsafe {
        let mut extra: Vec<(Vec<u8>, Vec<u8>)> = table((*r).subprocess_env)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        // As mod_wsgi: apps tell daemon mode from embedded mode, and their
        // interpreter, by these.
        extra.push((
            b"mod_wsgi.process_group".to_vec(),
            process_group.unwrap_or("").as_bytes().to_vec(),
        ));
        extra.push((
            b"mod_wsgi.application_group".to_vec(),
            app.options().application_group.as_bytes().to_vec(),
        ));
        if route.handler.is_some() {
            // A handler script serves the file asked for.
            extra.push((
                b"SCRIPT_FILENAME".to_vec(),
                cstr_bytes((*r).filename).to_vec(),
            ));
        }
        if !(*r).user.is_null() {
            extra.push((b"REMOTE_USER".to_vec(), cstr_bytes((*r).user).to_vec()));
        }
        if !(*r).ap_auth_type.is_null() {
            extra.push((
                b"AUTH_TYPE".to_vec(),
                cstr_bytes((*r).ap_auth_type).to_vec(),
            ));
        }
        extra
    }
}

/// The entries of an APR table.
///
/// # Safety
/// `t` is a live table whose strings outlive the iteration.
pub(crate) unsafe fn table<'a>(
    t: *const ffi::apr_table_t,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    // SAFETY: t is null or a live APR table (table's contract), whose
    // array header describes nelts entries.
    let (elts, n) = unsafe {
        if t.is_null() {
            (std::ptr::null(), 0)
        } else {
            let arr = ffi::apr_table_elts(t);
            (
                (*arr).elts as *const ffi::apr_table_entry_t,
                (*arr).nelts as usize,
            )
        }
    };
    (0..n).filter_map(move |i| {
        // SAFETY: i < nelts of the live table.
        let e = unsafe { &*elts.add(i) };
        // SAFETY: APR table keys and values are C strings.
        (!e.key.is_null()).then(|| unsafe { (cstr_bytes(e.key), cstr_bytes(e.val)) })
    })
}

/// Reads the request body with ap_get_client_block.
struct ApacheBody {
    r: *mut request_rec,
    /// A streamed response's writer may hold the request: wait for it.
    writer: Arc<WriteBehind>,
    /// The client's socket, to tell whether more body is waiting (`None`
    /// for a stream of an HTTP/2 connection: its body does not come from
    /// a socket of its own).
    socket: Option<std::os::fd::RawFd>,
}

/// `r`'s client socket, unless the request is a stream of a multiplexed
/// (HTTP/2) connection, whose socket is shared and whose body does not
/// come through it.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn own_socket(r: *mut request_rec) -> Option<*mut ffi::apr_socket_t> {
    // SAFETY: r and its connection are live (the contract).
    unsafe {
        let c = (*r).connection;
        if !(*c).master.is_null() {
            return None;
        }
        let sock = ffi::ap_get_conn_socket(c);
        (!sock.is_null()).then_some(sock)
    }
}

/// The descriptor of `own_socket`.
///
/// # Safety
/// `r` is a live request.
unsafe fn client_socket(r: *mut request_rec) -> Option<std::os::fd::RawFd> {
    // SAFETY: r is live (the contract); apr_os_sock_get writes one int.
    unsafe {
        let sock = own_socket(r)?;
        let mut fd: ffi::apr_os_sock_t = -1;
        (ffi::apr_os_sock_get(&mut fd, sock) == 0 && fd >= 0).then_some(fd)
    }
}

// SAFETY: the body is read only by the core, on the handler's thread, while
// the handler runs (the request outlives it).
unsafe impl Send for ApacheBody {}

impl ApacheBody {
    /// Reads into `len` bytes at `buf` through Apache's input filters.
    ///
    /// # Safety
    /// `buf` is valid for writes of `len` bytes.
    unsafe fn read_raw(&mut self, buf: *mut u8, len: usize) -> io::Result<usize> {
        self.writer.sync()?;
        // SAFETY: r is live during the handler (see Send above); Apache
        // writes at most `len` bytes at `buf`, by the caller's contract.
        let n = unsafe { ffi::ap_get_client_block(self.r, buf.cast(), len as _) };
        if n < 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "reading the request body failed",
            ));
        }
        Ok(n as usize)
    }
}

impl Read for ApacheBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is writable for its length.
        unsafe { self.read_raw(buf.as_mut_ptr(), buf.len()) }
    }
}

// Apache copies into the buffer itself: no need to zero it first.
impl oxwsgi_core::BodyStream for ApacheBody {
    fn read_uninit(&mut self, buf: &mut [std::mem::MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        // SAFETY: buf is writable for its length; Apache only writes to it.
        Some(unsafe { self.read_raw(buf.as_mut_ptr().cast(), buf.len()) })
    }

    /// Bytes in the client socket's receive queue (over TLS, at worst the
    /// rest of a record the client is sending).
    fn pending(&self) -> bool {
        let Some(fd) = self.socket else {
            return false;
        };
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; fd is the live connection's.
        let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        r == 0 && n > 0
    }
}

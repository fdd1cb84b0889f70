//! The frames a server and a daemon process exchange over a unix socket,
//! and the encoding of request and response heads. The protocol itself is
//! described in `mod.rs`.

use std::io::{self, Read, Write};

use crate::request::OwnedRequest;
use crate::response::ResponseHead;

/// A frame is `kind: u8`, `len: u32` (little endian), then `len` bytes.
pub const HEADER: usize = 5;

/// The largest frame either side accepts: more is a broken or foreign peer.
pub const MAX_FRAME: usize = 16 << 20;

/// The most request body a daemon asks for at once.
pub const MAX_READ: usize = 256 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// server → daemon: a request head (`encode_head`).
    Head = 1,
    /// daemon → server: send up to `u32` bytes of the request body.
    Read = 2,
    /// server → daemon: request body bytes; empty at the body's end.
    Body = 3,
    /// server → daemon: the request body could not be read (the message).
    BodyError = 4,
    /// daemon → server: the response's status and headers.
    ResponseHead = 5,
    /// daemon → server: response body bytes.
    Data = 6,
    /// daemon → server: send what came so far to the client.
    Flush = 7,
    /// daemon → server: the response is complete.
    End = 8,
    /// daemon → server: cut the response (error after the headers).
    Abort = 9,
    /// daemon → server: answer with the server's error page (`u16` status).
    Error = 10,
    /// daemon → server: the request was not run (nor its body read), and
    /// this daemon is going: send it again on a new connection.
    Retry = 11,
    /// server → daemon, first on a new connection: the group's token
    /// (`auth`).
    Hello = 12,
    /// daemon → server, first on a new connection: a daemon took it. The
    /// server sends the request's head only then, so a request that no
    /// daemon took in time (`connect-timeout`) was never run.
    Accepted = 13,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Head,
            2 => Kind::Read,
            3 => Kind::Body,
            4 => Kind::BodyError,
            5 => Kind::ResponseHead,
            6 => Kind::Data,
            7 => Kind::Flush,
            8 => Kind::End,
            9 => Kind::Abort,
            10 => Kind::Error,
            11 => Kind::Retry,
            12 => Kind::Hello,
            13 => Kind::Accepted,
            _ => return None,
        })
    }
}

/// Small payloads go out in one write with their header; large ones in two
/// (copying them would cost more than the second system call).
const COALESCE: usize = 16 << 10;

pub fn write(w: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| *n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut header = [0u8; HEADER];
    header[0] = kind as u8;
    header[1..].copy_from_slice(&len.to_le_bytes());
    if payload.len() <= COALESCE {
        let mut one = Vec::with_capacity(HEADER + payload.len());
        one.extend_from_slice(&header);
        one.extend_from_slice(payload);
        w.write_all(&one)
    } else {
        w.write_all(&header)?;
        w.write_all(payload)
    }
}

/// Sends one small frame on socket `fd` at once (the few bytes that open
/// or end a connection, which its buffer always takes: `sys::send_now`).
pub fn send_now(fd: std::os::fd::RawFd, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(HEADER + payload.len());
    write(&mut bytes, kind, payload)?;
    crate::daemon::sys::send_now(fd, &bytes)
}

fn protocol_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads a frame's header: its kind and payload length.
pub fn read_header(r: &mut impl Read) -> io::Result<(Kind, usize)> {
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header)?;
    parse_header(header)
}

/// A frame's kind and payload length from its header.
pub fn parse_header(header: [u8; HEADER]) -> io::Result<(Kind, usize)> {
    let kind = Kind::from_u8(header[0])
        .ok_or_else(|| protocol_error(format!("unknown frame kind {}", header[0])))?;
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME {
        return Err(protocol_error(format!("frame of {len} bytes")));
    }
    Ok((kind, len))
}

/// Reads a whole frame; its payload replaces `buf`'s contents.
pub fn read(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Kind> {
    let (kind, len) = read_header(r)?;
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(kind)
}

/// The tagged fields of a head: `tag: u8`, `len: u32`, bytes.
mod tag {
    pub const APP: u8 = 1;
    pub const METHOD: u8 = 2;
    pub const URI: u8 = 3;
    pub const PATH: u8 = 4;
    pub const QUERY: u8 = 5;
    pub const PROTOCOL: u8 = 6;
    pub const HTTPS: u8 = 7;
    pub const SERVER_NAME: u8 = 8;
    pub const SERVER_PORT: u8 = 9;
    pub const REMOTE_ADDR: u8 = 10;
    pub const REMOTE_PORT: u8 = 11;
    /// "none", "chunked", or the Content-Length in decimal.
    pub const BODY: u8 = 12;
    pub const HEADER_NAME: u8 = 20;
    pub const HEADER_VALUE: u8 = 21;
    pub const VAR_NAME: u8 = 22;
    pub const VAR_VALUE: u8 = 23;
    pub const STATUS: u8 = 30;
    pub const APP_TARGET: u8 = 13;
    pub const APP_CALLABLE: u8 = 14;
    pub const APP_MOUNT: u8 = 15;
    pub const SINCE: u8 = 16;
    /// The app's script changes do not restart the daemon.
    pub const APP_NO_RELOAD: u8 = 17;
    /// The application group it runs in (absent: the main interpreter).
    pub const APP_GROUP: u8 = 18;
    /// The request does not count as the daemon's activity
    /// (`WSGIIgnoreActivity`: its inactivity-timeout runs on).
    pub const QUIET: u8 = 19;
}

/// Marks a request head as not counting as the daemon's activity.
pub fn mark_quiet(head: &mut Vec<u8>) {
    field(head, tag::QUIET, b"");
}

pub(crate) fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

pub(crate) fn fields(mut p: &[u8]) -> impl Iterator<Item = io::Result<(u8, &[u8])>> {
    std::iter::from_fn(move || {
        if p.is_empty() {
            return None;
        }
        if p.len() < 5 {
            p = &[];
            return Some(Err(protocol_error("truncated field".into())));
        }
        let tag = p[0];
        let len = u32::from_le_bytes([p[1], p[2], p[3], p[4]]) as usize;
        if p.len() < 5 + len {
            p = &[];
            return Some(Err(protocol_error("truncated field".into())));
        }
        let value = &p[5..5 + len];
        p = &p[5 + len..];
        Some(Ok((tag, value)))
    })
}

/// How the request body arrives, as the head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// Which of a daemon's apps a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRef {
    /// App number `n` of those the group was started with.
    Index(u32),
    /// An app the server names (a script the group did not preload: the
    /// daemon loads it on first use): its target (script path or
    /// `module:callable`), callable and mount point, whether a change
    /// of its script restarts the daemon (`WSGIScriptReloading`), and
    /// the application group it runs in (`""`: the main interpreter).
    Named {
        target: String,
        callable: Option<String>,
        mount: String,
        reload: bool,
        group: String,
    },
}

impl AppRef {
    /// Whether this names the app mounted as `mount` from `target` with
    /// `callable` (a configuration's app, whatever its reload flag).
    pub fn names(&self, target: &str, callable: &str, mount: &str) -> bool {
        match self {
            AppRef::Index(_) => false,
            AppRef::Named {
                target: t,
                callable: c,
                mount: m,
                ..
            } => t == target && c.as_deref().unwrap_or("application") == callable && m == mount,
        }
    }
}

/// A request head for `app` of the daemon's group.
pub fn encode_head<R: crate::Request + ?Sized>(app: &AppRef, req: &R, body: BodyKind) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    match app {
        AppRef::Index(n) => field(&mut out, tag::APP, n.to_string().as_bytes()),
        AppRef::Named {
            target,
            callable,
            mount,
            reload,
            group,
        } => {
            field(&mut out, tag::APP_TARGET, target.as_bytes());
            if !group.is_empty() {
                field(&mut out, tag::APP_GROUP, group.as_bytes());
            }
            if let Some(c) = callable {
                field(&mut out, tag::APP_CALLABLE, c.as_bytes());
            }
            field(&mut out, tag::APP_MOUNT, mount.as_bytes());
            if !reload {
                field(&mut out, tag::APP_NO_RELOAD, b"");
            }
        }
    }
    field(&mut out, tag::METHOD, req.method());
    field(&mut out, tag::URI, req.uri());
    field(&mut out, tag::PATH, req.path());
    field(&mut out, tag::QUERY, req.query());
    field(&mut out, tag::PROTOCOL, req.protocol());
    field(
        &mut out,
        tag::HTTPS,
        if req.is_https() { b"1" } else { b"0" },
    );
    field(&mut out, tag::SERVER_NAME, req.server_name());
    field(
        &mut out,
        tag::SERVER_PORT,
        req.server_port().to_string().as_bytes(),
    );
    field(&mut out, tag::REMOTE_ADDR, req.remote_addr());
    field(
        &mut out,
        tag::REMOTE_PORT,
        req.remote_port().to_string().as_bytes(),
    );
    let body = match body {
        BodyKind::None => "none".to_string(),
        BodyKind::Chunked => "chunked".to_string(),
        BodyKind::Length(n) => n.to_string(),
    };
    field(&mut out, tag::BODY, body.as_bytes());
    req.for_each_header(&mut |n, v| {
        field(&mut out, tag::HEADER_NAME, n);
        field(&mut out, tag::HEADER_VALUE, v);
    });
    req.for_each_extra_var(&mut |n, v| {
        field(&mut out, tag::VAR_NAME, n);
        field(&mut out, tag::VAR_VALUE, v);
    });
    out
}

/// Now on the system's monotonic clock (the same in every process), in
/// microseconds: when a server handed a request over (`stamp`).
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a live pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Adds an environ variable of the server's to a head (after the
/// request's own).
pub fn add_var(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    field(head, tag::VAR_NAME, name);
    field(head, tag::VAR_VALUE, value);
}

/// Adds to a head when the server handed the request over, so the daemon
/// can tell how long it waited (for the queue timeout).
pub fn stamp(head: &mut Vec<u8>, at_us: u64) {
    field(head, tag::SINCE, &at_us.to_le_bytes());
}

/// A decoded request head.
pub struct Head {
    pub app: AppRef,
    pub request: OwnedRequest,
    pub body: BodyKind,
    /// When the server handed the request over (`monotonic_us`).
    pub since_us: Option<u64>,
    /// `mark_quiet`: not the daemon's activity.
    pub quiet: bool,
}

fn number<T: std::str::FromStr>(v: &[u8], what: &str) -> io::Result<T> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol_error(format!("bad {what} in a head")))
}

/// The app, the request (without its body) and how the body comes.
pub fn decode_head(payload: &[u8]) -> io::Result<Head> {
    let mut app = 0;
    let mut target: Option<String> = None;
    let mut callable = None;
    let mut mount = String::new();
    let mut reload = true;
    let mut group = String::new();
    let text = |v: &[u8]| {
        String::from_utf8(v.to_vec())
            .map_err(|_| protocol_error("an app field is not UTF-8".into()))
    };
    let mut body = BodyKind::None;
    let mut req = OwnedRequest {
        method: Vec::new(),
        uri: Vec::new(),
        path: Vec::new(),
        query: Vec::new(),
        protocol: Vec::new(),
        https: false,
        server_name: Vec::new(),
        server_port: 0,
        remote_addr: Vec::new(),
        remote_port: 0,
        headers: Vec::new(),
        extra_vars: Vec::new(),
        chunked: false,
        body: None,
    };
    let mut name: Option<&[u8]> = None;
    let mut since_us = None;
    let mut quiet = false;
    for f in fields(payload) {
        let (t, v) = f?;
        match t {
            tag::APP => app = number(v, "app")?,
            tag::APP_TARGET => target = Some(text(v)?),
            tag::APP_CALLABLE => callable = Some(text(v)?),
            tag::APP_MOUNT => mount = text(v)?,
            tag::APP_NO_RELOAD => reload = false,
            tag::APP_GROUP => group = text(v)?,
            tag::QUIET => quiet = true,
            tag::SINCE => {
                since_us = Some(u64::from_le_bytes(
                    v.try_into()
                        .map_err(|_| protocol_error("bad time in a head".into()))?,
                ))
            }
            tag::METHOD => req.method = v.to_vec(),
            tag::URI => req.uri = v.to_vec(),
            tag::PATH => req.path = v.to_vec(),
            tag::QUERY => req.query = v.to_vec(),
            tag::PROTOCOL => req.protocol = v.to_vec(),
            tag::HTTPS => req.https = v == b"1",
            tag::SERVER_NAME => req.server_name = v.to_vec(),
            tag::SERVER_PORT => req.server_port = number(v, "server port")?,
            tag::REMOTE_ADDR => req.remote_addr = v.to_vec(),
            tag::REMOTE_PORT => req.remote_port = number(v, "remote port")?,
            tag::BODY => {
                body = match v {
                    b"none" => BodyKind::None,
                    b"chunked" => BodyKind::Chunked,
                    n => BodyKind::Length(number(n, "body length")?),
                }
            }
            tag::HEADER_NAME | tag::VAR_NAME => name = Some(v),
            tag::HEADER_VALUE => {
                let n = name
                    .take()
                    .ok_or_else(|| protocol_error("header value without a name".into()))?;
                req.headers.push((n.to_vec(), v.to_vec()));
            }
            tag::VAR_VALUE => {
                let n = name
                    .take()
                    .ok_or_else(|| protocol_error("variable value without a name".into()))?;
                req.extra_vars.push((n.to_vec(), v.to_vec()));
            }
            other => return Err(protocol_error(format!("unknown head field {other}"))),
        }
    }
    req.chunked = body == BodyKind::Chunked;
    let app = match target {
        Some(target) => AppRef::Named {
            target,
            callable,
            mount,
            reload,
            group,
        },
        None => AppRef::Index(app),
    };
    Ok(Head {
        app,
        request: req,
        body,
        since_us,
        quiet,
    })
}

pub fn encode_response_head(head: &ResponseHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    field(&mut out, tag::STATUS, head.status_line.as_bytes());
    for (n, v) in &head.headers {
        field(&mut out, tag::HEADER_NAME, n.as_bytes());
        field(&mut out, tag::HEADER_VALUE, v.as_bytes());
    }
    out
}

pub fn decode_response_head(payload: &[u8]) -> io::Result<ResponseHead> {
    let text = |v: &[u8]| {
        String::from_utf8(v.to_vec())
            .map_err(|_| protocol_error("response head is not UTF-8".into()))
    };
    let mut status_line = None;
    let mut headers = Vec::new();
    let mut name = None;
    for f in fields(payload) {
        let (t, v) = f?;
        match t {
            tag::STATUS => status_line = Some(text(v)?),
            tag::HEADER_NAME => name = Some(text(v)?),
            tag::HEADER_VALUE => {
                let n = name
                    .take()
                    .ok_or_else(|| protocol_error("header value without a name".into()))?;
                headers.push((n, text(v)?));
            }
            other => return Err(protocol_error(format!("unknown response field {other}"))),
        }
    }
    let status_line =
        status_line.ok_or_else(|| protocol_error("response head without a status".into()))?;
    let status = crate::response::parse_status(&status_line).map_err(protocol_error)?;
    Ok(ResponseHead {
        status,
        status_line,
        headers,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Request;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let mut wire = Vec::new();
        write(&mut wire, Kind::Data, b"hello").unwrap();
        write(&mut wire, Kind::Data, &vec![7; 100_000]).unwrap();
        write(&mut wire, Kind::End, b"").unwrap();
        let mut r = &wire[..];
        let mut buf = Vec::new();
        assert_eq!(read(&mut r, &mut buf).unwrap(), Kind::Data);
        assert_eq!(buf, b"hello");
        assert_eq!(read(&mut r, &mut buf).unwrap(), Kind::Data);
        assert_eq!(buf.len(), 100_000);
        assert_eq!(read(&mut r, &mut buf).unwrap(), Kind::End);
        assert!(buf.is_empty());
        assert_eq!(
            read(&mut r, &mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let e = read(&mut &[99u8, 0, 0, 0, 0][..], &mut buf).unwrap_err();
        assert!(e.to_string().contains("unknown frame kind 99"));
        let e = read(&mut &[6u8, 255, 255, 255, 255][..], &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_request_head_round_trips() {
        let req = OwnedRequest {
            method: b"POST".to_vec(),
            uri: b"/a%20b?x=1".to_vec(),
            path: b"/a b".to_vec(),
            query: b"x=1".to_vec(),
            protocol: b"HTTP/1.1".to_vec(),
            https: true,
            server_name: b"example.org".to_vec(),
            server_port: 443,
            remote_addr: b"10.0.0.1".to_vec(),
            remote_port: 5555,
            headers: vec![
                (b"Host".to_vec(), b"example.org".to_vec()),
                (b"X-Odd".to_vec(), b"caf\xe9".to_vec()),
            ],
            extra_vars: vec![(b"REMOTE_USER".to_vec(), b"ann".to_vec())],
            chunked: false,
            body: None,
        };
        let head = encode_head(&AppRef::Index(3), &req, BodyKind::Length(12));
        let Head {
            app,
            request: back,
            body,
            since_us,
            ..
        } = decode_head(&head).unwrap();
        assert_eq!(since_us, None);
        assert_eq!((app, body), (AppRef::Index(3), BodyKind::Length(12)));
        let named = AppRef::Named {
            target: "/srv/site/wsgi.py".into(),
            callable: Some("app".into()),
            mount: "/site".into(),
            reload: true,
            group: "localhost|/site".into(),
        };
        let mut head = encode_head(&named, &req, BodyKind::None);
        stamp(&mut head, 12345);
        add_var(&mut head, b"mod_wsgi.process_group", b"site");
        let Head {
            app,
            since_us,
            request: with_var,
            ..
        } = decode_head(&head).unwrap();
        assert_eq!(
            with_var.extra_vars.last().unwrap(),
            &(b"mod_wsgi.process_group".to_vec(), b"site".to_vec())
        );
        assert_eq!(since_us, Some(12345));
        assert_eq!(app, named);
        let fixed = AppRef::Named {
            target: "/srv/site/wsgi.py".into(),
            callable: None,
            mount: String::new(),
            reload: false,
            group: String::new(),
        };
        let decoded = decode_head(&encode_head(&fixed, &req, BodyKind::None)).unwrap();
        assert_eq!(decoded.app, fixed);
        assert!(!decoded.quiet);
        let mut quiet = encode_head(&fixed, &req, BodyKind::None);
        mark_quiet(&mut quiet);
        assert!(decode_head(&quiet).unwrap().quiet);
        assert_eq!(back.method(), b"POST");
        assert_eq!(back.path(), b"/a b");
        assert!(back.is_https());
        assert_eq!((back.server_port(), back.remote_port()), (443, 5555));
        assert_eq!(back.headers, req.headers);
        assert_eq!(back.extra_vars, req.extra_vars);
        assert!(decode_head(&head[..head.len() - 1]).is_err(), "truncated");
    }

    #[test]
    fn a_response_head_round_trips() {
        let head = ResponseHead {
            status: 201,
            status_line: "201 Created".into(),
            headers: vec![
                ("Location".into(), "/x".into()),
                ("Set-Cookie".into(), "a=1".into()),
            ],
        };
        assert_eq!(
            decode_response_head(&encode_response_head(&head)).unwrap(),
            head
        );
    }
}

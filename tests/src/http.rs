//! A small HTTP/1.x client that reports what a user agent would notice:
//! status, headers, body, and whether the body arrived complete.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended as its framing says (Content-Length reached, final
    /// chunk seen); false when the connection was cut short.
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to build and send.
pub struct Request {
    pub method: String,
    pub path: String,
    pub version: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            version: "HTTP/1.1",
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
        }
    }

    pub fn post(path: &str, content_type: &str, body: &[u8]) -> Request {
        let mut r = Request::get(path);
        r.method = "POST".into();
        r.body = body.to_vec();
        r.header("Content-Type", content_type)
    }

    pub fn method(mut self, m: &str) -> Request {
        self.method = m.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn chunked(mut self) -> Request {
        self.chunked = true;
        self
    }

    pub fn http10(mut self) -> Request {
        self.version = "HTTP/1.0";
        self
    }

    pub fn to_bytes(&self, port: u16) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.path, self.version).into_bytes();
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            out.extend(format!("Host: 127.0.0.1:{port}\r\n").bytes());
        }
        out.extend(b"Connection: close\r\n");
        for (n, v) in &self.headers {
            out.extend(format!("{n}: {v}\r\n").bytes());
        }
        if self.chunked {
            out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in self.body.chunks(1000) {
                out.extend(format!("{:x}\r\n", piece.len()).bytes());
                out.extend(piece);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
        } else {
            if !self.body.is_empty() || self.method == "POST" || self.method == "PUT" {
                out.extend(format!("Content-Length: {}\r\n", self.body.len()).bytes());
            }
            out.extend(b"\r\n");
            out.extend(&self.body);
        }
        out
    }

    pub fn send(&self, port: u16) -> Response {
        send(port, &self.to_bytes(port), self.method == "HEAD").expect("HTTP exchange")
    }
}

pub fn get(port: u16, path: &str) -> Response {
    Request::get(path).send(port)
}

/// Opens a connection with a generous read timeout.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends raw request bytes and reads the response.
pub fn send(port: u16, raw: &[u8], head: bool) -> io::Result<Response> {
    let mut s = connect(port);
    s.write_all(raw)?;
    read_response(&mut BufReader::new(s), head)
}

/// Reads the status line and headers.
pub fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "headers cut short",
            ));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

pub fn read_response(r: &mut impl BufRead, head: bool) -> io::Result<Response> {
    let (status, headers) = read_head(r)?;
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
        complete: true,
    };
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let chunked = resp
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        resp.complete = read_chunked(r, &mut resp.body);
    } else if let Some(len) = resp
        .header("Content-Length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = Vec::with_capacity(len);
        let _ = r.take(len as u64).read_to_end(&mut body);
        resp.complete = body.len() == len;
        resp.body = body;
    } else {
        let _ = r.read_to_end(&mut resp.body);
    }
    Ok(resp)
}

/// Reads a chunked body; false when it ends without the final chunk.
fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> bool {
    loop {
        let mut size = String::new();
        match r.read_line(&mut size) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else {
            return false;
        };
        if n == 0 {
            let mut end = String::new();
            let _ = r.read_line(&mut end);
            return true;
        }
        let mut chunk = Vec::with_capacity(n);
        if r.take(n as u64).read_to_end(&mut chunk).is_err() || chunk.len() < n {
            body.extend(chunk);
            return false;
        }
        body.extend(chunk);
        let mut crlf = [0u8; 2];
        if r.read_exact(&mut crlf).is_err() {
            return false;
        }
    }
}

//! A small HTTP/1.x client that reports what a user agent would notice:
//! status, headers, body, and whether the body arrived complete.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The reason phrase, each byte one character (latin-1), as PEP 3333
    /// and HTTP see it.
    pub reason: String,
    /// Names and values, decoded as latin-1 like the reason.
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
    /// Leave the connection open after the response (`Connection: close`
    /// is sent otherwise).
    pub keep_alive: bool,
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
            keep_alive: false,
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
        if !self.keep_alive {
            out.extend(b"Connection: close\r\n");
        }
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

/// One line of the head, its bytes read as latin-1 characters.
fn read_latin1_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut raw = Vec::new();
    if r.read_until(b'\n', &mut raw)? == 0 {
        return Ok(None);
    }
    Ok(Some(raw.iter().map(|&b| b as char).collect()))
}

/// The status line's code and reason phrase.
fn parse_status_line(line: &str) -> io::Result<(u16, String)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse().ok());
    match code {
        Some(code) if version.starts_with("HTTP/") => {
            Ok((code, parts.next().unwrap_or("").to_string()))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {line:?}"),
        )),
    }
}

/// Header names and values, in order.
pub type Headers = Vec<(String, String)>;

/// Reads the status line and headers.
pub fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Headers)> {
    let (status, _, headers) = read_full_head(r)?;
    Ok((status, headers))
}

fn read_full_head(r: &mut impl BufRead) -> io::Result<(u16, String, Headers)> {
    let line = read_latin1_line(r)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no status line"))?;
    let (status, reason) = parse_status_line(&line)?;
    let mut headers = Vec::new();
    loop {
        let Some(h) = read_latin1_line(r)? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "headers cut short",
            ));
        };
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, reason, headers))
}

/// A connection kept open across requests, as browsers and proxies use
/// them: each response must end exactly where its framing says, or the
/// next one is misread.
pub struct Conn {
    port: u16,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        Conn {
            port,
            reader: BufReader::new(connect(port)),
        }
    }

    /// Sends `req` (kept alive) and reads its response.
    pub fn send(&mut self, mut req: Request) -> io::Result<Response> {
        req.keep_alive = true;
        self.reader.get_mut().write_all(&req.to_bytes(self.port))?;
        read_response(&mut self.reader, req.method == "HEAD")
    }
}

pub fn read_response(r: &mut impl BufRead, head: bool) -> io::Result<Response> {
    let (status, reason, headers) = read_full_head(r)?;
    let mut resp = Response {
        status,
        reason,
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

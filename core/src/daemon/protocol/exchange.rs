//! The server's side of one request's exchange with a daemon, without I/O:
//! the bytes the daemon sends go in, what they mean for the response comes
//! out as `Event`s. A server whose request threads block (Apache, `proxy`)
//! and one that drives the socket from its event loop (nginx) read the
//! daemon with the same rules: the response head limit, `Retry` only before
//! anything was answered, when a lost connection may be tried again.

use std::io;

use crate::response::ResponseHead;

use crate::daemon::protocol::frame::{self, Kind};

/// What the daemon's bytes mean for the response.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Send one `Body` frame of at most this many bytes (empty: the body
    /// ended), or `BodyError`.
    Read(usize),
    Start(ResponseHead),
    Data(Vec<u8>),
    Flush,
    /// The response is complete.
    End,
    /// Cut the response (an error after its head).
    Abort,
    /// Answer with the server's own error page: the daemon's, or 502 for a
    /// response head over the limit.
    Error(u16),
    /// The daemon did not run the request: send it again on a new
    /// connection.
    Retry,
    /// A daemon took the new connection: send the request's head.
    Accepted,
}

/// A connection lost before the exchange ended: what the request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Lost {
    /// Nothing of the request was sent (no daemon took the connection):
    /// wait for the group up to the connect timeout, then answer 503.
    Unsent,
    /// Send the request again on a new connection: nothing can have run
    /// twice (the daemon answered nothing, and the connection was a pooled
    /// one it closed while idle, or the method is safe to repeat).
    Resend,
    /// Answer 502.
    BadGateway,
    /// The response's head went out: cut it.
    Cut,
}

/// The read buffer's first size: a small response (head, body, end) is one
/// read.
const FIRST_BUFFER: usize = 16 << 10;

pub struct Exchange {
    /// Initialised memory; bytes `pos..end` are read and not parsed yet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    head_limit: usize,
    started: bool,
    /// The daemon sent something: its app runs.
    answered: bool,
    /// End, Abort, Error or Retry came: nothing more may follow.
    over: bool,
    /// The connection can carry the next request once this one is over.
    reusable: bool,
    /// The request is a HEAD: its response has no body whatever it says.
    head_request: bool,
    /// A new connection: the daemon's `Accepted` comes first, and the
    /// request is sent only after it.
    awaiting_accept: bool,
    /// The response's Content-Length, and the body bytes that came.
    promised: Option<u64>,
    sent: u64,
    /// The response has no body (HEAD, 204, 304).
    bodiless: bool,
}

impl Exchange {
    /// `head_limit`: the largest response head taken (a group's
    /// `header-buffer-size`).
    pub fn new(head_limit: usize) -> Exchange {
        Exchange {
            buf: Vec::new(),
            pos: 0,
            end: 0,
            head_limit,
            started: false,
            answered: false,
            over: false,
            reusable: true,
            head_request: false,
            awaiting_accept: false,
            promised: None,
            sent: 0,
            bodiless: false,
        }
    }

    /// The request is a HEAD (its response's Content-Length promises no
    /// body).
    pub fn for_head_request(mut self, yes: bool) -> Exchange {
        self.head_request = yes;
        self
    }

    /// The exchange is on a new connection: it begins with the daemon's
    /// `Accepted`, before the request is sent.
    pub fn on_new_connection(mut self, yes: bool) -> Exchange {
        self.awaiting_accept = yes;
        self
    }

    /// The request is not sent yet: no daemon took the connection.
    pub fn awaiting_accept(&self) -> bool {
        self.awaiting_accept
    }

    /// A new exchange reading into `buf` (a buffer an earlier exchange gave
    /// back: a busy server then neither allocates nor clears one per
    /// request).
    pub fn with_buffer(head_limit: usize, buf: Vec<u8>) -> Exchange {
        Exchange {
            buf,
            ..Exchange::new(head_limit)
        }
    }

    /// Gives the read buffer back (what it holds is discarded).
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pos = 0;
        self.end = 0;
        std::mem::take(&mut self.buf)
    }

    /// The header of the frame at `pos`, once its five bytes are in.
    fn next_header(&self) -> io::Result<Option<(Kind, usize)>> {
        let Some(h) = self.buf.get(self.pos..self.pos + frame::HEADER) else {
            return Ok(None);
        };
        if self.end - self.pos < frame::HEADER {
            return Ok(None);
        }
        frame::parse_header([h[0], h[1], h[2], h[3], h[4]]).map(Some)
    }

    /// Room to read the daemon's next bytes into (enough for the whole of
    /// the frame begun, so a frame is never read in more pieces than the
    /// socket gives); `filled` says how many came.
    pub fn buffer(&mut self) -> &mut [u8] {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
        let frame = match self.next_header() {
            Ok(Some((_, len))) => frame::HEADER + len,
            _ => frame::HEADER,
        };
        if self.buf.len() - self.pos < frame || self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let size = frame.max(FIRST_BUFFER).max(self.end + 1);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into what `buffer` gave.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
        // Whatever the bytes are (a frame that cannot be read too), the
        // daemon has answered: the request may have run (once it was sent).
        self.answered |= n > 0 && !self.awaiting_accept;
    }

    /// Whether read bytes wait to be parsed (a `Flush` followed by more of
    /// the response need not be done on its own).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    /// The response's head went to the client.
    pub fn started(&self) -> bool {
        self.started
    }

    /// The exchange is over (End, Abort, Error or Retry).
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The exchange ended where the connection can carry the next request.
    pub fn reusable(&self) -> bool {
        self.over && self.reusable && self.pos == self.end
    }

    /// The next whole frame's meaning, or `None` until more bytes are read.
    /// An error is a broken or foreign peer: the connection must go (it is
    /// never reusable after one, whatever came before).
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        let event = self.parse_next();
        if event.is_err() {
            self.reusable = false;
        }
        event
    }

    fn parse_next(&mut self) -> io::Result<Option<Event>> {
        let Some((kind, len)) = self.next_header()? else {
            return Ok(None);
        };
        if self.end - self.pos < frame::HEADER + len {
            return Ok(None);
        }
        if self.over {
            return Err(unexpected(kind, "after the end of the response"));
        }
        let at = self.pos + frame::HEADER;
        self.pos = at + len;
        if self.awaiting_accept {
            if kind != Kind::Accepted || len != 0 {
                return Err(unexpected(kind, "before it accepted the connection"));
            }
            self.awaiting_accept = false;
            return Ok(Some(Event::Accepted));
        }
        let payload = &self.buf[at..at + len];
        self.answered = true;
        let event = match kind {
            Kind::Read => {
                let want = payload
                    .get(..4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
                Event::Read(want.min(frame::MAX_READ))
            }
            Kind::ResponseHead if self.started => return Err(unexpected(kind, "twice")),
            Kind::ResponseHead if len > self.head_limit => {
                log::error!(
                    target: "oxwsgi",
                    "the app's response head is {len} bytes, more than the {} of header-buffer-size; answering 502",
                    self.head_limit
                );
                // The rest of that response is still coming.
                self.over = true;
                self.reusable = false;
                Event::Error(502)
            }
            Kind::ResponseHead => {
                let head = frame::decode_response_head(payload)?;
                self.promised = checked_head(&head).map_err(untrusted)?;
                self.bodiless = self.head_request || head.no_content();
                self.started = true;
                Event::Start(head)
            }
            Kind::Data if !self.started => {
                return Err(unexpected(kind, "before the response head"));
            }
            Kind::Data => {
                self.sent += len as u64;
                if let Some(p) = self.promised.filter(|p| self.sent > *p && !self.bodiless) {
                    return Err(untrusted(format!(
                        "the daemon sent more than the response's Content-Length of {p} bytes"
                    )));
                }
                Event::Data(payload.to_vec())
            }
            Kind::Flush => Event::Flush,
            Kind::End | Kind::Abort | Kind::Error | Kind::Retry => {
                self.over = true;
                match kind {
                    Kind::End => match self.promised {
                        Some(p) if self.sent < p && !self.bodiless => {
                            return Err(untrusted(format!(
                                "the response ended {} bytes short of its Content-Length of {p}",
                                p - self.sent
                            )));
                        }
                        _ => Event::End,
                    },
                    Kind::Error if !self.started => {
                        let status = payload
                            .get(..2)
                            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
                        if !(400..=599).contains(&status) {
                            return Err(untrusted(format!("an error page of status {status}")));
                        }
                        Event::Error(status)
                    }
                    Kind::Retry if !self.started => {
                        // The daemon closes it.
                        self.reusable = false;
                        Event::Retry
                    }
                    Kind::Retry => return Err(unexpected(kind, "after the response head")),
                    _ => Event::Abort,
                }
            }
            Kind::Accepted => return Err(unexpected(kind, "in the middle of the connection")),
            Kind::Head | Kind::Body | Kind::BodyError | Kind::Hello => {
                return Err(unexpected(kind, "(a server's frame)"));
            }
        };
        Ok(Some(event))
    }

    /// The connection failed before the exchange was over: what the
    /// request gets. `pooled`: it was an idle connection reused;
    /// `idempotent`: the method may be repeated.
    pub fn lost(&self, pooled: bool, idempotent: bool) -> Lost {
        if self.awaiting_accept {
            Lost::Unsent
        } else if self.started {
            Lost::Cut
        } else if !self.answered && (pooled || idempotent) {
            Lost::Resend
        } else {
            Lost::BadGateway
        }
    }
}

/// What a response head from a daemon must be, as the core requires of an
/// app's (a daemon runs another user's code: its frames are untrusted
/// input): every header valid, no hop-by-hop header, at most one
/// Content-Length. The Content-Length, if any.
fn checked_head(head: &ResponseHead) -> Result<Option<u64>, String> {
    let mut length = None;
    for (i, (name, value)) in head.headers.iter().enumerate() {
        crate::response::check_header(i, name, value)?;
        if name.eq_ignore_ascii_case("content-length") {
            let n = crate::response::parse_content_length(value)?;
            if length.is_some_and(|m| m != n) {
                return Err("two different Content-Length values".into());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn untrusted(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a malformed response from the daemon: {what}"),
    )
}

fn unexpected(kind: Kind, when: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {kind:?} from the daemon {when}"),
    )
}

/// Whether a request with this method may be sent twice.
pub fn idempotent(method: &[u8]) -> bool {
    matches!(method, b"GET" | b"HEAD" | b"OPTIONS")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn wire(frames: &[(Kind, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, p) in frames {
            frame::write(&mut out, *k, p).unwrap();
        }
        out
    }

    /// Feeds `bytes` in pieces of `step` and collects the events.
    fn events(x: &mut Exchange, bytes: &[u8], step: usize) -> Vec<Event> {
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            let mut piece = piece;
            while !piece.is_empty() {
                let room = x.buffer();
                let n = room.len().min(piece.len());
                room[..n].copy_from_slice(&piece[..n]);
                x.filled(n);
                piece = &piece[n..];
                while let Some(e) = x.next_event().unwrap() {
                    out.push(e);
                }
            }
        }
        out
    }

    fn head() -> Vec<u8> {
        frame::encode_response_head(&ResponseHead {
            status: 200,
            status_line: "200 OK".into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
        })
    }

    #[test]
    fn a_buffer_given_back_serves_the_next_exchange() {
        let bytes = wire(&[
            (Kind::ResponseHead, &head()),
            (Kind::Data, b"hello"),
            (Kind::End, b""),
        ]);
        let mut x = Exchange::new(8192);
        assert_eq!(events(&mut x, &bytes, 64).len(), 3);
        let buf = x.take_buffer();
        let cap = buf.capacity();
        assert!(cap > 0);
        // What the first exchange left in it is not read again.
        let mut y = Exchange::with_buffer(8192, buf);
        assert!(!y.is_over());
        let got = events(&mut y, &bytes, 64);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], Event::Data(b"hello".to_vec()));
        assert_eq!(got[2], Event::End);
        assert_eq!(y.take_buffer().capacity(), cap);
    }

    #[test]
    fn a_response_comes_out_whatever_pieces_the_socket_gives() {
        let big = vec![7u8; 300_000];
        let bytes = wire(&[
            (Kind::Read, &65536u32.to_le_bytes()),
            (Kind::ResponseHead, &head()),
            (Kind::Data, b"hello"),
            (Kind::Flush, b""),
            (Kind::Data, &big),
            (Kind::End, b""),
        ]);
        for step in [1, 5, 7, 4096, bytes.len()] {
            let mut x = Exchange::new(8192);
            let got = events(&mut x, &bytes, step);
            assert_eq!(got.len(), 6, "pieces of {step}");
            assert_eq!(got[0], Event::Read(65536));
            assert!(matches!(&got[1], Event::Start(h) if h.status == 200));
            assert_eq!(got[2], Event::Data(b"hello".to_vec()));
            assert_eq!(got[3], Event::Flush);
            assert_eq!(got[4], Event::Data(big.clone()));
            assert_eq!(got[5], Event::End);
            assert!(x.is_over() && x.reusable() && !x.has_buffered());
        }
    }

    /// The first error of `frames`, fed to an exchange.
    fn refused(frames: &[(Kind, &[u8])], head_request: bool) -> String {
        let mut x = Exchange::new(8192).for_head_request(head_request);
        let bytes = wire(frames);
        let room = x.buffer();
        room[..bytes.len()].copy_from_slice(&bytes);
        x.filled(bytes.len());
        loop {
            match x.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => return String::new(),
                Err(e) => return e.to_string(),
            }
        }
    }

    fn head_with(status: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::field(&mut out, 30, status.as_bytes());
        for (n, v) in headers {
            frame::field(&mut out, 20, n.as_bytes());
            frame::field(&mut out, 21, v.as_bytes());
        }
        out
    }

    /// A daemon runs another user's code: what it sends is checked as the
    /// core checks an app's answer, and anything malformed is an error
    /// (the server answers 502, or cuts a response begun).
    #[test]
    fn a_daemon_answering_garbage_is_refused() {
        let bad_heads: [(&str, Vec<u8>); 7] = [
            ("status", head_with("0 OK", &[])),
            ("status", head_with("HTTP/1.1 200 OK", &[])),
            (
                "split",
                head_with("200 OK", &[("X-A", "1\r\nSet-Cookie: a=1")]),
            ),
            (
                "hop-by-hop",
                head_with("200 OK", &[("Transfer-Encoding", "chunked")]),
            ),
            ("name", head_with("200 OK", &[("Bad Name", "1")])),
            (
                "not a number",
                head_with("200 OK", &[("Content-Length", "-1")]),
            ),
            (
                "two different",
                head_with(
                    "200 OK",
                    &[("Content-Length", "1"), ("content-length", "2")],
                ),
            ),
        ];
        for (what, head) in bad_heads {
            let e = refused(&[(Kind::ResponseHead, &head)], false);
            assert!(
                e.contains("malformed") || e.contains("status"),
                "{what}: {e:?}"
            );
        }
        let five = head_with("200 OK", &[("Content-Length", "5")]);
        let e = refused(
            &[
                (Kind::ResponseHead, &five),
                (Kind::Data, b"123456"),
                (Kind::End, b""),
            ],
            false,
        );
        assert!(e.contains("more than the response's Content-Length"), "{e}");
        let e = refused(
            &[
                (Kind::ResponseHead, &five),
                (Kind::Data, b"123"),
                (Kind::End, b""),
            ],
            false,
        );
        assert!(e.contains("2 bytes short"), "{e}");
        // A HEAD's response promises a body it does not carry.
        let ok = refused(&[(Kind::ResponseHead, &five), (Kind::End, b"")], true);
        assert_eq!(ok, "");
        let e = refused(&[(Kind::Error, &0u16.to_le_bytes())], false);
        assert!(e.contains("status 0"), "{e}");
        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::Error, &0u16.to_le_bytes())]);
        x.buffer()[..bytes.len()].copy_from_slice(&bytes);
        x.filled(bytes.len());
        assert!(x.next_event().is_err());
        assert!(!x.reusable(), "a connection that failed is never reused");
        let e = refused(&[(Kind::Error, &302u16.to_le_bytes())], false);
        assert!(e.contains("status 302"), "{e}");
        let e = refused(&[(Kind::Hello, &[0; 32])], false);
        assert!(e.contains("a server's frame"), "{e}");
        // What is well formed passes.
        let good = head_with("200 OK", &[("Content-Length", "5"), ("X-Caf\u{e9}", "a")]);
        assert!(refused(&[(Kind::ResponseHead, &good)], false).contains("name"));
        let good = head_with("200 OK", &[("Content-Length", "5"), ("X-A", "caf\u{e9}")]);
        assert_eq!(
            refused(
                &[
                    (Kind::ResponseHead, &good),
                    (Kind::Data, b"12345"),
                    (Kind::End, b"")
                ],
                false
            ),
            ""
        );
    }

    #[test]
    fn a_read_never_asks_for_more_than_the_protocol_allows() {
        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::Read, &u32::MAX.to_le_bytes())]);
        assert_eq!(
            events(&mut x, &bytes, 64),
            vec![Event::Read(frame::MAX_READ)]
        );
    }

    #[test]
    fn a_head_over_the_limit_is_a_502_and_the_connection_goes() {
        let mut x = Exchange::new(10);
        let bytes = wire(&[(Kind::ResponseHead, &head())]);
        assert_eq!(events(&mut x, &bytes, 64), vec![Event::Error(502)]);
        assert!(x.is_over() && !x.reusable());
    }

    #[test]
    fn the_daemon_error_page_and_retry() {
        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::Error, &503u16.to_le_bytes())]);
        assert_eq!(events(&mut x, &bytes, 64), vec![Event::Error(503)]);
        assert!(x.reusable(), "an error page leaves the connection idle");

        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::Retry, b"")]);
        assert_eq!(events(&mut x, &bytes, 64), vec![Event::Retry]);
        assert!(!x.reusable(), "a daemon that asks for a retry is going");
    }

    #[test]
    fn a_confused_daemon_is_an_error() {
        for frames in [
            vec![(Kind::Data, &b"x"[..])],
            vec![(Kind::Body, &b""[..])],
            vec![(Kind::End, &b""[..]), (Kind::Data, &b"x"[..])],
        ] {
            let mut x = Exchange::new(8192);
            let bytes = wire(&frames);
            let room = x.buffer();
            room[..bytes.len()].copy_from_slice(&bytes);
            x.filled(bytes.len());
            let mut failed = false;
            for _ in 0..frames.len() {
                if let Err(e) = x.next_event() {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                    failed = true;
                    break;
                }
            }
            assert!(failed, "{frames:?}");
        }
        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::ResponseHead, &head()), (Kind::Retry, b"")]);
        let room = x.buffer();
        room[..bytes.len()].copy_from_slice(&bytes);
        x.filled(bytes.len());
        assert!(x.next_event().unwrap().is_some());
        assert!(x.next_event().is_err(), "no retry once the response began");
    }

    #[test]
    fn a_lost_connection_is_resent_only_when_nothing_can_have_run_twice() {
        let x = Exchange::new(8192);
        assert_eq!(x.lost(true, false), Lost::Resend, "a pooled connection");
        assert_eq!(x.lost(false, true), Lost::Resend, "a GET");
        assert_eq!(x.lost(false, false), Lost::BadGateway, "a new POST");

        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::Read, &1u32.to_le_bytes())]);
        events(&mut x, &bytes, 64);
        assert_eq!(x.lost(true, true), Lost::BadGateway, "the app ran");

        let mut x = Exchange::new(8192);
        let bytes = wire(&[(Kind::ResponseHead, &head())]);
        events(&mut x, &bytes, 64);
        assert_eq!(x.lost(true, true), Lost::Cut);
        assert!(idempotent(b"HEAD") && !idempotent(b"POST"));

        // A frame that cannot be read is an answer all the same: a GET
        // whose app wrote garbage is not run again and again.
        let mut x = Exchange::new(8192);
        let room = x.buffer();
        room[..6].copy_from_slice(&[99, 1, 0, 0, 0, b'?']);
        x.filled(6);
        assert!(x.next_event().is_err());
        assert_eq!(x.lost(false, true), Lost::BadGateway);
    }

    /// On a new connection the daemon's `Accepted` comes first; until it
    /// does, nothing was sent, and a lost connection is the group not
    /// reached (503 at the deadline), whatever the method.
    #[test]
    fn a_new_connection_begins_with_accepted() {
        let mut x = Exchange::new(8192).on_new_connection(true);
        assert!(x.awaiting_accept());
        assert_eq!(x.lost(false, false), Lost::Unsent, "a POST not sent yet");
        // Cut into single bytes: the header of Accepted comes in pieces.
        let bytes = wire(&[(Kind::Accepted, b"")]);
        assert_eq!(events(&mut x, &bytes, 1), vec![Event::Accepted]);
        assert!(!x.awaiting_accept());
        assert_eq!(
            x.lost(false, false),
            Lost::BadGateway,
            "once sent, a POST may have run"
        );
        let bytes = wire(&[(Kind::ResponseHead, &head()), (Kind::End, b"")]);
        let got = events(&mut x, &bytes, 64);
        assert!(matches!(got[..], [Event::Start(_), Event::End]), "{got:?}");
        assert!(x.reusable());

        // Anything else first is a foreign peer; Accepted later is too.
        for (first, second) in [
            ((Kind::ResponseHead, head()), None),
            ((Kind::Accepted, b"x".to_vec()), None),
            ((Kind::Accepted, Vec::new()), Some(Kind::Accepted)),
        ] {
            let mut x = Exchange::new(8192).on_new_connection(true);
            let mut frames = vec![(first.0, &first.1[..])];
            frames.extend(second.map(|k| (k, &b""[..])));
            let bytes = wire(&frames);
            let room = x.buffer();
            room[..bytes.len()].copy_from_slice(&bytes);
            x.filled(bytes.len());
            let failed = (0..frames.len()).any(|_| x.next_event().is_err());
            assert!(failed, "{frames:?}");
            assert!(!x.reusable());
        }
        // A pooled connection has no Accepted.
        let mut x = Exchange::new(8192);
        let room = x.buffer();
        room[..5].copy_from_slice(&[Kind::Accepted as u8, 0, 0, 0, 0]);
        x.filled(5);
        assert!(x.next_event().is_err());
    }
}

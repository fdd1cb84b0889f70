//! The response state machine, in plain Rust over a `ResponseSink`: when the
//! headers go out, Content-Length promises, gzip, and how a response ends
//! (finished, aborted after an error, or cut short by the client).
//!
//! It knows nothing of Python; `start_response` and the handler drive it.

use std::fs::File;
use std::io;

use crate::response::gzip::{self, Decision, Encoder};
use crate::response::sink::{Chunk, ResponseSink};
use crate::response::{ResponseHead, parse_content_length};

/// Why a write did not go through.
#[derive(Debug)]
pub enum WriteError {
    /// Body before `start_response`.
    NotStarted,
    /// The client went away (the sink failed); stop producing.
    Gone(io::Error),
    /// The response was already finished or aborted.
    Closed,
}

/// How a response ended, for the server's bookkeeping and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent completely.
    Complete,
    /// An error page was sent instead of the app's response (status given).
    Error(u16),
    /// Cut short after the headers went out (app error or broken promise).
    Aborted,
    /// The client went away.
    ClientGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Done(Outcome),
}

/// Sends an error page of the server's making in place of the app's
/// response, and says how the request then ended.
pub(crate) fn error_page(sink: &mut dyn ResponseSink, status: u16) -> Outcome {
    match sink.error(status) {
        Ok(()) => Outcome::Error(status),
        Err(_) => Outcome::ClientGone,
    }
}

/// Response compression as configured for the app and offered by the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct GzipPolicy {
    pub enabled: bool,
    pub client_accepts: bool,
}

pub struct Responder {
    sink: Box<dyn ResponseSink>,
    /// The head until it is handed to the sink.
    head: Option<ResponseHead>,
    /// start_response was called.
    started: bool,
    /// The status forbids a body (204, 304, 205): what the app yields is
    /// dropped, never sent.
    no_content: bool,
    /// The status sent, for the log.
    status: u16,
    headers_sent: bool,
    /// The app's Content-Length, enforced.
    promised: Option<u64>,
    /// Body bytes the app produced that were passed on (before compression).
    sent: u64,
    excess_noted: bool,
    gzip: GzipPolicy,
    encoder: Option<Encoder>,
    is_head_request: bool,
    state: State,
    /// Problems to log (the handler adds which app and request).
    notes: Vec<Note>,
}

/// Something the server's log should say about a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: log::Level,
    pub text: String,
}

impl Responder {
    pub fn new(sink: Box<dyn ResponseSink>, gzip: GzipPolicy, is_head_request: bool) -> Responder {
        Responder {
            sink,
            head: None,
            started: false,
            no_content: false,
            status: 0,
            headers_sent: false,
            promised: None,
            sent: 0,
            excess_noted: false,
            gzip,
            encoder: None,
            is_head_request,
            state: State::Open,
            notes: Vec::new(),
        }
    }

    /// Whether sink calls may block (and so must run without the GIL).
    pub fn may_block(&self) -> bool {
        self.sink.may_block()
    }

    /// What went wrong that the server's log should say.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    fn note(&mut self, level: log::Level, text: String) {
        self.notes.push(Note { level, text });
    }

    /// The status the app's response started with (0: none yet).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Body bytes of the app's passed on (before compression).
    pub fn body_bytes(&self) -> u64 {
        self.sent
    }

    pub fn headers_sent(&self) -> bool {
        self.headers_sent
    }

    pub fn has_head(&self) -> bool {
        self.started
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.state {
            State::Open => None,
            State::Done(o) => Some(o),
        }
    }

    /// Whether the body will be gzip-compressed (known once headers are sent).
    pub fn compressing(&self) -> bool {
        self.encoder.is_some()
    }

    /// Whether the body may still be sent with sendfile (no compression).
    pub fn may_send_file(&self) -> bool {
        self.encoder.is_none() && !(self.gzip.enabled && self.gzip.client_accepts)
    }

    /// Sets (or, with `exc_info`, replaces) the status and headers. Validation
    /// of the strings happened already; this checks Content-Length (one
    /// value: a repeated header must repeat it, and is sent once).
    pub fn set_head(&mut self, mut head: ResponseHead) -> Result<(), String> {
        let mut promised = None;
        let mut repeated = false;
        for (name, value) in &head.headers {
            if !name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            let n = parse_content_length(value)?;
            match promised {
                None => promised = Some(n),
                Some(first) if first == n => repeated = true,
                Some(first) => {
                    return Err(format!(
                        "response headers give two different Content-Length values \
                         ({first} and {n}): a response has one length"
                    ));
                }
            }
        }
        if repeated {
            let mut seen = false;
            head.headers.retain(|(name, _)| {
                let keep = !(name.eq_ignore_ascii_case("Content-Length") && seen);
                seen |= name.eq_ignore_ascii_case("Content-Length");
                keep
            });
        }
        self.promised = promised;
        self.head = Some(head);
        self.started = true;
        Ok(())
    }

    /// Settles the head before it goes out: gzip or not, and Content-Length
    /// when the core knows the body's length (`known_len`, a list response).
    fn prepare(&mut self, known_len: Option<u64>) -> Result<(), WriteError> {
        let Some(head) = self.head.as_mut() else {
            return Err(WriteError::NotStarted);
        };
        if self.gzip.enabled {
            let len = self.promised.or(known_len);
            match gzip::decide(head, len, self.gzip.client_accepts) {
                Decision::Skip => {}
                Decision::VaryOnly => gzip::add_vary(head),
                Decision::Compress => {
                    gzip::mark_compressed(head);
                    self.encoder = Some(Encoder::new());
                    self.promised = None;
                }
            }
        }
        if head.no_content() {
            // No body follows, whatever the app promised or yields. 204 must
            // not carry a length; 205's framing says empty; a 304's length
            // describes the 200 it stands for and is the app's to give.
            self.promised = None;
            if head.status != 304 {
                head.remove_header("Content-Length");
            }
            if head.status == 205 {
                head.headers.push(("Content-Length".into(), "0".into()));
            }
            return Ok(());
        }
        let add_length = self.encoder.is_none() && self.promised.is_none() && !self.is_head_request;
        if let (true, Some(n)) = (add_length, known_len) {
            head.headers.push(("Content-Length".into(), n.to_string()));
        }
        Ok(())
    }

    fn send_head(&mut self) -> Result<(), WriteError> {
        let Some(head) = self.head.take() else {
            return Err(WriteError::NotStarted);
        };
        self.headers_sent = true;
        self.no_content = head.no_content();
        self.status = head.status;
        let r = self.sink.start(head);
        r.map_err(|e| self.gone(e))
    }

    fn commit(&mut self, known_len: Option<u64>) -> Result<(), WriteError> {
        self.prepare(known_len)?;
        self.send_head()
    }

    fn gone(&mut self, e: io::Error) -> WriteError {
        self.state = State::Done(Outcome::ClientGone);
        WriteError::Gone(e)
    }

    fn check_open(&self) -> Result<(), WriteError> {
        match self.state {
            State::Open => Ok(()),
            State::Done(_) => Err(WriteError::Closed),
        }
    }

    /// Keeps the body within the app's Content-Length: returns how much of
    /// `len` may go out.
    fn allowance(&mut self, len: usize) -> usize {
        if self.no_content {
            self.discard(len as u64);
            return 0;
        }
        let Some(promised) = self.promised else {
            return len;
        };
        let left = promised.saturating_sub(self.sent);
        if (len as u64) <= left {
            return len;
        }
        if !self.excess_noted {
            self.excess_noted = true;
            self.note(
                log::Level::Error,
                format!(
                    "application sent more than its Content-Length of {promised} bytes; \
                     the excess is not sent"
                ),
            );
        }
        left as usize
    }

    /// Drops body the status forbids (noted once: the app's iteration and
    /// close() go on as usual).
    fn discard(&mut self, len: u64) {
        if len > 0 && !self.excess_noted {
            self.excess_noted = true;
            let status = self.status;
            self.note(
                log::Level::Info,
                format!(
                    "application sent a body with status {status}, which has none; \
                     the body is discarded"
                ),
            );
        }
    }

    /// Passes one chunk of body on; `flush` marks a streaming boundary.
    pub fn write(&mut self, chunk: Chunk, flush: bool) -> Result<(), WriteError> {
        self.check_open()?;
        if !self.started {
            return Err(WriteError::NotStarted);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        if !self.headers_sent {
            self.commit(None)?;
        }
        let allowed = self.allowance(chunk.len());
        if allowed == 0 {
            return Ok(());
        }
        self.sent += allowed as u64;
        let out = if let Some(enc) = self.encoder.as_mut() {
            let data = enc.push(&chunk[..allowed], flush);
            if data.is_empty() {
                return Ok(());
            }
            Chunk::owned(data)
        } else if allowed < chunk.len() {
            Chunk::owned(chunk[..allowed].to_vec())
        } else {
            chunk
        };
        self.sink.write(out).map_err(|e| self.gone(e))?;
        if flush {
            self.sink.flush().map_err(|e| self.gone(e))?;
        }
        Ok(())
    }

    /// Sends a whole body known up front (a list or tuple response) and
    /// finishes: Content-Length is set, and gzip compresses it in one go.
    pub fn write_all(&mut self, chunks: Vec<Chunk>) -> Result<Outcome, WriteError> {
        self.check_open()?;
        if self.headers_sent {
            for c in chunks {
                self.write(c, false)?;
            }
            return self.finish();
        }
        let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        self.prepare(Some(total))?;
        let Some(encoder) = self.encoder.take() else {
            self.send_head()?;
            for c in chunks {
                self.write(c, false)?;
            }
            return self.finish();
        };
        let mut body = gzip::compress_with(encoder, chunks.iter().map(|c| &c[..]));
        self.sent = total;
        if let Some(head) = self.head.as_mut() {
            head.headers
                .push(("Content-Length".into(), body.len().to_string()));
        }
        self.send_head()?;
        if !body.is_empty() {
            let chunk = Chunk::owned(std::mem::take(&mut body));
            self.sink.write(chunk).map_err(|e| self.gone(e))?;
        }
        self.finish()
    }

    /// Sends `len` bytes of a file from `offset` (sendfile in the server).
    pub fn send_file(&mut self, file: File, offset: u64, len: u64) -> Result<(), WriteError> {
        self.check_open()?;
        if !self.started {
            return Err(WriteError::NotStarted);
        }
        let len = match self.promised {
            Some(p) => len.min(p.saturating_sub(self.sent)),
            None => len,
        };
        if !self.headers_sent {
            let known = if self.sent == 0 { Some(len) } else { None };
            self.commit(known)?;
        }
        if self.no_content {
            self.discard(len);
            return Ok(());
        }
        if len == 0 {
            return Ok(());
        }
        self.sent += len;
        self.sink
            .send_file(file, offset, len)
            .map_err(|e| self.gone(e))?;
        self.sink.flush().map_err(|e| self.gone(e))
    }

    /// Ends the response after the app's iterable is exhausted.
    pub fn finish(&mut self) -> Result<Outcome, WriteError> {
        self.check_open()?;
        if !self.headers_sent {
            self.commit(Some(0))?;
        }
        if let Some(enc) = self.encoder.take() {
            let tail = enc.finish();
            self.sink
                .write(Chunk::owned(tail))
                .map_err(|e| self.gone(e))?;
        }
        let short = self
            .promised
            .filter(|&p| self.sent < p && !self.is_head_request && !self.no_content);
        if let Some(promised) = short {
            let text = format!(
                "application promised {promised} bytes in Content-Length but sent {}; \
                 response aborted so the client sees it is incomplete",
                self.sent
            );
            self.note(log::Level::Error, text);
            self.sink.abort();
            self.state = State::Done(Outcome::Aborted);
            return Ok(Outcome::Aborted);
        }
        self.sink.finish().map_err(|e| self.gone(e))?;
        self.state = State::Done(Outcome::Complete);
        Ok(Outcome::Complete)
    }

    /// The app failed. Before the headers went out the client gets an error
    /// page with `status`; after, the response is aborted.
    pub fn fail(&mut self, status: u16) -> Outcome {
        if !self.is_open() {
            return self.outcome().unwrap_or(Outcome::Aborted);
        }
        let outcome = if self.headers_sent {
            self.sink.abort();
            Outcome::Aborted
        } else {
            self.headers_sent = true;
            error_page(&mut *self.sink, status)
        };
        self.state = State::Done(outcome);
        outcome
    }

    /// The client went away while the app was producing (the core noticed it
    /// outside a write, e.g. reading the request body).
    pub fn client_gone(&mut self) {
        if self.is_open() {
            self.sink.abort();
            self.state = State::Done(Outcome::ClientGone);
        }
    }
}

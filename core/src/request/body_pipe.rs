//! A request body that arrives on a server's event loop while a Python
//! thread reads it: the event loop pushes what it read (`Feeder`), the
//! app's thread reads through a `PipeReader` (the core's `BodyStream`),
//! waiting when it is ahead of the client.
//!
//! Backpressure: once `HIGH_WATER` bytes wait for the app, the event loop
//! stops reading (the rest stays in the kernel's socket buffers and the
//! client's TCP window fills); when the app has read the pipe down below
//! `LOW_WATER`, its reader calls the server's resume hook.
//!
//! The buffers the event loop copies into are reused once the app has read
//! them (`Spare`, per process): a burst of uploads reuses the same memory,
//! warm in the cache, instead of growing the heap, having glibc give it
//! back, and faulting it in again page by page.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::request::BodyStream;
use crate::sync::Recover;

/// What a request may have buffered for its app before the server stops
/// reading from the client, and where reading resumes: enough that the app
/// rarely waits, little enough that a burst of uploads queued for a Python
/// thread does not sit in the heap.
pub const HIGH_WATER: usize = 256 << 10;
pub const LOW_WATER: usize = 128 << 10;

/// The smallest buffer a piece is copied into, so that a small first piece
/// (what came with the headers) makes a buffer reusable for the next ones.
pub const MIN_BUFFER: usize = 64 << 10;

/// The most memory the spare buffers keep, per process.
const SPARE_MAX: usize = 4 << 20;

struct Spare {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

static SPARE: Mutex<Spare> = Mutex::new(Spare {
    buffers: Vec::new(),
    bytes: 0,
});

/// A copy of `data` in a reused buffer when one fits.
fn copy_to_buffer(data: &[u8]) -> Vec<u8> {
    let reused = {
        let mut spare = SPARE.lock().recover();
        match spare.buffers.last() {
            Some(b) if b.capacity() >= data.len() => {
                let b = spare.buffers.pop();
                spare.bytes -= b.as_ref().map_or(0, Vec::capacity);
                b
            }
            _ => None,
        }
    };
    let mut v = reused.unwrap_or_else(|| Vec::with_capacity(data.len().max(MIN_BUFFER)));
    v.clear();
    v.extend_from_slice(data);
    v
}

/// Keeps a buffer the app has read for the next copy.
fn give_back(v: Vec<u8>) {
    if v.capacity() == 0 {
        return;
    }
    let mut spare = SPARE.lock().recover();
    if spare.bytes + v.capacity() <= SPARE_MAX {
        spare.bytes += v.capacity();
        spare.buffers.push(v);
    }
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    buffered: usize,
    eof: bool,
    /// Why the body stopped (client error, request gone).
    error: Option<String>,
    /// The event loop stopped reading until the app catches up.
    paused: bool,
}

#[derive(Default)]
pub struct BodyPipe {
    state: Mutex<State>,
    more: Condvar,
}

/// What the event loop should do next with the client's socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read more.
    Read,
    /// Stop: the app is `HIGH_WATER` behind (it resumes the loop later).
    Paused,
    /// Stop: the body is complete or failed.
    Done,
}

impl BodyPipe {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().recover()
    }

    /// The event loop's side, for one round of reading; a reader waiting
    /// for bytes is woken when it ends.
    pub fn feed(&self) -> Feeder<'_> {
        Feeder {
            pipe: self,
            st: Some(self.lock()),
        }
    }

    /// The request went away: a waiting reader gets an error.
    pub fn fail(&self, why: &str) {
        self.feed().fail(why);
    }
}

/// The event loop holding the pipe: what it reads goes in, in order.
pub struct Feeder<'a> {
    pipe: &'a BodyPipe,
    /// Held for the whole round; taken in `drop`, so that the reader is
    /// woken after the lock is free (woken under it, it would only block
    /// on the lock again).
    st: Option<MutexGuard<'a, State>>,
}

impl Feeder<'_> {
    fn st(&mut self) -> &mut State {
        self.st.as_mut().expect("held until drop")
    }

    /// Whether to read more from the client now (marks the pipe paused at
    /// the high-water mark).
    pub fn next_step(&mut self) -> Next {
        let st = self.st();
        if st.eof || st.error.is_some() {
            Next::Done
        } else if st.buffered >= HIGH_WATER {
            st.paused = true;
            Next::Paused
        } else {
            Next::Read
        }
    }

    /// A piece of the body (copied into a reused buffer).
    pub fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let copy = copy_to_buffer(data);
        let st = self.st();
        st.buffered += data.len();
        st.chunks.push_back(copy);
    }

    /// The body is complete.
    pub fn end(&mut self) {
        self.st().eof = true;
    }

    /// The body cannot be complete (a client error, the request gone).
    pub fn fail(&mut self, why: &str) {
        let st = self.st();
        if !st.eof && st.error.is_none() {
            st.error = Some(why.to_string());
        }
    }
}

impl Drop for Feeder<'_> {
    fn drop(&mut self) {
        drop(self.st.take());
        self.pipe.more.notify_all();
    }
}

/// The app's side: a blocking reader (the core releases the GIL around it
/// unless `ready` says the bytes are there). `resume` asks the server's
/// event loop to read again after a pause.
pub struct PipeReader {
    pipe: std::sync::Arc<BodyPipe>,
    resume: Box<dyn Fn() + Send>,
    current: Vec<u8>,
    pos: usize,
}

impl PipeReader {
    pub fn new(pipe: std::sync::Arc<BodyPipe>, resume: Box<dyn Fn() + Send>) -> PipeReader {
        PipeReader {
            pipe,
            resume,
            current: Vec::new(),
            pos: 0,
        }
    }

    /// Makes sure `current` has unread bytes, waiting for the event loop if
    /// need be. False at the end of the body.
    fn refill(&mut self) -> io::Result<bool> {
        if self.pos < self.current.len() {
            return Ok(true);
        }
        let mut resume = false;
        let next = {
            let mut st = self.pipe.lock();
            loop {
                if let Some(c) = st.chunks.pop_front() {
                    st.buffered -= c.len();
                    if st.paused && st.buffered < LOW_WATER {
                        st.paused = false;
                        resume = true;
                    }
                    break Some(c);
                }
                if st.eof {
                    break None;
                }
                if let Some(e) = &st.error {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e.clone()));
                }
                st = self.pipe.more.wait(st).recover();
            }
        };
        if resume {
            (self.resume)();
        }
        match next {
            Some(c) => {
                give_back(std::mem::replace(&mut self.current, c));
                self.pos = 0;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn unread(&self, max: usize) -> &[u8] {
        let n = max.min(self.current.len() - self.pos);
        &self.current[self.pos..self.pos + n]
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.refill()? {
            return Ok(0);
        }
        let src = self.unread(buf.len());
        let n = src.len();
        buf[..n].copy_from_slice(src);
        self.pos += n;
        Ok(n)
    }
}

// The bytes are copied out of the pipe's chunks: straight into the app's
// bytes object, which need not be zeroed first.
impl BodyStream for PipeReader {
    fn read_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        Some(self.refill().map(|more| {
            if !more {
                return 0;
            }
            let src = self.unread(buf.len());
            let n = src.len();
            for (d, s) in buf.iter_mut().zip(src) {
                d.write(*s);
            }
            self.pos += n;
            n
        }))
    }

    fn ready(&self, want: usize) -> bool {
        let unread = self.current.len() - self.pos;
        if unread >= want {
            return true;
        }
        let st = self.pipe.lock();
        st.eof || st.error.is_some() || unread + st.buffered >= want
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn reader(pipe: &Arc<BodyPipe>) -> (PipeReader, Arc<AtomicUsize>) {
        let resumed = Arc::new(AtomicUsize::new(0));
        let r = resumed.clone();
        let reader = PipeReader::new(
            pipe.clone(),
            Box::new(move || {
                r.fetch_add(1, Ordering::Relaxed);
            }),
        );
        (reader, resumed)
    }

    #[test]
    fn pieces_come_out_in_order_and_whole() {
        let pipe = Arc::new(BodyPipe::default());
        let (mut r, _) = reader(&pipe);
        {
            let mut f = pipe.feed();
            assert_eq!(f.next_step(), Next::Read);
            f.push(b"hello ");
            f.push(b"");
            f.push(b"world");
            f.end();
            assert_eq!(f.next_step(), Next::Done);
        }
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn the_high_water_mark_pauses_and_reading_below_the_low_one_resumes() {
        let pipe = Arc::new(BodyPipe::default());
        let (mut r, resumed) = reader(&pipe);
        let piece = vec![7u8; 64 << 10];
        let mut pushed = 0;
        loop {
            let mut f = pipe.feed();
            match f.next_step() {
                Next::Read => {
                    f.push(&piece);
                    pushed += piece.len();
                }
                Next::Paused => break,
                Next::Done => panic!("not done"),
            }
        }
        assert_eq!(pushed, HIGH_WATER);
        // Still paused while the app reads down to the low-water mark...
        let mut buf = vec![0u8; 64 << 10];
        r.read_exact(&mut buf).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(resumed.load(Ordering::Relaxed), 0);
        // ... and resumed once, when it goes below.
        r.read_exact(&mut buf).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(resumed.load(Ordering::Relaxed), 1);
        assert_eq!(pipe.feed().next_step(), Next::Read);
    }

    #[test]
    fn ready_tells_a_read_that_would_wait_from_one_that_would_not() {
        let pipe = Arc::new(BodyPipe::default());
        let (mut r, _) = reader(&pipe);
        assert!(!r.ready(1));
        pipe.feed().push(&[1; 1000]);
        assert!(r.ready(1000));
        assert!(!r.ready(1001));
        let mut buf = [0u8; 600];
        r.read_exact(&mut buf).unwrap();
        assert!(r.ready(400) && !r.ready(401));
        pipe.feed().end();
        assert!(r.ready(1 << 20), "at the end a read returns at once");
    }

    #[test]
    fn a_waiting_reader_is_woken_by_bytes_and_by_failure() {
        let pipe = Arc::new(BodyPipe::default());
        let (mut r, _) = reader(&pipe);
        let feeder = {
            let pipe = pipe.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                pipe.feed().push(b"late");
                std::thread::sleep(std::time::Duration::from_millis(50));
                pipe.fail("the client went away");
            })
        };
        let mut buf = [0u8; 4];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(e.to_string().contains("the client went away"));
        feeder.join().unwrap();
    }

    #[test]
    fn read_buffers_are_reused() {
        let pipe = Arc::new(BodyPipe::default());
        let (mut r, _) = reader(&pipe);
        let mut addresses = std::collections::HashSet::new();
        for _ in 0..50 {
            pipe.feed().push(&[3u8; 1000]);
            let mut buf = [0u8; 1000];
            r.read_exact(&mut buf).unwrap();
            addresses.insert(r.current.as_ptr() as usize);
        }
        assert!(
            addresses.len() <= 3,
            "{} different buffers for 50 pieces",
            addresses.len()
        );
    }
}

//! From a Python thread back to the event loop: each request has a `Channel`
//! of messages (headers, chunks, end). A Python thread pushes and wakes the
//! event loop through the worker's notifier; the event loop drains. Body
//! bytes that nginx has not sent yet count against a high-water mark, and a
//! Python thread that would pass it waits: a slow client slows the app down
//! instead of growing memory.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::io;
use std::sync::atomic::AtomicPtr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use oxwsgi_core::sync::Recover;
use oxwsgi_core::{Chunk, ResponseHead, ResponseSink};
use std::fs::File;

use crate::output::msg::{Msg, RESPONSE_HIGH_WATER};

#[derive(Default)]
pub struct State {
    pub msgs: VecDeque<Msg>,
    /// The channel is on the worker's ready list (one wake-up per batch).
    pub queued: bool,
    /// Body bytes in `msgs`.
    pub pending: usize,
    /// Body bytes handed to nginx and not sent yet (kept by the event loop).
    pub in_nginx: usize,
    /// The request or the client is gone: writes fail from now on.
    pub closed: bool,
    /// Python threads waiting for room (a wake-up is a system call even
    /// for nobody: it is made only for them).
    writers_waiting: usize,
}

/// How a channel wakes the event loop: given when it is made (the worker's
/// notifier), so the channel needs nothing of the worker.
pub trait Notifier: Sync {
    /// `channel` has messages; `urgent` ones must not wait for the end of
    /// the thread's batch of jobs.
    fn notify(&self, channel: Arc<Channel>, urgent: bool);
    /// Wakes the loop for what this thread queued without doing so.
    fn flush_deferred(&self);
}

/// Something that must fail when the channel closes (the request body a
/// Python thread may be waiting on).
pub trait FailsWith: Send + Sync {
    fn fail(&self, why: &str);
}

pub struct Channel {
    state: Mutex<State>,
    room: Condvar,
    notifier: &'static dyn Notifier,
    /// The request's output state (`output::ReqCtx`) while the request lives;
    /// set and cleared on the event loop thread only.
    pub target: AtomicPtr<c_void>,
    /// The request body while it streams, failed with the channel.
    pub body: std::sync::OnceLock<Arc<dyn FailsWith>>,
}

impl Channel {
    pub fn new(notifier: &'static dyn Notifier) -> Channel {
        Channel {
            state: Mutex::default(),
            room: Condvar::new(),
            notifier,
            target: AtomicPtr::default(),
            body: std::sync::OnceLock::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().recover()
    }

    /// Called by the event loop when bytes left nginx or the request ended.
    pub fn wake_writer(&self) {
        self.wake_waiting(self.lock());
    }

    /// Wakes the threads waiting for room, if any (`st` is released first).
    fn wake_waiting(&self, st: MutexGuard<'_, State>) {
        let waiting = st.writers_waiting > 0;
        drop(st);
        if waiting {
            self.room.notify_all();
        }
    }

    /// Marks the channel dead (the request was finalised or its pool freed).
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.msgs.clear();
        self.wake_waiting(st);
        if let Some(pipe) = self.body.get() {
            pipe.fail("the request ended before its body was read");
        }
    }

    /// The request passed its timeout while the app still has it: the event
    /// loop answers (504, or cuts what already started) after what is
    /// queued, and the app's writes and body reads fail from now on.
    pub fn expire(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.msgs.push_back(Msg::Timeout);
        st.closed = true;
        let first = !st.queued;
        st.queued = true;
        self.wake_waiting(st);
        if let Some(pipe) = self.body.get() {
            pipe.fail("the request timed out");
        }
        if first {
            self.notifier.notify(self.clone(), true);
        }
    }

    /// The event loop's side: takes what is queued (the channel may be
    /// put on the ready list again from now on).
    pub fn take_msgs(&self) -> VecDeque<Msg> {
        let mut st = self.lock();
        st.queued = false;
        st.pending = 0;
        std::mem::take(&mut st.msgs)
    }

    /// Queues `msgs` for the event loop and wakes it (once per batch).
    fn push(self: &Arc<Self>, msgs: &mut Vec<Msg>, urgent: bool) -> io::Result<()> {
        let mut st = self.lock();
        if st.closed {
            msgs.clear();
            return Err(gone());
        }
        for msg in msgs.drain(..) {
            if let Msg::Data(c) = &msg {
                st.pending += c.len();
            }
            st.msgs.push_back(msg);
        }
        let first = !st.queued;
        st.queued = true;
        drop(st);
        if first {
            self.notifier.notify(self.clone(), urgent);
        }
        Ok(())
    }

    /// Sends a control message to the event loop at once.
    pub fn send_control(self: &Arc<Self>, msg: Msg) -> io::Result<()> {
        self.push(&mut vec![msg], true)
    }

    /// Waits until the body in flight is under the high-water mark.
    fn wait_for_room(&self) -> io::Result<()> {
        let mut st = self.lock();
        if !st.closed && st.pending + st.in_nginx > RESPONSE_HIGH_WATER {
            // Waiting on the event loop: it must know about everything.
            drop(st);
            self.notifier.flush_deferred();
            st = self.lock();
        }
        st.writers_waiting += 1;
        while !st.closed && st.pending + st.in_nginx > RESPONSE_HIGH_WATER {
            st = self.room.wait(st).recover();
        }
        st.writers_waiting -= 1;
        if st.closed { Err(gone()) } else { Ok(()) }
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the client or the request is gone",
    )
}

/// Bytes a sink collects before it hands them over without a flush.
const BATCH_BYTES: usize = 64 * 1024;

/// The core's `ResponseSink` for nginx: runs on a Python thread. Messages are
/// collected until a flush, the end, or `BATCH_BYTES`, so a whole small
/// response (headers, body, end) costs the event loop one wake-up.
pub struct NginxSink {
    channel: Arc<Channel>,
    batch: Vec<Msg>,
    batch_bytes: usize,
}

impl NginxSink {
    pub fn new(channel: Arc<Channel>) -> NginxSink {
        NginxSink {
            channel,
            batch: Vec::with_capacity(4),
            batch_bytes: 0,
        }
    }

    /// Hands the collected messages over. While this thread has more jobs
    /// queued, waking the event loop waits for the end of its run of jobs
    /// (at most `BATCH_JOBS`, and the loop's 1 ms watchdog delivers them
    /// anyway if the app then blocks); otherwise it happens at once.
    fn send(&mut self) -> io::Result<()> {
        self.batch_bytes = 0;
        self.channel.push(&mut self.batch, false)
    }

    fn add_body(&mut self, msg: Msg, len: usize) -> io::Result<()> {
        if self.batch_bytes + len > BATCH_BYTES && !self.batch.is_empty() {
            self.send()?;
        }
        self.channel.wait_for_room()?;
        self.batch.push(msg);
        self.batch_bytes += len;
        Ok(())
    }
}

impl ResponseSink for NginxSink {
    /// Pushing to the channel never blocks; only a write that finds the
    /// client too far behind waits. Saying so spares the GIL hand-off (and
    /// the thread switch it causes) for every response that fits.
    fn may_block(&self) -> bool {
        let st = self.channel.lock();
        st.pending + st.in_nginx + self.batch_bytes > RESPONSE_HIGH_WATER / 2
    }

    fn start(&mut self, head: ResponseHead) -> io::Result<()> {
        self.batch.push(Msg::Start(head));
        Ok(())
    }

    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        let len = chunk.len();
        self.add_body(Msg::Data(chunk), len)
    }

    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        self.add_body(Msg::File { file, offset, len }, len as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.batch.push(Msg::Flush);
        self.send()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.batch.push(Msg::Finish);
        self.send()
    }

    fn abort(&mut self) {
        self.batch.push(Msg::Abort);
        let _ = self.send();
    }

    fn error(&mut self, status: u16) -> io::Result<()> {
        self.batch.push(Msg::Error(status));
        self.send()
    }

    /// The event loop answers while the app's thread is still away.
    fn timeout_action(&self) -> Option<oxwsgi_core::response::sink::TimeoutAction> {
        let channel = self.channel.clone();
        Some(Box::new(move || channel.expire()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    /// Counts the wake-ups a channel asks for.
    #[derive(Default)]
    struct Wakes {
        notified: AtomicUsize,
        urgent: AtomicUsize,
        flushed: AtomicUsize,
    }

    impl Notifier for Wakes {
        fn notify(&self, _: Arc<Channel>, urgent: bool) {
            self.notified.fetch_add(1, Ordering::SeqCst);
            if urgent {
                self.urgent.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn flush_deferred(&self) {
            self.flushed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn channel() -> (Arc<Channel>, &'static Wakes) {
        let wakes: &'static Wakes = Box::leak(Box::default());
        (Arc::new(Channel::new(wakes)), wakes)
    }

    fn head() -> ResponseHead {
        ResponseHead {
            status: 200,
            status_line: "200 OK".into(),
            headers: vec![],
        }
    }

    fn drain(c: &Channel) -> Vec<Msg> {
        c.take_msgs().into()
    }

    fn kinds(msgs: &[Msg]) -> String {
        let kind = |m: &Msg| match m {
            Msg::Start(_) => "start".to_string(),
            Msg::Data(c) => format!("data{}", c.len()),
            Msg::Flush => "flush".into(),
            Msg::File { len, .. } => format!("file{len}"),
            Msg::Finish => "finish".into(),
            Msg::Abort => "abort".into(),
            Msg::Error(s) => format!("error{s}"),
            Msg::ReadBody => "read".into(),
            Msg::Timeout => "timeout".into(),
        };
        msgs.iter().map(kind).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_small_response_is_one_wake_up() {
        let (c, wakes) = channel();
        let mut sink = NginxSink::new(c.clone());
        sink.start(head()).unwrap();
        sink.write(Chunk::owned(b"hello".to_vec())).unwrap();
        sink.write(Chunk::owned(b", world".to_vec())).unwrap();
        assert_eq!(
            wakes.notified.load(Ordering::SeqCst),
            0,
            "nothing sent before the end"
        );
        sink.finish().unwrap();
        assert_eq!(wakes.notified.load(Ordering::SeqCst), 1);
        assert_eq!(wakes.urgent.load(Ordering::SeqCst), 0);
        assert_eq!(kinds(&drain(&c)), "start data5 data7 finish");
    }

    #[test]
    fn a_queued_channel_is_not_woken_twice() {
        let (c, wakes) = channel();
        let mut sink = NginxSink::new(c.clone());
        sink.start(head()).unwrap();
        sink.flush().unwrap();
        sink.write(Chunk::owned(vec![0; 10])).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            wakes.notified.load(Ordering::SeqCst),
            1,
            "one wake-up per batch"
        );
        assert_eq!(c.lock().pending, 10, "body bytes are counted");
        assert_eq!(kinds(&drain(&c)), "start flush data10 flush");
        sink.finish().unwrap();
        assert_eq!(
            wakes.notified.load(Ordering::SeqCst),
            2,
            "drained, so woken again"
        );
    }

    #[test]
    fn a_batch_is_handed_over_at_batch_bytes_without_a_flush() {
        let (c, wakes) = channel();
        let mut sink = NginxSink::new(c.clone());
        sink.start(head()).unwrap();
        for _ in 0..4 {
            sink.write(Chunk::owned(vec![0; 16 * 1024])).unwrap();
        }
        assert_eq!(wakes.notified.load(Ordering::SeqCst), 0, "64 KiB still fit");
        sink.write(Chunk::owned(vec![0; 1])).unwrap();
        assert_eq!(wakes.notified.load(Ordering::SeqCst), 1);
        let sent = drain(&c);
        assert_eq!(
            kinds(&sent),
            "start data16384 data16384 data16384 data16384"
        );
    }

    #[test]
    fn control_messages_are_urgent() {
        let (c, wakes) = channel();
        c.send_control(Msg::ReadBody).unwrap();
        assert_eq!(wakes.urgent.load(Ordering::SeqCst), 1);
        assert_eq!(kinds(&drain(&c)), "read");
    }

    /// A body reader; counts the failures that say the request ended.
    struct Body(AtomicUsize);
    impl FailsWith for Body {
        fn fail(&self, why: &str) {
            if why.contains("ended") {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn a_closed_channel_refuses_writes_and_fails_the_body() {
        let (c, _) = channel();
        let body = Arc::new(Body(AtomicUsize::new(0)));
        assert!(c.body.set(body.clone()).is_ok());
        let mut sink = NginxSink::new(c.clone());
        sink.start(head()).unwrap();
        c.close();
        assert_eq!(body.0.load(Ordering::SeqCst), 1, "the body reader is woken");
        let e = sink.finish().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(
            c.lock().msgs.is_empty(),
            "nothing is queued for a gone request"
        );
        assert!(c.send_control(Msg::ReadBody).is_err());
    }

    /// Past the high-water mark a writer waits (after waking the loop for
    /// what it deferred) until the loop makes room.
    #[test]
    fn a_writer_past_the_high_water_mark_waits_for_room() {
        let (c, wakes) = channel();
        c.lock().in_nginx = RESPONSE_HIGH_WATER + 1;
        let writer = {
            let c = c.clone();
            thread::spawn(move || {
                let mut sink = NginxSink::new(c);
                sink.write(Chunk::owned(vec![1; 100]))
            })
        };
        thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished(), "the writer waits");
        assert_eq!(
            wakes.flushed.load(Ordering::SeqCst),
            1,
            "deferred wake-ups go out first"
        );
        c.lock().in_nginx = 0;
        c.wake_writer();
        writer.join().unwrap().unwrap();
    }

    #[test]
    fn a_waiting_writer_fails_when_the_request_goes() {
        let (c, _) = channel();
        c.lock().in_nginx = RESPONSE_HIGH_WATER + 1;
        let writer = {
            let c = c.clone();
            thread::spawn(move || NginxSink::new(c).write(Chunk::owned(vec![1; 100])))
        };
        thread::sleep(Duration::from_millis(50));
        c.close();
        let e = writer.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn an_expired_request_is_answered_after_what_is_queued_and_refuses_more() {
        let (c, wakes) = channel();
        let body = Arc::new(Body(AtomicUsize::new(0)));
        assert!(c.body.set(body.clone()).is_ok());
        let mut sink = NginxSink::new(c.clone());
        sink.start(head()).unwrap();
        sink.flush().unwrap();
        let expire = sink.timeout_action().unwrap();
        expire();
        assert_eq!(
            wakes.notified.load(Ordering::SeqCst),
            1,
            "already queued: no second wake-up"
        );
        assert_eq!(
            body.0.load(Ordering::SeqCst),
            0,
            "fails with its own reason"
        );
        assert!(sink.write(Chunk::owned(b"late".to_vec())).is_err());
        assert!(sink.finish().is_err());
        assert_eq!(kinds(&drain(&c)), "start flush timeout");
        c.expire();
        assert!(drain(&c).is_empty(), "expired once");
    }

    #[test]
    fn may_block_counts_what_is_queued_in_nginx_and_in_the_batch() {
        let (c, _) = channel();
        let mut sink = NginxSink::new(c.clone());
        assert!(!sink.may_block());
        sink.write(Chunk::owned(vec![0; RESPONSE_HIGH_WATER / 4]))
            .unwrap();
        assert!(!sink.may_block());
        c.lock().in_nginx = RESPONSE_HIGH_WATER / 4 + 1;
        assert!(sink.may_block());
    }
}

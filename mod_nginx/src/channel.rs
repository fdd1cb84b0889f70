//! From a Python thread back to the event loop: each request has a `Channel`
//! of messages (headers, chunks, end). A Python thread pushes and wakes the
//! event loop through the worker's notifier; the event loop drains. Body
//! bytes that nginx has not sent yet count against a high-water mark, and a
//! Python thread that would pass it waits: a slow client slows the app down
//! instead of growing memory.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::sync::atomic::AtomicPtr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use oxwsgi_core::{Chunk, ResponseHead, ResponseSink};

use crate::worker;

/// Body bytes allowed between the app and the client before the app waits.
pub const HIGH_WATER: usize = 256 * 1024;

pub enum Msg {
    Start(ResponseHead),
    Data(Chunk),
    Flush,
    File {
        file: File,
        offset: u64,
        len: u64,
    },
    Finish,
    Abort,
    /// An error page of nginx's making (the app failed before its headers).
    Error(u16),
}

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
}

#[derive(Default)]
pub struct Channel {
    state: Mutex<State>,
    room: Condvar,
    /// The request's output state (`output::ReqCtx`) while the request lives;
    /// set and cleared on the event loop thread only.
    pub target: AtomicPtr<c_void>,
}

impl Channel {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by the event loop when bytes left nginx or the request ended.
    pub fn wake_writer(&self) {
        self.room.notify_all();
    }

    /// Marks the channel dead (the request was finalised or its pool freed).
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.msgs.clear();
        drop(st);
        self.room.notify_all();
    }

    fn push(self: &Arc<Self>, msg: Msg) -> io::Result<()> {
        let mut st = self.lock();
        if st.closed {
            return Err(gone());
        }
        if let Msg::Data(c) = &msg {
            st.pending += c.len();
        }
        st.msgs.push_back(msg);
        let first = !st.queued;
        st.queued = true;
        drop(st);
        if first {
            worker::notify(self.clone());
        }
        Ok(())
    }

    /// Waits until the body in flight is under the high-water mark.
    fn wait_for_room(&self) -> io::Result<()> {
        let mut st = self.lock();
        while !st.closed && st.pending + st.in_nginx > HIGH_WATER {
            st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.closed { Err(gone()) } else { Ok(()) }
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the client or the request is gone",
    )
}

/// The core's `ResponseSink` for nginx: runs on a Python thread.
pub struct NginxSink(pub Arc<Channel>);

impl ResponseSink for NginxSink {
    fn start(&mut self, head: &ResponseHead) -> io::Result<()> {
        self.0.push(Msg::Start(head.clone()))
    }

    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        self.0.wait_for_room()?;
        self.0.push(Msg::Data(chunk))
    }

    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        self.0.wait_for_room()?;
        self.0.push(Msg::File { file, offset, len })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.push(Msg::Flush)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.0.push(Msg::Finish)
    }

    fn abort(&mut self) {
        let _ = self.0.push(Msg::Abort);
    }

    fn error(&mut self, status: u16) -> io::Result<()> {
        self.0.push(Msg::Error(status))
    }
}

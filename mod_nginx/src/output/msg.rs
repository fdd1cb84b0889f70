//! What a Python thread sends the event loop about a request, and how much
//! response may be between the app and the client: the vocabulary that the
//! channel (which carries it), the body pipe and the output (which apply it)
//! share.

use std::fs::File;

use oxwsgi_core::{Chunk, ResponseHead};

/// Response body bytes allowed between the app and the client (queued for
/// the event loop, or handed to nginx and not sent yet) before the app
/// waits: a slow client slows the app down instead of growing memory.
pub const RESPONSE_HIGH_WATER: usize = 256 * 1024;

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
    /// The app caught up with the request body: read more of it.
    ReadBody,
    /// The request passed its timeout: 504, or cut what was sent.
    Timeout,
}

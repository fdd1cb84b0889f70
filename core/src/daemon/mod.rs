//! Process groups: apps served by daemon processes of their own (mod_wsgi's
//! daemon mode; nginx's `wsgi_daemon_process`), reached over a unix socket.
//!
//! - `protocol/`: what the two sides say: `frame` (the frames, the
//!   encoding of heads), `auth` (who may talk to a daemon: the peer's user,
//!   the group's token), `exchange` (the server's side of one request,
//!   without I/O: both servers read the daemon with it);
//! - `server/`: the server's side: `group` (the daemons of a group, forked
//!   from the server's parent, replaced when they die, stopped with the
//!   server), `manager` (a process that owns a server's groups, for servers
//!   whose master reaps every child itself: nginx), `listen` (where a
//!   group's socket is made), `reach` (what a group's user can open,
//!   checked with the configuration), `proxy` (blocking I/O with pooled
//!   connections: Apache);
//! - `process/`: the daemon's side: `entry` (from fork to exit, and after
//!   `exec`), `exec` and `handoff` (becoming the virtualenv's own Python
//!   with oxwsgi's daemon extension module, and what it carries over),
//!   `dispatch` (the threads on one epoll set of one-shot connections, so
//!   only a request holds a Python thread), `serve` (a request run by the
//!   core's engine exactly as embedded), `life` (when a daemon ends, and
//!   how), `stderr_log` (log lines in the server's error log format);
//! - shared by both sides: `options` (a group's options as mod_wsgi spells
//!   them, taken or refused by name), `spec` (what a group is made of, as
//!   the parent hands it to its daemons), `sys` (the system calls std does
//!   not offer).
//!
//! # The protocol
//!
//! A connection carries one request at a time, and then the next: the
//! server keeps idle connections and reuses them. Every frame is a kind
//! byte, a little-endian `u32` length and that many bytes.
//!
//! 0. On a new connection the server first sends `Hello` with the group's
//!    token (`auth`); the daemon closes a connection whose first frame is
//!    anything else, or that sends none within a few seconds, and accepts
//!    connections only from the server's users. A daemon answers every
//!    connection it takes with `Accepted` at once, from a thread of its
//!    own (busy or not); the server sends the first request only then, and
//!    answers 503 if none came within its connect timeout: a request that
//!    no daemon took was never sent, so it never ran.
//! 1. The server sends `Head`: tagged fields (`tag: u8`, `len: u32`,
//!    bytes) naming the app (its number in the group), the method, URI,
//!    path, query, protocol, scheme, server and client addresses, how the
//!    body comes (`none`, a length, `chunked`), the headers as received and
//!    the server's extra environ variables.
//! 2. The daemon runs the app. When the app reads `wsgi.input`, the daemon
//!    sends `Read(n)`; the server answers with one `Body` frame of at most
//!    `n` bytes (what the client has sent so far), an empty `Body` at the
//!    body's end, or `BodyError` with a message. Body bytes therefore move
//!    only when the app asks for them: a 1 GiB upload never sits in either
//!    process, and neither side can block the other by writing while the
//!    other writes (the server only writes body when asked, and the daemon
//!    reads it before it writes anything else).
//! 3. The daemon sends `ResponseHead`, then `Data` and `Flush` frames as
//!    the app produces them, and ends with exactly one of `End` (complete),
//!    `Abort` (cut the response: an error after the headers) or `Error`
//!    (`u16` status: the server answers with its own error page). After
//!    that the connection is idle again.
//!    A daemon that is going (its WSGI script changed: the group restarts,
//!    as mod_wsgi's daemons do) answers `Retry` instead, before it runs the
//!    app or reads any body, and closes the connection; the server sends
//!    the request again on a new connection, to another daemon or to the
//!    replacement.
//! 4. A client that goes away: the server closes the connection instead
//!    of reusing it; the daemon's next write fails, which stops the app's
//!    iteration and runs its `close()`, as in embedded mode. The response
//!    flows back with the socket's own backpressure: a slow client slows
//!    the server's reads, and with them the app's writes.

pub mod options;
pub mod process;
pub mod protocol;
pub mod server;
pub mod spec;
mod sys;

pub use process::entry::serve_in_python;

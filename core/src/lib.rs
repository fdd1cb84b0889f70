//! oxwsgi-core: the server-neutral WSGI engine. It embeds CPython and turns a
//! server's request into `environ` and the app's answer into a response; the
//! nginx and Apache modules only move bytes and events.
//!
//! A request flows top to bottom through these (build/circles.py keeps
//! every dependency pointing one way):
//!
//! ```text
//! a server module (mod_nginx, mod_apache): a Request in, a ResponseSink out
//!   -> handler        one request end to end (app: the app and its options)
//!        request/     Request, Body, environ, wsgi.input, body_pipe, proxy_headers
//!        response/    ResponseHead, start_response, responder, sink, file_wrapper, gzip
//!        python/      interpreter, embed, app_group, logstream, traceback
//!   -> daemon/        the same request in a process group's daemon:
//!        protocol/    frame, auth, exchange (what both sides say)
//!        server/      group, manager, listen, reach, proxy (the server's side)
//!        process/     entry, exec, handoff, dispatch, serve, life, stderr_log
//!   ops/              metrics, group_metrics, status, health, recycle, timeouts
//! ```
//!
//! - `handler`: one request end to end, where a request crosses into
//!   Python; `app`: loading apps from scripts or `module:callable`, and
//!   their options; `check`: loading one as a server would (`oxwsgi check`).
//! - `request/`: what a server hands over (the `Request` trait, `Body`,
//!   `OwnedRequest`) and what the app reads (`environ`, `wsgi.input`).
//! - `response/`: what the app answers, checked (`ResponseHead`) and carried
//!   to the server's `ResponseSink`.
//! - `python/`: the interpreter, the raw CPython calls, application groups,
//!   the log streams and tracebacks.
//! - `daemon/`: process groups: the protocol, the server's side and the
//!   daemon's side (its own map).
//! - `ops/`: what production runs on: shared metrics, the status page,
//!   health and draining, recycling, request timeouts.
//! - `auth_script`: Apache's auth and dispatch scripts, called with a
//!   request's environ; `conf`: directive values both servers parse alike.
//! - `guard`: the one door from a server into Rust (panics stop there);
//!   `testing`: a server made of memory, for tests and benchmarks; `sync`:
//!   locks that survive a panic elsewhere (`Recover`).

pub mod app;
pub mod auth_script;
pub mod check;
pub mod conf;
pub mod daemon;
pub mod guard;
pub mod handler;
pub mod ops;
pub mod python;
pub mod request;
pub mod response;
pub mod sync;
pub mod testing;

pub use app::{App, AppOptions, AppSource, AppSpec};
pub use handler::{handle, handle_after_wait};
pub use python::embed::ensure_thread_state;
pub use python::interpreter::{InitError, Interpreter, InterpreterConfig};
pub use request::{Body, BodyStream, OwnedRequest, Request};
pub use response::ResponseHead;
pub use response::responder::Outcome;
pub use response::sink::{Chunk, ResponseSink};

//! oxwsgi-core: the server-neutral WSGI engine. It embeds CPython and turns a
//! server's request into `environ` and the app's answer into a response; the
//! nginx and Apache modules only move bytes and events.
//!
//! Where things live:
//! - `interpreter`: the worker's Python (config, `python_home`, start, or
//!   adopting the Python a group's daemon became; shutdown);
//!   `embed`: the only raw CPython calls (init, thread states, bytes views).
//! - `auth_script`: Apache's auth scripts (`check_password`,
//!   `groups_for_user`), called with a request's environ;
//! - `app`: loading apps from scripts or `module:callable`, per-app options;
//!   `check`: loading one the way a server would, for `oxwsgi check`;
//!   `app_group`: application groups, the sub-interpreters apps run in;
//!   `conf`: directive values both servers parse alike (sizes, flags, paths).
//! - `request`: the `Request` trait servers implement, `Body`, and
//!   `OwnedRequest` (a request copied out of a server, or built in code).
//! - `environ`: building `environ` (PEP 3333 names and types);
//!   `proxy_headers`: trusting a front proxy's `X-Forwarded-*` headers.
//! - `daemon`: process groups: the protocol between a server and its
//!   daemon processes, the daemon's side and the server's (pooled) side;
//! - `input`: `wsgi.input`; `body_pipe`: a body arriving on a server's event
//!   loop while the app reads it (backpressure, reused buffers);
//!   `logstream`: `sys.stdout`/`stderr`/`wsgi.errors`.
//! - `handler`: one request end to end — where a request crosses into Python.
//! - `start_response`: `start_response`, `write()`, and `without_gil` for
//!   responder calls; `file_wrapper`: `wsgi.file_wrapper`.
//! - `responder`: the response state machine (headers, Content-Length, gzip,
//!   abort); `response`: status/header rules; `gzip`: compression both ways.
//! - `sink`: the `ResponseSink` trait servers implement, and `Chunk`.
//! - `metrics`: counters, histograms and the requests in flight, in memory
//!   all of a server's processes share;
//! - `group_metrics`: each process group's own metrics region, and the
//!   server's view over all of them;
//! - `status`: the status page from a metrics snapshot (Prometheus, JSON,
//!   HTML); `health`: liveness and readiness for load balancers (draining);
//! - `recycle`: when a process's Python should be replaced (max requests
//!   with jitter, max RSS, a stuck thread);
//! - `timeouts`: the request timeout watchdog (504, `oxwsgi.RequestTimeout`
//!   raised in the app's thread, stuck threads reported to the server);
//! - `guard`: the one door from a server into Rust (panics stop there);
//! - `errors`: tracebacks to the log; `memory`: the in-memory adapter;
//!   `sync`: locks that survive a panic elsewhere (`Recover`).

pub mod app;
pub mod auth_script;
pub mod check;
pub mod conf;
pub mod daemon;
pub mod guard;
pub mod handler;
pub mod memory;
pub mod ops;
pub mod python;
pub mod request;
pub mod response;
pub mod sync;

pub use app::{App, AppOptions, AppSource, AppSpec};
pub use handler::{handle, handle_after_wait};
pub use python::embed::ensure_thread_state;
pub use python::interpreter::{InitError, Interpreter, InterpreterConfig};
pub use request::{Body, BodyStream, OwnedRequest, Request};
pub use response::ResponseHead;
pub use response::responder::Outcome;
pub use response::sink::{Chunk, ResponseSink};

//! Python itself: the interpreter a process runs (`interpreter`: config,
//! `python_home`, start, adopting the one a group's daemon became,
//! shutdown), the only raw CPython calls (`embed`), the sub-interpreters
//! apps run in (`app_group`), `sys.stdout`/`stderr`/`wsgi.errors` into the
//! server's log (`logstream`), and tracebacks reported there (`traceback`).

pub mod app_group;
pub(crate) mod embed;
pub mod interpreter;
pub mod logstream;
pub mod traceback;

//! One request, end to end: where a request crosses from a server into Python.
//!
//! `handle` runs on a server thread without the GIL. It prepares the body
//! (inflating gzip when enabled), attaches to Python once, builds `environ`,
//! calls the app, and drives its response into the sink, releasing the GIL
//! around every sink call. Whatever happens, the iterable's `close()` is
//! called once, and no panic leaves this function.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};

use crate::app::App;
use crate::ops::metrics;
use crate::ops::timeouts;
use crate::python::embed;
use crate::python::traceback::{log_py_err, type_name};
use crate::request::environ::{self, BodyInfo};
use crate::request::input::Input;
use crate::request::{Body, Request};
use crate::response::file_wrapper::FileWrapper;
use crate::response::gzip::{self, InflateError};
use crate::response::responder::{GzipPolicy, Outcome, Responder, WriteError, error_page};
use crate::response::sink::{Chunk, ResponseSink};
use crate::response::start_response::{StartResponse, send_chunk, without_gil};

/// Serves one request with `app`, writing the response into `sink`.
pub fn handle<R: Request + ?Sized>(app: &App, req: &mut R, sink: Box<dyn ResponseSink>) -> Outcome {
    serve(app, req, sink, std::time::Duration::ZERO)
}

fn serve<R: Request + ?Sized>(
    app: &App,
    req: &mut R,
    sink: Box<dyn ResponseSink>,
    waited: std::time::Duration,
) -> Outcome {
    let slot = app.metrics_slot();
    let running = slot.map(|_| {
        let uri = req.uri();
        let path = uri.split(|b| *b == b'?').next().unwrap_or(uri);
        metrics::begin(
            slot,
            &metrics::Started {
                method: req.method(),
                path,
                client: req.remote_addr(),
                thread: crate::python::embed::thread_ident(),
                waited,
            },
        )
    });
    let mut tally = metrics::Finished::default();
    let outcome = serve_counted(app, req, sink, &mut tally);
    if let Some(running) = running {
        if let Outcome::Error(status) = outcome {
            tally.status = status;
        }
        if tally.timed_out && tally.status == 0 {
            // The server answered for the app.
            tally.status = 504;
        }
        metrics::finish(running, &tally);
    }
    outcome
}

fn serve_counted<R: Request + ?Sized>(
    app: &App,
    req: &mut R,
    sink: Box<dyn ResponseSink>,
    tally: &mut metrics::Finished,
) -> Outcome {
    let body = req.take_body();
    let req: &R = req;
    let context = Context {
        app: app.name(),
        method: req.method(),
        uri: req.uri(),
    };
    let mut sink = Some(sink);
    let mut owner: Option<Py<StartResponse>> = None;
    // Tracing at the server's debug level; off, it costs one atomic load.
    let started = log::log_enabled!(target: "oxwsgi", log::Level::Debug).then(|| {
        log::debug!(target: "oxwsgi", "{context}: calling the app");
        std::time::Instant::now()
    });
    let result = catch_unwind(AssertUnwindSafe(|| {
        run(app, req, body, &mut sink, &mut owner, &context, tally)
    }));
    if let (Some(t), Ok(outcome)) = (started, &result) {
        log::debug!(
            target: "oxwsgi",
            "{context}: app done, response {outcome:?}, {:?} after the call",
            t.elapsed()
        );
    }
    match result {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = crate::guard::panic_message(&*panic);
            log::error!(target: "oxwsgi", "{context}: internal error (panic): {what}");
            recover(sink, owner)
        }
    }
}

/// Serves a request that waited `waited` for a Python thread: refused when
/// that passed the app's queue timeout (`refuse_queued`), else as `handle`.
pub fn handle_after_wait<R: Request + ?Sized>(
    app: &App,
    req: &mut R,
    sink: Box<dyn ResponseSink>,
    waited: std::time::Duration,
) -> Outcome {
    if queue_expired(app, waited) {
        return refuse_queued(app, req, waited, sink);
    }
    serve(app, req, sink, waited)
}

/// Whether a request that waited `waited` for a thread is past its app's
/// queue timeout.
pub fn queue_expired(app: &App, waited: std::time::Duration) -> bool {
    app.options()
        .queue_timeout
        .is_some_and(|limit| waited >= limit)
}

/// Answers a request that waited too long for a Python thread: 503 with
/// `Retry-After` (or the app's `queue_timeout_status`), and the app never
/// sees it (it would answer a client that has likely given up, while newer
/// requests wait behind it).
pub fn refuse_queued<R: Request + ?Sized>(
    app: &App,
    req: &R,
    waited: std::time::Duration,
    mut sink: Box<dyn ResponseSink>,
) -> Outcome {
    let context = Context {
        app: app.name(),
        method: req.method(),
        uri: req.uri(),
    };
    metrics::queue_timed_out(app.metrics_slot(), waited);
    let limit = app.options().queue_timeout.unwrap_or_default();
    let status = app.options().queue_timeout_status;
    log::warn!(
        target: "oxwsgi",
        "{context}: waited {:.3} s for a Python thread (queue timeout {:.3} s); answering {status}",
        waited.as_secs_f64(),
        limit.as_secs_f64()
    );
    let (line, text) = crate::response::sink::error_text(status);
    let body = format!("{line}\n\n{text}\n").into_bytes();
    let mut headers = vec![
        ("Content-Type".into(), "text/plain; charset=utf-8".into()),
        ("Content-Length".into(), body.len().to_string()),
    ];
    if status == 503 {
        headers.push(("Retry-After".into(), limit.as_secs().max(1).to_string()));
    }
    let head = crate::ResponseHead {
        status,
        status_line: line.to_string(),
        headers,
    };
    let sent = sink
        .start(head)
        .and_then(|()| sink.write(Chunk::owned(body)))
        .and_then(|()| sink.finish());
    match sent {
        Ok(()) => Outcome::Error(status),
        Err(_) => Outcome::ClientGone,
    }
}

/// Names the app and the request in log lines; formatted only when a line
/// is logged, so a request that goes well costs nothing here.
pub(crate) struct Context<'a> {
    app: &'a str,
    method: &'a [u8],
    uri: &'a [u8],
}

impl std::fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "app {}: {} {}",
            self.app,
            String::from_utf8_lossy(self.method),
            String::from_utf8_lossy(self.uri)
        )
    }
}

/// After a panic: answer 500 or abort, with whatever still holds the sink.
fn recover(sink: Option<Box<dyn ResponseSink>>, owner: Option<Py<StartResponse>>) -> Outcome {
    if let Some(mut sink) = sink {
        return error_page(&mut *sink, 500);
    }
    let Some(owner) = owner else {
        return Outcome::Aborted;
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|py| {
            let taken = owner.get().lock(py).take();
            taken.map_or(Outcome::Aborted, |mut r| r.fail(500))
        })
    }));
    r.unwrap_or(Outcome::Aborted)
}

fn run<R: Request + ?Sized>(
    app: &App,
    req: &R,
    mut body: Body,
    sink_slot: &mut Option<Box<dyn ResponseSink>>,
    owner_slot: &mut Option<Py<StartResponse>>,
    context: &Context<'_>,
    tally: &mut metrics::Finished,
) -> Outcome {
    let opts = app.options();
    let mut info = BodyInfo {
        inflated_len: None,
        terminated: req.body_is_chunked(),
    };
    let mut gzip_policy = GzipPolicy::default();
    if opts.gzip || opts.inflate_request {
        let mut content_encoding = None;
        let mut accept_encoding = None;
        req.for_each_header(&mut |n, v| {
            if n.eq_ignore_ascii_case(b"content-encoding") {
                content_encoding.get_or_insert_with(|| v.to_vec());
            } else if n.eq_ignore_ascii_case(b"accept-encoding") {
                accept_encoding.get_or_insert_with(|| v.to_vec());
            }
        });
        gzip_policy = GzipPolicy {
            enabled: opts.gzip,
            client_accepts: accept_encoding.is_some_and(|v| gzip::accepts_gzip(&v)),
        };
        let gzipped = content_encoding.is_some_and(|v| {
            let v = v.trim_ascii();
            v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip")
        });
        if opts.inflate_request && gzipped {
            match gzip::inflate(body.into_reader(), opts.inflate_max) {
                Ok(data) => {
                    info.inflated_len = Some(data.len() as u64);
                    info.terminated = true;
                    body = Body::Memory(data);
                }
                Err(e) => {
                    let status = match e {
                        InflateError::TooLarge { .. } => 413,
                        InflateError::Corrupt(_) => 400,
                        InflateError::Read(_) => 400,
                    };
                    log::warn!(target: "oxwsgi", "{context}: {e}; answering {status}");
                    let mut sink = sink_slot.take().expect("sink present before the app runs");
                    return error_page(&mut *sink, status);
                }
            }
        }
    }

    // A group's request makes its thread's states as it enters
    // (`app_group::attach`); binding the main one first would cost a round
    // of the GIL per request from Python 3.12.
    if opts.application_group.is_empty() {
        embed::ensure_thread_state();
    }
    let ran = crate::python::app_group::attach(&opts.application_group, |py| {
        run_in_group(
            py,
            app,
            req,
            body,
            info,
            gzip_policy,
            sink_slot,
            owner_slot,
            context,
            tally,
        )
    });
    ran.unwrap_or_else(|e| {
        log::error!(target: "oxwsgi", "{context}: {e}");
        let mut sink = sink_slot.take().expect("sink present before the app runs");
        error_page(&mut *sink, 500)
    })
}

/// The app's part of a request, in its application group's interpreter.
#[allow(clippy::too_many_arguments)]
fn run_in_group<R: Request + ?Sized>(
    py: Python<'_>,
    app: &App,
    req: &R,
    body: Body,
    info: BodyInfo,
    gzip_policy: GzipPolicy,
    sink_slot: &mut Option<Box<dyn ResponseSink>>,
    owner_slot: &mut Option<Py<StartResponse>>,
    context: &Context<'_>,
    tally: &mut metrics::Finished,
) -> Outcome {
    let opts = app.options();
    let Some(loaded) = app.loaded(py) else {
        let mut sink = sink_slot.take().expect("sink present before the app runs");
        return error_page(&mut *sink, 500);
    };
    let is_head = req.method() == b"HEAD";
    let sink = sink_slot.take().expect("sink present before the app runs");
    let watched = opts.request_timeout.map(|limit| {
        let action = sink.timeout_action();
        timeouts::watch(py, limit, context.to_string(), action)
    });
    let responder = Responder::new(sink, gzip_policy, is_head);
    let owner = match Bound::new(py, StartResponse::new(responder)) {
        Ok(o) => o,
        Err(e) => {
            log_py_err(py, &e, context);
            return Outcome::Aborted;
        }
    };
    *owner_slot = Some(owner.clone().unbind());
    let outcome = call_app(
        py,
        &loaded.callable,
        &loaded.template,
        app,
        req,
        body,
        info,
        &owner,
        context,
        tally,
    );
    if let Some(w) = watched {
        tally.timed_out = w.end(py);
    }
    // The request is over: a start_response or write() kept by the app
    // must not reach this response any more.
    if let Some(mut r) = owner.get().lock(py).take() {
        tally.status = r.status();
        tally.bytes_out = r.body_bytes();
        for note in r.take_notes() {
            log::log!(target: "oxwsgi", note.level, "{context}: {}", note.text);
        }
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
fn call_app<'py, R: Request + ?Sized>(
    py: Python<'py>,
    callable: &Py<PyAny>,
    template: &Py<pyo3::types::PyDict>,
    app: &App,
    req: &R,
    body: Body,
    info: BodyInfo,
    owner: &Bound<'py, StartResponse>,
    context: &Context<'_>,
    tally: &mut metrics::Finished,
) -> Outcome {
    // A streamed body's length lets large reads go straight into the bytes
    // object the app gets.
    let length = match body {
        Body::Stream(_) | Body::File(_) if !info.terminated => content_length(req),
        _ => None,
    };
    let input = match Bound::new(py, Input::with_length(body, length)) {
        Ok(i) => i,
        Err(e) => {
            log_py_err(py, &e, context);
            return fail(py, owner, 500);
        }
    };
    let environ = environ::build(
        py,
        template.bind(py),
        app.options().mount.as_bytes(),
        req,
        input.clone().into_any(),
        info,
    );
    let environ = match environ {
        Ok(e) => e,
        Err(e) => {
            log_py_err(py, &e, context);
            return fail(py, owner, 500);
        }
    };
    let result = match callable.bind(py).call1((environ, owner)) {
        Ok(r) => r,
        Err(e) => {
            tally.exception = !is_request_timeout(py, &e);
            return app_failed(py, &e, owner, context);
        }
    };
    let outcome = deliver(py, &result, owner, context, tally);
    close_iterable(py, &result, context);
    tally.bytes_in = input.get().consumed();
    outcome
}

fn content_length<R: Request + ?Sized>(req: &R) -> Option<u64> {
    let mut found = None;
    req.for_each_header(&mut |n, v| {
        if found.is_none() && n.eq_ignore_ascii_case(b"content-length") {
            found = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        }
    });
    found
}

/// What went wrong while delivering the app's response.
enum Failure {
    /// An exception from the app (logged with its traceback).
    Python(PyErr),
    /// A WSGI contract violation, with the message that names it.
    Contract(String),
    /// The client went away.
    Gone,
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Python(e)
    }
}

fn write_failure(e: WriteError) -> Failure {
    match e {
        WriteError::NotStarted => {
            Failure::Contract("application produced body data before calling start_response".into())
        }
        WriteError::Gone(_) | WriteError::Closed => Failure::Gone,
    }
}

fn deliver<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
    owner: &Bound<'py, StartResponse>,
    context: &Context<'_>,
    tally: &mut metrics::Finished,
) -> Outcome {
    let r = if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        deliver_sequence(py, result, owner)
    } else if let Ok(wrapper) = result.cast::<FileWrapper>() {
        deliver_file(py, wrapper, owner).and_then(|sent| match sent {
            true => finish(py, owner),
            false => deliver_iter(py, result, owner),
        })
    } else {
        deliver_iter(py, result, owner)
    };
    match r {
        Ok(o) => o,
        Err(Failure::Python(e)) => {
            tally.exception = !is_request_timeout(py, &e);
            app_failed(py, &e, owner, context)
        }
        Err(Failure::Contract(msg)) => {
            log::error!(target: "oxwsgi", "{context}: {msg}");
            fail(py, owner, 500)
        }
        Err(Failure::Gone) => {
            log::info!(target: "oxwsgi", "{context}: client closed the connection before the response was complete");
            if let Some(r) = owner.get().lock(py).as_mut() {
                r.client_gone();
            }
            Outcome::ClientGone
        }
    }
}

/// The app raised `e`: 500 with the traceback in the log, or 504 for the
/// request timeout (the watchdog logged where the app was).
fn app_failed(
    py: Python<'_>,
    e: &PyErr,
    owner: &Bound<'_, StartResponse>,
    context: &Context<'_>,
) -> Outcome {
    if is_request_timeout(py, e) {
        log::info!(target: "oxwsgi", "{context}: the app stopped at oxwsgi.RequestTimeout");
        return fail(py, owner, 504);
    }
    log_py_err(py, e, context);
    fail(py, owner, 500)
}

/// Whether `e` is the request timeout's `oxwsgi.RequestTimeout`.
fn is_request_timeout(py: Python<'_>, e: &PyErr) -> bool {
    py.import("oxwsgi")
        .and_then(|m| m.getattr("RequestTimeout"))
        .is_ok_and(|t| e.is_instance(py, &t))
}

fn fail(py: Python<'_>, owner: &Bound<'_, StartResponse>, status: u16) -> Outcome {
    match owner.get().lock(py).as_mut() {
        Some(r) => r.fail(status),
        None => Outcome::Aborted,
    }
}

/// Checks one body item and wraps it without copying.
fn chunk_of(item: Bound<'_, PyAny>, index: usize) -> Result<Chunk, Failure> {
    match item.cast_into::<PyBytes>() {
        Ok(b) => Ok(Chunk::from_bytes(b)),
        Err(e) => Err(Failure::Contract(item_error(
            e.into_inner().as_any(),
            index,
        ))),
    }
}

fn item_error(item: &Bound<'_, PyAny>, index: usize) -> String {
    let t = type_name(item);
    if item.is_instance_of::<PyString>() {
        format!("application returned str (body item {index}), WSGI needs bytes: encode it")
    } else {
        format!("application returned {t} as body item {index}, WSGI needs bytes")
    }
}

/// A list or tuple: the whole body is known, so it goes out in one go with
/// its Content-Length (or compressed whole).
fn deliver_sequence<'py>(
    py: Python<'py>,
    seq: &Bound<'py, PyAny>,
    owner: &Bound<'py, StartResponse>,
) -> Result<Outcome, Failure> {
    let items: Vec<Bound<'py, PyAny>> = match seq.cast::<PyList>() {
        Ok(l) => l.iter().collect(),
        Err(_) => seq.cast::<PyTuple>().map_err(PyErr::from)?.iter().collect(),
    };
    let mut chunks = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        chunks.push(chunk_of(item, i)?);
    }
    let mut guard = owner.get().lock(py);
    let r = started(&mut guard)?;
    without_gil(py, r, |r| r.write_all(chunks)).map_err(write_failure)
}

/// Any other iterable: each item is sent (and flushed) as it comes, so
/// generators stream.
fn deliver_iter<'py>(
    py: Python<'py>,
    iterable: &Bound<'py, PyAny>,
    owner: &Bound<'py, StartResponse>,
) -> Result<Outcome, Failure> {
    if let Some(msg) = not_an_iterable_of_bytes(iterable) {
        return Err(Failure::Contract(msg));
    }
    let iter = iterable.try_iter().map_err(|_| {
        Failure::Contract(format!(
            "application returned {}, which is not iterable: WSGI needs an iterable of bytes",
            type_name(iterable)
        ))
    })?;
    for (i, item) in iter.enumerate() {
        let chunk = chunk_of(item?, i)?;
        send_chunk(py, owner, chunk, true)?.map_err(write_failure)?;
    }
    finish(py, owner)
}

/// Catches the classic mistakes of returning a single value.
fn not_an_iterable_of_bytes(obj: &Bound<'_, PyAny>) -> Option<String> {
    if obj.is_none() {
        Some("application returned None: it must return an iterable of bytes, e.g. [body]".into())
    } else if obj.is_instance_of::<PyString>() {
        Some("application returned str, WSGI needs bytes: encode it and return [body]".into())
    } else if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        Some(format!(
            "application returned {} itself, WSGI needs an iterable of bytes: return [body]",
            type_name(obj)
        ))
    } else {
        None
    }
}

fn finish(py: Python<'_>, owner: &Bound<'_, StartResponse>) -> Result<Outcome, Failure> {
    let mut guard = owner.get().lock(py);
    let r = started(&mut guard)?;
    without_gil(py, r, |r| r.finish()).map_err(write_failure)
}

/// The request's responder, once the app has called start_response.
fn started(guard: &mut Option<Responder>) -> Result<&mut Responder, Failure> {
    let Some(r) = guard.as_mut() else {
        return Err(Failure::Gone);
    };
    if !r.has_head() {
        return Err(Failure::Contract(
            "application returned without calling start_response".into(),
        ));
    }
    Ok(r)
}

/// `wsgi.file_wrapper` over a real file: sends it with the server's sendfile.
/// Returns false when the file-like has no usable descriptor (the caller then
/// iterates it) or when the response is being compressed.
fn deliver_file<'py>(
    py: Python<'py>,
    wrapper: &Bound<'py, FileWrapper>,
    owner: &Bound<'py, StartResponse>,
) -> Result<bool, Failure> {
    let filelike = wrapper.get().filelike.clone_ref(py);
    let filelike = filelike.bind(py);
    {
        match owner.get().lock(py).as_mut() {
            Some(r) if r.may_send_file() => {}
            _ => return Ok(false),
        }
    }
    let Some(fd) = filelike
        .call_method0("fileno")
        .ok()
        .and_then(|f| f.extract::<i32>().ok())
    else {
        return Ok(false);
    };
    let file = match embed::dup_fd(fd) {
        Ok(f) => f,
        Err(_) => return Ok(false),
    };
    let meta = match file.metadata() {
        Ok(m) if m.is_file() => m,
        _ => return Ok(false),
    };
    // tell() knows about Python's own read-ahead buffer; the descriptor's
    // offset does not.
    let offset = match filelike
        .call_method0("tell")
        .and_then(|t| t.extract::<u64>())
    {
        Ok(o) => o,
        Err(_) => {
            use std::io::Seek;
            let mut f = &file;
            f.stream_position().unwrap_or(0)
        }
    };
    let len = meta.len().saturating_sub(offset);
    let mut guard = owner.get().lock(py);
    let r = started(&mut guard)?;
    without_gil(py, r, |r| r.send_file(file, offset, len)).map_err(write_failure)?;
    Ok(true)
}

/// PEP 3333: the iterable's `close()`, if any, is called once, whatever happened.
fn close_iterable(py: Python<'_>, iterable: &Bound<'_, PyAny>, context: &Context<'_>) {
    let r = (|| -> PyResult<()> {
        if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
            return Ok(());
        }
        if let Ok(close) = iterable.getattr("close") {
            close.call0()?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        log_py_err(py, &e, format!("{context}: close() of the response failed"));
    }
}

//! The `log` facade onto Apache's error log: lines of a request carry its
//! context (through its writer while one holds the request), debug lines
//! only where Apache logs them for this module.

use std::ffi::{CString, c_int};
use std::ptr;

use crate::ffi::{self, request_rec, server_rec};
use crate::writer;

thread_local! {
    /// The request this thread is handling: Python's output and the core's
    /// messages are logged with its context (Apache request threads run the
    /// app themselves, so print() and wsgi.errors happen on them).
    static CURRENT: std::cell::Cell<*const request_rec> = const { std::cell::Cell::new(ptr::null()) };
    /// Its writer: while one holds the request, log lines go through it.
    static CURRENT_WRITER: std::cell::RefCell<Option<std::sync::Arc<writer::WriteBehind>>> =
        const { std::cell::RefCell::new(None) };
}

struct ApacheLog;

impl log::Log for ApacheLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => ffi::APLOG_ERR,
            log::Level::Warn => ffi::APLOG_WARNING,
            log::Level::Info => ffi::APLOG_INFO,
            _ => ffi::APLOG_DEBUG,
        };
        let text = if record.target().starts_with("oxwsgi") {
            format!("oxwsgi: {}", record.args())
        } else {
            format!("oxwsgi: [{}] {}", record.target(), record.args())
        };
        let Ok(text) = CString::new(text.replace('\0', "\\0")) else {
            return;
        };
        let r = CURRENT.with(|c| c.get());
        let queued = CURRENT_WRITER.with(|w| {
            w.borrow()
                .as_ref()
                .is_some_and(|w| w.log(level as c_int, &text))
        });
        if queued {
            return;
        }
        // SAFETY: the shim logs with a "%s" format; a current request is the
        // live one this thread is handling (set and cleared by the handler),
        // and no writer holds it (checked above).
        unsafe {
            if r.is_null() {
                ffi::oxwsgi_log(level as c_int, text.as_ptr());
            } else {
                ffi::oxwsgi_log_r(r, level as c_int, text.as_ptr());
            }
        }
    }
    fn flush(&self) {}
}

static LOGGER: ApacheLog = ApacheLog;

/// Routes the `log` facade to Apache's error log. Debug lines (a request's
/// way through the module) are made only when Apache logs them for this
/// module (`LogLevel wsgi:debug`, or `LogLevel debug`).
pub fn install_logger(debug: bool) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}

/// Whether the server `s` logs this module's debug lines.
///
/// # Safety
/// `s` is a live server_rec.
pub unsafe fn logs_debug(s: *const server_rec) -> bool {
    // SAFETY: s is live (logs_debug's contract); the shim reads its log
    // levels with the module's index.
    unsafe { ffi::oxwsgi_logs_debug(s) != 0 }
}

/// The request this thread handles from now on (its log lines carry it),
/// with the writer that holds it.
pub fn enter(r: *const request_rec, w: &std::sync::Arc<writer::WriteBehind>) {
    CURRENT.with(|c| c.set(r));
    CURRENT_WRITER.with(|c| *c.borrow_mut() = Some(w.clone()));
}

/// The request is done: this thread's log lines are the server's again.
pub fn leave() {
    CURRENT_WRITER.with(|w| *w.borrow_mut() = None);
    CURRENT.with(|c| c.set(ptr::null()));
}

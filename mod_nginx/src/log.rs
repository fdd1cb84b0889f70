//! The `log` facade onto nginx's error log, for the core and the module.
//! Lines come from Python threads too: nginx's logging writes each message
//! with one write(2) on the cycle's log, which is safe from any thread.

use ngx::ffi::{NGX_LOG_DEBUG, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_WARN, ngx_cycle, ngx_uint_t};

struct NginxLog;

static LOGGER: NginxLog = NginxLog;

impl log::Log for NginxLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => NGX_LOG_ERR,
            log::Level::Warn => NGX_LOG_WARN,
            log::Level::Info => NGX_LOG_INFO,
            log::Level::Debug | log::Level::Trace => NGX_LOG_DEBUG,
        } as ngx_uint_t;
        // SAFETY: ngx_cycle points at the live cycle of this worker, whose log
        // outlives every thread that can log (the threads stop before exit).
        let log = unsafe { (*ngx_cycle).log };
        if log.is_null() {
            return;
        }
        // SAFETY: `log` is the live cycle's log (checked non-null above);
        // log_level is only written while configuration is read.
        if level > unsafe { (*log).log_level } {
            return;
        }
        let target = record.target();
        let message = if target.starts_with("oxwsgi") {
            format!("oxwsgi: {}", record.args())
        } else {
            format!("oxwsgi: [{target}] {}", record.args())
        };
        // SAFETY: `log` is valid (above); the message is passed by pointer and
        // length ("%*s"), so it needs no NUL and may contain any bytes.
        unsafe { ngx::log::log_error(level, log, 0, message.as_bytes()) };
    }

    fn flush(&self) {}
}

/// Routes the `log` facade to nginx's error log (once per process). Debug
/// lines (a request's way through the module) are made only when the error
/// log takes them (`error_log ... debug`).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        // SAFETY: in init_process, ngx_cycle is this worker's live cycle.
        let log = unsafe { (*ngx_cycle).log };
        // SAFETY: `log` is the live cycle's log when not null.
        let debug = !log.is_null() && unsafe { (*log).log_level } >= NGX_LOG_DEBUG as ngx_uint_t;
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}

/// Routes the `log` facade to standard error, in nginx's format: for the
/// process group manager and its daemons, forked from the master, which
/// keep none of nginx's open files but standard error.
pub fn install_stderr() {
    oxwsgi_core::daemon::process::stderr_log::install(
        oxwsgi_core::daemon::process::stderr_log::LogStyle::Nginx,
    );
}

//! The `log` facade onto standard error, in the error log's format of the
//! server a daemon belongs to: for processes that keep none of the
//! server's open files but standard error, which the server points at its
//! error log (nginx's group manager and its daemons, and every daemon that
//! became its virtualenv's Python, where no server code is left at all).
//! Each line is one write, as the servers' own.

use crate::daemon::sys;

/// Whose format the lines take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// `2026/12/02 03:58:17 [error] 123#0: oxwsgi: ...`
    Nginx,
    /// `[Wed Dec 02 03:58:17.123456 2026] [wsgi:error] [pid 123:tid 124] oxwsgi: ...`
    Apache,
}

impl LogStyle {
    pub fn name(self) -> &'static str {
        match self {
            LogStyle::Nginx => "nginx",
            LogStyle::Apache => "apache",
        }
    }

    pub fn from_name(name: &str) -> Option<LogStyle> {
        match name {
            "nginx" => Some(LogStyle::Nginx),
            "apache" => Some(LogStyle::Apache),
            _ => None,
        }
    }

    /// One line of the error log.
    pub fn line(self, level: log::Level, message: &std::fmt::Arguments<'_>) -> String {
        let pid = std::process::id();
        let (tm, us) = sys::local_tm();
        match self {
            LogStyle::Nginx => {
                let level = match level {
                    log::Level::Error => "error",
                    log::Level::Warn => "warn",
                    log::Level::Info => "info",
                    log::Level::Debug | log::Level::Trace => "debug",
                };
                format!(
                    "{:04}/{:02}/{:02} {:02}:{:02}:{:02} [{level}] {pid}#0: oxwsgi: {message}\n",
                    tm.tm_year + 1900,
                    tm.tm_mon + 1,
                    tm.tm_mday,
                    tm.tm_hour,
                    tm.tm_min,
                    tm.tm_sec
                )
            }
            LogStyle::Apache => {
                const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
                const MONTHS: [&str; 12] = [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec",
                ];
                let level = match level {
                    log::Level::Error => "error",
                    log::Level::Warn => "warn",
                    log::Level::Info => "info",
                    log::Level::Debug => "debug",
                    log::Level::Trace => "trace1",
                };
                format!(
                    "[{} {} {:02} {:02}:{:02}:{:02}.{us:06} {}] [wsgi:{level}] [pid {pid}:tid {}] oxwsgi: {message}\n",
                    DAYS[tm.tm_wday.clamp(0, 6) as usize],
                    MONTHS[tm.tm_mon.clamp(0, 11) as usize],
                    tm.tm_mday,
                    tm.tm_hour,
                    tm.tm_min,
                    tm.tm_sec,
                    tm.tm_year + 1900,
                    sys::thread_id()
                )
            }
        }
    }
}

struct StderrLog(LogStyle);

static NGINX: StderrLog = StderrLog(LogStyle::Nginx);
static APACHE: StderrLog = StderrLog(LogStyle::Apache);

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = self.0.line(record.level(), record.args());
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Routes the `log` facade to standard error in `style` (once per
/// process; info and above).
pub fn install(style: LogStyle) {
    let logger = match style {
        LogStyle::Nginx => &NGINX,
        LogStyle::Apache => &APACHE,
    };
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_take_each_servers_format() {
        let pid = std::process::id();
        let n = LogStyle::Nginx.line(log::Level::Warn, &format_args!("group g: {}", 1));
        let (date, rest) = n.split_at(19);
        assert!(
            date.as_bytes()[4] == b'/' && date.as_bytes()[13] == b':',
            "{n}"
        );
        assert_eq!(rest, format!(" [warn] {pid}#0: oxwsgi: group g: 1\n"));
        let a = LogStyle::Apache.line(log::Level::Error, &format_args!("boom"));
        assert!(a.starts_with('['), "{a}");
        assert!(
            a.ends_with(&format!(
                "] [wsgi:error] [pid {pid}:tid {}] oxwsgi: boom\n",
                super::sys::thread_id()
            )),
            "{a}"
        );
        // [Www Mmm dd hh:mm:ss.uuuuuu yyyy]
        assert_eq!(a.find(']'), Some(32), "{a}");
        for s in [LogStyle::Nginx, LogStyle::Apache] {
            assert_eq!(LogStyle::from_name(s.name()), Some(s));
        }
    }
}

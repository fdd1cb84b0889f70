//! A daemon process: from the fork to its exit, and its entry after
//! `exec` (`entry`); becoming its virtualenv's own Python (`exec`, with
//! what it carries over in `handoff`); its threads waiting together on one
//! epoll set (`dispatch`), each request run by the core's engine exactly as
//! embedded (`serve`); when it ends and how (`life`); its log lines in the
//! server's error log format (`stderr_log`).

pub mod dispatch;
pub(crate) mod entry;
pub mod exec;
pub mod handoff;
pub mod life;
pub mod serve;
pub mod stderr_log;

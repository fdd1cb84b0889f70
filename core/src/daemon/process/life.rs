//! A daemon process's life: when it ends, and how. It ends gracefully
//! (stops taking requests, lets those in progress finish for a while, then
//! exits, and the server's parent starts a fresh one) after its maximum
//! requests, its restart interval, a spell of inactivity, its CPU time
//! (SIGXCPU), a request thread stuck past its timeout, or SIGUSR1; it
//! finishes its requests for the shutdown timeout on SIGTERM (the group
//! stops); and it exits at once when Python's GIL cannot be taken for the
//! deadlock timeout (a C extension holding it forever).
//!
//! One monitor thread per daemon takes the signals (blocked in every other
//! thread) and looks at the clocks a few times a second; the request
//! threads only count.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::Recover;

use crate::daemon::options::Lifecycle;
use crate::daemon::sys;

/// How often the monitor looks at the clocks.
const TICK: Duration = Duration::from_millis(200);

/// How a daemon ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Replaced: requests in progress get the graceful timeout.
    Recycle,
    /// SIGUSR1: the eviction timeout (default the graceful one).
    Evict,
    /// SIGTERM: the shutdown timeout.
    Shutdown,
}

/// One daemon process's life, shared by its threads.
pub struct Life {
    spec: Lifecycle,
    group: String,
    born: Instant,
    served: AtomicU64,
    active: AtomicUsize,
    /// When the last request ended, in ms since `born` (0: none yet).
    last_request_ms: AtomicU64,
    /// When the GIL was last taken by the deadlock probe, ms since `born`.
    gil_seen_ms: AtomicU64,
    /// Some app loaded (startup-timeout no longer applies).
    loaded_any: AtomicBool,
    /// Set when the process stops taking requests (the dispatcher's stop).
    stopping: Arc<AtomicBool>,
    ending: Mutex<Option<(End, Instant)>>,
    /// `max-rss`, when set.
    max_rss: Option<crate::ops::recycle::RssLimit>,
}

impl Life {
    pub fn new(group: &str, spec: Lifecycle) -> Arc<Life> {
        Arc::new(Life {
            max_rss: spec.max_rss.map(crate::ops::recycle::RssLimit::new),
            spec,
            group: group.to_string(),
            born: Instant::now(),
            served: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            last_request_ms: AtomicU64::new(0),
            gil_seen_ms: AtomicU64::new(0),
            loaded_any: AtomicBool::new(false),
            stopping: Arc::new(AtomicBool::new(false)),
            ending: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// The flag set when the process stops taking requests.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    /// Whether the process has stopped taking requests.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A request thread starts a request.
    pub fn request_started(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
    }

    /// A request thread finished one; `activity`: it counts for
    /// inactivity-timeout (not under `WSGIIgnoreActivity On`).
    pub fn request_finished(&self, activity: bool) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        if activity {
            self.last_request_ms
                .store(self.now_ms().max(1), Ordering::Release);
        }
        let served = self.served.fetch_add(1, Ordering::AcqRel) + 1;
        if self.spec.maximum_requests.is_some_and(|n| served >= n) && !self.stopping() {
            crate::ops::metrics::recycled(crate::ops::metrics::RecycleReason::MaxRequests);
            self.end(
                End::Recycle,
                &format!("it served {served} requests (maximum-requests)"),
            );
        }
        if let Some(why) = self.max_rss.as_ref().and_then(|l| l.passed()) {
            if !self.stopping() {
                crate::ops::metrics::recycled(crate::ops::metrics::RecycleReason::MaxRss);
                self.end(End::Recycle, &format!("{why} (max-rss)"));
            }
        }
    }

    /// A request's app is loaded.
    pub fn app_loaded(&self) {
        self.loaded_any.store(true, Ordering::Release);
    }

    /// A request's app failed to load: past the startup timeout with no app
    /// loaded yet, the process is replaced (as mod_wsgi's startup-timeout:
    /// a fresh interpreter, not one a failed import left half-made).
    pub fn app_failed(&self) {
        let Some(limit) = self.spec.startup_timeout else {
            return;
        };
        if !self.loaded_any.load(Ordering::Acquire) && self.born.elapsed() >= limit {
            self.end(
                End::Recycle,
                &format!(
                    "its app did not load within {} s (startup-timeout)",
                    limit.as_secs()
                ),
            );
        }
    }

    /// Requests in progress.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Ends the process `how`, for `why` (logged). The first reason wins; a
    /// shutdown may shorten a graceful end already under way.
    pub fn end(&self, how: End, why: &str) {
        let grace = match how {
            End::Recycle => self.spec.graceful_timeout,
            End::Evict => self
                .spec
                .eviction_timeout
                .unwrap_or(self.spec.graceful_timeout),
            End::Shutdown => self.spec.shutdown_timeout,
        };
        let deadline = Instant::now() + grace;
        {
            let mut ending = self.ending.lock().recover();
            match *ending {
                Some((_, d)) if how != End::Shutdown || d <= deadline => return,
                _ => *ending = Some((how, deadline)),
            }
        }
        self.stopping.store(true, Ordering::Release);
        let verb = match how {
            End::Shutdown => "stopping",
            End::Recycle | End::Evict => "recycling",
        };
        log::info!(
            target: "oxwsgi",
            "group {}: daemon process {} {verb}: {why}; {} request(s) in progress get {:.1} s",
            self.group,
            std::process::id(),
            self.active(),
            grace.as_secs_f64()
        );
    }

    /// The deadline for the requests in progress, once the end is decided.
    fn deadline(&self) -> Option<Instant> {
        self.ending.lock().recover().map(|(_, d)| d)
    }

    /// Why the process should be replaced now, from the clocks.
    fn due(&self) -> Option<String> {
        let now = self.now_ms();
        if let Some(limit) = self.spec.restart_interval {
            if now >= limit.as_millis() as u64 {
                return Some(format!(
                    "it ran for {} s (restart-interval)",
                    limit.as_secs()
                ));
            }
        }
        if let Some(limit) = self.spec.inactivity_timeout {
            let last = self.last_request_ms.load(Ordering::Acquire);
            if last > 0 && self.active() == 0 && now - last.min(now) >= limit.as_millis() as u64 {
                return Some(format!(
                    "no request for {} s (inactivity-timeout)",
                    limit.as_secs()
                ));
            }
        }
        None
    }

    /// Whether the GIL has not been seen for the deadlock timeout.
    fn deadlocked(&self) -> Option<Duration> {
        let limit = self.spec.deadlock_timeout?;
        let seen = self.gil_seen_ms.load(Ordering::Acquire);
        let since = Duration::from_millis(self.now_ms().saturating_sub(seen));
        (since >= limit).then_some(since)
    }

    /// Starts the monitor thread (and the GIL probe when a deadlock timeout
    /// is set). The signals it takes must be blocked (`sys::block_signals`)
    /// in every thread before this.
    pub fn watch(self: &Arc<Self>) -> std::io::Result<()> {
        if self.spec.deadlock_timeout.is_some() {
            let life = self.clone();
            std::thread::Builder::new()
                .name("oxwsgi-gil-probe".into())
                .spawn(move || {
                    crate::python::embed::ensure_thread_state();
                    loop {
                        pyo3::Python::attach(|_| {
                            life.gil_seen_ms.store(life.now_ms(), Ordering::Release);
                        });
                        std::thread::sleep(Duration::from_secs(1));
                    }
                })?;
        }
        let life = self.clone();
        std::thread::Builder::new()
            .name("oxwsgi-life".into())
            .spawn(move || life.monitor())?;
        Ok(())
    }

    fn monitor(&self) {
        loop {
            match sys::wait_signal(TICK) {
                Some(libc::SIGTERM) => self.end(End::Shutdown, "the group is stopping (SIGTERM)"),
                Some(libc::SIGUSR1) => self.end(End::Evict, "it was sent SIGUSR1"),
                Some(libc::SIGXCPU) => {
                    self.end(End::Recycle, "it used its CPU time (cpu-time-limit)")
                }
                _ => {}
            }
            if let Some(since) = self.deadlocked() {
                log::error!(
                    target: "oxwsgi",
                    "group {}: daemon process {}: Python's GIL could not be taken for {:.0} s (deadlock-timeout); exiting now",
                    self.group,
                    std::process::id(),
                    since.as_secs_f64()
                );
                sys::exit_now(1);
            }
            if !self.stopping() {
                if let Some(why) = self.due() {
                    self.end(End::Recycle, &why);
                }
            }
            if let Some(deadline) = self.deadline() {
                if Instant::now() >= deadline {
                    log::warn!(
                        target: "oxwsgi",
                        "group {}: daemon process {}: {} request(s) still in progress at the end of the timeout; exiting",
                        self.group,
                        std::process::id(),
                        self.active()
                    );
                    sys::exit_now(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(f: impl FnOnce(&mut Lifecycle)) -> Arc<Life> {
        let mut spec = Lifecycle::default();
        f(&mut spec);
        Life::new("t", spec)
    }

    #[test]
    fn passing_max_rss_ends_gracefully() {
        let l = life(|s| s.max_rss = Some(1 << 40));
        l.request_started();
        l.request_finished(true);
        assert!(!l.stopping(), "under the limit");
        let l = life(|s| s.max_rss = Some(1));
        l.request_started();
        l.request_finished(true);
        assert!(l.stopping(), "over the limit");
        assert!(l.deadline().unwrap() > Instant::now() + Duration::from_secs(14));
    }

    #[test]
    fn maximum_requests_ends_gracefully_once() {
        let l = life(|s| s.maximum_requests = Some(3));
        for _ in 0..2 {
            l.request_started();
            l.request_finished(true);
        }
        assert!(!l.stopping());
        l.request_started();
        l.request_finished(true);
        assert!(l.stopping());
        let first = l.deadline().unwrap();
        assert!(
            first > Instant::now() + Duration::from_secs(14),
            "graceful timeout"
        );
        l.request_started();
        l.request_finished(true);
        assert_eq!(l.deadline(), Some(first), "decided once");
        // A shutdown may shorten it, not lengthen it.
        l.end(End::Shutdown, "test");
        assert!(l.deadline().unwrap() < first);
    }

    #[test]
    fn inactivity_counts_from_the_last_request_only() {
        let l = life(|s| s.inactivity_timeout = Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.due(), None, "a process that never served stays");
        l.request_started();
        l.request_finished(false);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            l.due(),
            None,
            "a quiet request (WSGIIgnoreActivity) is not activity"
        );
        l.request_started();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.due(), None, "a request in progress is activity");
        l.request_finished(true);
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.due().unwrap().contains("inactivity-timeout"));
    }

    #[test]
    fn restart_interval_and_eviction() {
        let l = life(|s| {
            s.restart_interval = Some(Duration::from_millis(1));
            s.eviction_timeout = Some(Duration::from_secs(2));
        });
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.due().unwrap().contains("restart-interval"));
        l.end(End::Evict, "test");
        let d = l.deadline().unwrap();
        assert!(d <= Instant::now() + Duration::from_secs(2));
        assert!(d > Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn startup_timeout_counts_until_an_app_loads() {
        let l = life(|s| s.startup_timeout = Some(Duration::from_millis(5)));
        l.app_failed();
        assert!(!l.stopping(), "within the startup timeout");
        std::thread::sleep(Duration::from_millis(10));
        l.app_loaded();
        l.app_failed();
        assert!(!l.stopping(), "an app loaded once");
        let l = life(|s| s.startup_timeout = Some(Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(10));
        l.app_failed();
        assert!(l.stopping());
    }

    #[test]
    fn deadlock_needs_the_gil_unseen_for_the_limit() {
        let l = life(|s| s.deadlock_timeout = Some(Duration::from_millis(10)));
        assert_eq!(l.deadlocked(), None);
        std::thread::sleep(Duration::from_millis(15));
        assert!(l.deadlocked().is_some());
        l.gil_seen_ms.store(l.now_ms(), Ordering::Release);
        assert_eq!(l.deadlocked(), None);
        assert_eq!(life(|s| s.deadlock_timeout = None).deadlocked(), None);
    }
}

//! When a server process's Python should be replaced by a fresh one: after
//! a number of requests (with jitter, so that a server's processes do not
//! all recycle at once), when the process's memory passes a limit, or when
//! a request's thread is stuck (`timeouts`). The decision is taken once per
//! process; how to recycle gracefully is the server's (nginx: the worker
//! exits as on `nginx -s quit` and the master starts a new one).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ops::metrics::{RecycleReason, rss_bytes};
use crate::sync::Recover;

/// The configured limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Recycle after this many requests ...
    pub max_requests: Option<u64>,
    /// ... plus a number from 0 to `jitter`, fixed per process.
    pub jitter: u64,
    /// Recycle when the resident set passes this many bytes.
    pub max_rss: Option<u64>,
}

/// How often the resident set is read (a request at most this often pays
/// for reading /proc).
const RSS_EVERY: Duration = Duration::from_secs(1);

/// A limit on the process's resident memory, looked at after requests, at
/// most every `RSS_EVERY` (a leak is slow; /proc is not free). Shared by
/// the server processes' recycling and the groups' daemons.
pub struct RssLimit {
    limit: u64,
    epoch: Instant,
    /// When the RSS is read next (ms since `epoch`).
    due: AtomicU64,
}

impl RssLimit {
    pub fn new(limit: u64) -> RssLimit {
        RssLimit {
            limit,
            epoch: Instant::now(),
            due: AtomicU64::new(0),
        }
    }

    /// Why the process should be recycled, when it is time to look (for
    /// one caller at a time) and the RSS passed the limit.
    pub fn passed(&self) -> Option<String> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let due = self.due.load(Ordering::Relaxed);
        let next = now + RSS_EVERY.as_millis() as u64;
        if now < due
            || self
                .due
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        let rss = rss_bytes()?;
        (rss > self.limit).then(|| {
            format!(
                "its memory (RSS {} MiB) passed the limit of {} MiB",
                rss >> 20,
                self.limit >> 20
            )
        })
    }
}

/// One process's recycling state.
pub struct Recycler {
    max_requests: Option<u64>,
    max_rss: Option<RssLimit>,
    served: AtomicU64,
    decided: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Recycler {
    /// `seed` picks this process's share of the jitter (a pid will do).
    pub fn new(limits: Limits, seed: u64) -> Recycler {
        let extra = match limits.jitter {
            0 => 0,
            j => spread(seed) % (j + 1),
        };
        Recycler {
            max_requests: limits.max_requests.map(|n| n.saturating_add(extra)),
            max_rss: limits.max_rss.map(RssLimit::new),
            served: AtomicU64::new(0),
            decided: AtomicBool::new(false),
            why: Mutex::new(None),
        }
    }

    /// The request count at which this process recycles (jitter applied).
    pub fn request_limit(&self) -> Option<u64> {
        self.max_requests
    }

    /// Counts a finished request; `Some(reason)` exactly once, when this
    /// process should now be recycled.
    pub fn after_request(&self) -> Option<String> {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_requests.is_some_and(|limit| served >= limit) {
            return self.decide(
                RecycleReason::MaxRequests,
                format!("it served {served} requests (wsgi_max_requests)"),
            );
        }
        let why = self.max_rss.as_ref()?.passed()?;
        self.decide(RecycleReason::MaxRss, why)
    }

    /// Records `why` as the reason to recycle (counted in the metrics);
    /// `Some(why)` for the first caller only.
    pub fn decide(&self, reason: RecycleReason, why: String) -> Option<String> {
        if self.decided.swap(true, Ordering::AcqRel) {
            return None;
        }
        crate::ops::metrics::recycled(reason);
        *self.why.lock().recover() = Some(why.clone());
        Some(why)
    }

    /// Why this process is being recycled, once decided.
    pub fn reason(&self) -> Option<String> {
        self.why.lock().recover().clone()
    }
}

/// A well-mixed number from `seed` (splitmix64's finaliser): nearby pids
/// get unrelated jitter.
fn spread(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_once_after_max_requests() {
        let r = Recycler::new(
            Limits {
                max_requests: Some(3),
                ..Limits::default()
            },
            1,
        );
        assert_eq!(r.after_request(), None);
        assert_eq!(r.after_request(), None);
        let why = r.after_request().unwrap();
        assert!(why.contains("served 3 requests"), "{why}");
        assert_eq!(r.after_request(), None, "decided once");
        assert_eq!(r.reason(), Some(why));
    }

    #[test]
    fn jitter_spreads_processes_within_its_range() {
        let limits = Limits {
            max_requests: Some(100),
            jitter: 50,
            max_rss: None,
        };
        let picked: Vec<u64> = (1000..1064)
            .map(|pid| Recycler::new(limits, pid).request_limit().unwrap())
            .collect();
        assert!(picked.iter().all(|n| (100..=150).contains(n)), "{picked:?}");
        let distinct: std::collections::HashSet<_> = picked.iter().collect();
        assert!(distinct.len() > 20, "neighbouring pids spread: {picked:?}");
    }

    #[test]
    fn recycles_when_memory_passes_the_limit() {
        let r = Recycler::new(
            Limits {
                max_rss: Some(1 << 20),
                ..Limits::default()
            },
            1,
        );
        let why = r.after_request().unwrap();
        assert!(why.contains("passed the limit of 1 MiB"), "{why}");
        let big = Recycler::new(
            Limits {
                max_rss: Some(1 << 40),
                ..Limits::default()
            },
            1,
        );
        assert_eq!(big.after_request(), None);
        assert!(rss_bytes().unwrap() > 1 << 20);
    }

    #[test]
    fn a_stuck_thread_decides_once_too() {
        let r = Recycler::new(Limits::default(), 1);
        assert!(r.decide(RecycleReason::Stuck, "stuck".into()).is_some());
        assert!(r.decide(RecycleReason::Stuck, "again".into()).is_none());
        assert_eq!(r.after_request(), None);
    }
}

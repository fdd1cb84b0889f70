//! Health answers for load balancers and orchestrators, the same on both
//! servers. Liveness: the server answers (200 whenever a process can
//! answer at all). Readiness: this server should get traffic: its apps
//! loaded and it is not draining (a graceful stop began: the answer turns
//! 503 first, for the drain time, so that health checks take the host out
//! before its connections close), and every process group it sends
//! requests to has a daemon up.

use std::sync::atomic::{AtomicBool, Ordering};

/// Which question a health URL answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
}

impl Probe {
    pub fn parse(s: &str) -> Option<Probe> {
        match s {
            "live" => Some(Probe::Live),
            "ready" => Some(Probe::Ready),
            _ => None,
        }
    }
}

/// This process is draining (set once; the process is going).
static DRAINING: AtomicBool = AtomicBool::new(false);

/// A graceful stop began: readiness answers 503 from now on.
pub fn start_draining() {
    DRAINING.store(true, Ordering::Release);
}

pub fn draining() -> bool {
    DRAINING.load(Ordering::Acquire)
}

/// What keeps this process from being ready, if anything: apps whose
/// load failed, process groups without a daemon up.
pub fn not_ready(failed_apps: &[String], groups_down: &[String]) -> Option<String> {
    if draining() {
        return Some("draining: a graceful stop began".into());
    }
    if !failed_apps.is_empty() {
        return Some(format!("app(s) failed to load: {}", failed_apps.join(", ")));
    }
    if !groups_down.is_empty() {
        return Some(format!(
            "no daemon up in process group(s): {}",
            groups_down.join(", ")
        ));
    }
    None
}

/// The groups of `snapshot` without a daemon up.
pub fn groups_down(snapshot: &crate::ops::metrics::Snapshot) -> Vec<String> {
    snapshot
        .groups
        .iter()
        .filter(|g| g.processes == 0)
        .map(|g| g.name.clone())
        .collect()
}

/// The status and the plain-text body of an answer to `probe`, for a
/// process whose readiness is `blocked` (`not_ready`'s answer).
pub fn answer(probe: Probe, blocked: Option<&str>) -> (u16, String) {
    match (probe, blocked) {
        (Probe::Live, _) => (200, "live\n".into()),
        (Probe::Ready, None) => (200, "ready\n".into()),
        (Probe::Ready, Some(why)) => (503, format!("not ready: {why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_apps_and_the_drain() {
        assert_eq!(Probe::parse("ready"), Some(Probe::Ready));
        assert_eq!(Probe::parse("alive"), None);
        assert_eq!(not_ready(&[], &[]), None);
        assert_eq!(
            not_ready(&[], &["site".into()]).as_deref(),
            Some("no daemon up in process group(s): site")
        );
        assert_eq!(answer(Probe::Ready, None), (200, "ready\n".into()));
        let failed = not_ready(&["/srv/a.py".into()], &[]);
        assert_eq!(failed.as_deref(), Some("app(s) failed to load: /srv/a.py"));
        let (status, body) = answer(Probe::Ready, failed.as_deref());
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: app(s) failed to load: /srv/a.py\n")
        );
        assert_eq!(
            answer(Probe::Live, failed.as_deref()).0,
            200,
            "alive all the same"
        );
        start_draining();
        assert!(not_ready(&[], &[]).is_some_and(|w| w.starts_with("draining")));
        assert_eq!(answer(Probe::Live, not_ready(&[], &[]).as_deref()).0, 200);
    }
}

//! Running in production: what a server's processes count and share
//! (`metrics`, each process group's own region in `group_metrics`), how
//! they show it (`status`: Prometheus, JSON, HTML; `health`: liveness and
//! readiness, draining), when a process's Python is replaced (`recycle`),
//! and the request timeout watchdog (`timeouts`).

pub mod group_metrics;
pub mod health;
pub mod metrics;
pub mod recycle;
pub mod status;
pub mod timeouts;

//! Live metrics, in memory that every process of a server shares (nginx: a
//! shared memory zone; Apache: APR shared memory), so that one scrape sees
//! the whole server whichever process answers it.
//!
//! The `Region` is plain atomics: all zeroes is a valid empty region, any
//! process may update it without a lock, and the server only has to map it
//! (the one `unsafe` step, in the server's module). Fixed tables: apps by
//! name, processes by pid, and the requests in flight, each with its
//! method, path, client and, for slow ones, the app's current Python stack.
//! Strings are stored in atomic words and read under a per-slot sequence
//! number, so a reader never sees half of a write.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Apps one server can report on (by name).
pub const APPS: usize = 64;
/// Server processes (nginx workers, Apache children) alive at once.
pub const PROCS: usize = 256;
/// Requests in flight shown at once (more are counted, not listed).
pub const REQUESTS: usize = 512;
/// Process groups one server can report on (by name).
pub const GROUPS: usize = 32;
/// Upper bounds of the duration histograms' buckets, in seconds (`+Inf`
/// is the count).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const MAGIC: u64 = 0x6f78_7773_6769_0002;

/// The calling process's resident set in bytes (`VmRSS` of
/// /proc/self/status).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Why a process's Python was recycled (the label of the counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecycleReason {
    MaxRequests = 0,
    MaxRss = 1,
    Stuck = 2,
}

impl RecycleReason {
    pub const ALL: [RecycleReason; 3] = [
        RecycleReason::MaxRequests,
        RecycleReason::MaxRss,
        RecycleReason::Stuck,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RecycleReason::MaxRequests => "max_requests",
            RecycleReason::MaxRss => "max_rss",
            RecycleReason::Stuck => "stuck",
        }
    }
}

/// A string of up to `8 * W` bytes in atomic words.
#[repr(C)]
pub struct Text<const W: usize> {
    len: AtomicU64,
    words: [AtomicU64; W],
}

impl<const W: usize> Text<W> {
    fn store(&self, s: &[u8]) {
        let s = &s[..s.len().min(8 * W)];
        for (i, word) in self.words.iter().enumerate() {
            let mut b = [0u8; 8];
            let from = (8 * i).min(s.len());
            let to = (8 * i + 8).min(s.len());
            b[..to - from].copy_from_slice(&s[from..to]);
            word.store(u64::from_le_bytes(b), Ordering::Relaxed);
            if to == s.len() {
                break;
            }
        }
        self.len.store(s.len() as u64, Ordering::Relaxed);
    }

    fn load(&self) -> Vec<u8> {
        let len = (self.len.load(Ordering::Relaxed) as usize).min(8 * W);
        let mut out = Vec::with_capacity(len);
        for word in &self.words {
            if out.len() >= len {
                break;
            }
            out.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A latency histogram (microseconds summed, counts per bucket).
#[repr(C)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = std::array::from_fn(|i| {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            cumulative
        });
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed).max(cumulative),
            sum: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[repr(C)]
pub struct AppSlot {
    /// 0: free; 1: being named; 2: in use.
    state: AtomicU64,
    name: Text<24>,
    /// Responses by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
    duration: Histogram,
    queue_wait: Histogram,
    in_flight: AtomicI64,
    queued: AtomicI64,
    exceptions: AtomicU64,
    request_timeouts: AtomicU64,
    queue_timeouts: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

#[repr(C)]
pub struct ProcSlot {
    /// The process's pid; 0 when free.
    pid: AtomicU64,
    /// The process group it is a daemon of (empty: a server process).
    group: Text<4>,
    started_unix: AtomicU64,
    requests: AtomicU64,
    rss: AtomicU64,
    threads: AtomicU64,
}

/// A process group's own counters (its processes come and go).
#[repr(C)]
pub struct GroupSlot {
    /// 0: free; 1: being named; 2: in use.
    state: AtomicU64,
    name: Text<4>,
    recycles: [AtomicU64; 3],
}

/// A table slot found by name (apps, groups).
trait Named<const W: usize> {
    fn state(&self) -> &AtomicU64;
    fn name(&self) -> &Text<W>;
}

impl Named<24> for AppSlot {
    fn state(&self) -> &AtomicU64 {
        &self.state
    }
    fn name(&self) -> &Text<24> {
        &self.name
    }
}

impl Named<4> for GroupSlot {
    fn state(&self) -> &AtomicU64 {
        &self.state
    }
    fn name(&self) -> &Text<4> {
        &self.name
    }
}

/// The slot called `name` in `slots`, taken if there is none yet.
fn named_slot<const W: usize, S: Named<W>>(slots: &[S], name: &str) -> Option<usize> {
    let named =
        |s: &S| s.state().load(Ordering::Acquire) == 2 && s.name().load() == name.as_bytes();
    loop {
        let mut free = None;
        for (i, slot) in slots.iter().enumerate() {
            match slot.state().load(Ordering::Acquire) {
                0 => {
                    free.get_or_insert(i);
                }
                2 if named(slot) => return Some(i),
                2 => {}
                // Being named by another process: look again.
                _ => std::thread::yield_now(),
            }
        }
        let i = free?;
        let slot = &slots[i];
        if slot
            .state()
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            slot.name().store(name.as_bytes());
            slot.state().store(2, Ordering::Release);
            // Two processes may have named the same one in two slots at
            // once; the lower one wins from now on.
            return slots.iter().position(named).or(Some(i));
        }
    }
}

#[repr(C)]
pub struct RequestSlot {
    /// Even: stable; odd: being written. 0 with `pid` 0: free.
    seq: AtomicU64,
    pid: AtomicU64,
    /// The app's Python thread (`threading.get_ident()`), for its stack.
    thread: AtomicU64,
    app: AtomicU64,
    started_unix_us: AtomicU64,
    method: Text<2>,
    path: Text<32>,
    client: Text<6>,
    stack: Text<256>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics::Region")
    }
}

/// The shared memory of one server's metrics.
#[repr(C)]
pub struct Region {
    magic: AtomicU64,
    started_unix: AtomicU64,
    recycles: [AtomicU64; 3],
    /// A graceful stop began (set once, by Apache's parent; its children
    /// read it when they answer readiness).
    draining: AtomicBool,
    apps: [AppSlot; APPS],
    procs: [ProcSlot; PROCS],
    requests: [RequestSlot; REQUESTS],
    groups: [GroupSlot; GROUPS],
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Region {
    /// Bytes a server must map for it (all zeroes is an empty region).
    pub const SIZE: usize = std::mem::size_of::<Region>();

    /// Marks a fresh region as started now (a reused one keeps its
    /// counters: Prometheus counters survive a reload).
    pub fn init(&self) {
        if self
            .magic
            .compare_exchange(0, MAGIC, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.started_unix
                .store(unix_now().as_secs(), Ordering::Relaxed);
        }
    }

    /// The slot of the app called `name`, taken if it has none yet.
    pub fn app(&self, name: &str) -> Option<usize> {
        named_slot(&self.apps, name)
    }

    /// The slot of process `pid` (taken; a dead process's slot is reused,
    /// pids being unique among live processes).
    fn proc(&self, pid: u64, threads: usize, group: &str) -> Option<usize> {
        let i = self
            .procs
            .iter()
            .position(|p| p.pid.load(Ordering::Acquire) == pid)
            .or_else(|| {
                self.procs.iter().position(|p| {
                    p.pid
                        .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                })
            })?;
        let p = &self.procs[i];
        p.started_unix
            .store(unix_now().as_secs(), Ordering::Relaxed);
        p.requests.store(0, Ordering::Relaxed);
        p.threads.store(threads as u64, Ordering::Relaxed);
        p.group.store(group.as_bytes());
        Some(i)
    }

    /// Frees the slots of processes that are gone (their requests too).
    pub fn sweep(&self, alive: impl Fn(u64) -> bool) {
        for p in &self.procs {
            let pid = p.pid.load(Ordering::Acquire);
            if pid != 0 && !alive(pid) {
                p.pid.store(0, Ordering::Release);
            }
        }
        for r in &self.requests {
            let pid = r.pid.load(Ordering::Acquire);
            if pid != 0 && !alive(pid) {
                r.pid.store(0, Ordering::Release);
            }
        }
    }

    /// A graceful stop began: every process that shares the region answers
    /// readiness 503 from now on. One atomic store: safe in a signal
    /// handler.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn recycled(&self, why: RecycleReason) {
        self.recycles[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// This process's view: the region and its own slot.
struct Attached {
    region: &'static Region,
    proc: usize,
    pid: u64,
    /// The slot of its process group, for a group's daemon.
    group: Option<usize>,
}

static ATTACHED: OnceLock<Attached> = OnceLock::new();

/// Attaches this process (an nginx worker, an Apache child, a daemon of
/// process group `group`) to `region`, with `threads` Python threads.
/// Recording is a no-op until then.
pub fn attach(region: &'static Region, threads: usize, group: Option<&str>) {
    region.init();
    let pid = u64::from(std::process::id());
    let alive = |p: u64| p == pid || std::path::Path::new(&format!("/proc/{p}")).exists();
    region.sweep(alive);
    let group_slot = group.and_then(|g| named_slot(&region.groups, g));
    if let Some(proc) = region.proc(pid, threads, group.unwrap_or("")) {
        let _ = ATTACHED.set(Attached {
            region,
            proc,
            pid,
            group: group_slot,
        });
        sampler::start();
    }
}

/// The region this process reports into.
pub fn region() -> Option<&'static Region> {
    ATTACHED.get().map(|a| a.region)
}

/// Counts a recycle of this process's Python: the server's, or its
/// group's for a daemon.
pub fn recycled(why: RecycleReason) {
    let Some(a) = ATTACHED.get() else { return };
    match a.group.and_then(|g| a.region.groups.get(g)) {
        Some(g) => {
            g.recycles[why as usize].fetch_add(1, Ordering::Relaxed);
        }
        None => a.region.recycled(why),
    }
}

/// The app slot of `name` in this process's region.
pub fn app_slot(name: &str) -> Option<usize> {
    ATTACHED.get()?.region.app(name)
}

fn app(slot: Option<usize>) -> Option<(&'static Attached, &'static AppSlot)> {
    let a = ATTACHED.get()?;
    Some((a, a.region.apps.get(slot?)?))
}

/// A request entered the server's queue for a Python thread.
pub fn enqueued(slot: Option<usize>) {
    if let Some((_, s)) = app(slot) {
        s.queued.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request left the queue (taken by a thread, or refused).
pub fn dequeued(slot: Option<usize>) {
    if let Some((_, s)) = app(slot) {
        s.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request that waited past its queue timeout.
pub fn queue_timed_out(slot: Option<usize>, waited: Duration) {
    if let Some((_, s)) = app(slot) {
        s.queue_timeouts.fetch_add(1, Ordering::Relaxed);
        s.queue_wait.observe(waited);
        s.responses[4].fetch_add(1, Ordering::Relaxed);
    }
}

/// What a request told about itself when it started.
pub struct Started<'a> {
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub client: &'a [u8],
    /// The Python thread that runs it.
    pub thread: u64,
    pub waited: Duration,
}

/// A request being recorded; `finish` it.
pub struct Running {
    app: Option<usize>,
    slot: Option<usize>,
    started: Instant,
}

/// How a request ended, for the counters.
#[derive(Default)]
pub struct Finished {
    /// The status sent (0: none, the client went away first).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub exception: bool,
    pub timed_out: bool,
}

/// Records that a request of app `app` started running.
pub fn begin(app_index: Option<usize>, r: &Started<'_>) -> Running {
    let running = Running {
        app: app_index,
        slot: None,
        started: Instant::now(),
    };
    let Some((a, s)) = app(app_index) else {
        return running;
    };
    s.in_flight.fetch_add(1, Ordering::Relaxed);
    s.queue_wait.observe(r.waited);
    let slot = a.region.requests.iter().position(|q| {
        q.pid
            .compare_exchange(0, a.pid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    if let Some(i) = slot {
        let q = &a.region.requests[i];
        q.seq.fetch_add(1, Ordering::AcqRel);
        q.thread.store(r.thread, Ordering::Relaxed);
        q.app
            .store(app_index.unwrap_or(0) as u64, Ordering::Relaxed);
        q.started_unix_us
            .store(unix_now().as_micros() as u64, Ordering::Relaxed);
        q.method.store(r.method);
        q.path.store(r.path);
        q.client.store(r.client);
        q.stack.store(b"");
        q.seq.fetch_add(1, Ordering::AcqRel);
    }
    Running { slot, ..running }
}

/// Records how a request ended.
pub fn finish(running: Running, f: &Finished) {
    let Some((a, s)) = app(running.app) else {
        return;
    };
    if let Some(i) = running.slot {
        a.region.requests[i].pid.store(0, Ordering::Release);
    }
    s.in_flight.fetch_sub(1, Ordering::Relaxed);
    s.duration.observe(running.started.elapsed());
    if (100..600).contains(&f.status) {
        s.responses[usize::from(f.status / 100 - 1)].fetch_add(1, Ordering::Relaxed);
    }
    s.bytes_in.fetch_add(f.bytes_in, Ordering::Relaxed);
    s.bytes_out.fetch_add(f.bytes_out, Ordering::Relaxed);
    if f.exception {
        s.exceptions.fetch_add(1, Ordering::Relaxed);
    }
    if f.timed_out {
        s.request_timeouts.fetch_add(1, Ordering::Relaxed);
    }
    a.region.procs[a.proc]
        .requests
        .fetch_add(1, Ordering::Relaxed);
}

/// Cumulative bucket counts (the `le` buckets of `BUCKETS`), count and sum.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

#[derive(Clone, Debug)]
pub struct AppSnapshot {
    pub name: String,
    /// 1xx to 5xx.
    pub responses: [u64; 5],
    pub duration: HistogramSnapshot,
    pub queue_wait: HistogramSnapshot,
    pub in_flight: i64,
    pub queued: i64,
    pub exceptions: u64,
    pub request_timeouts: u64,
    pub queue_timeouts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug)]
pub struct ProcSnapshot {
    pub pid: u64,
    /// Its process group (empty: a server process).
    pub group: String,
    pub started_unix: u64,
    pub requests: u64,
    pub rss: u64,
    pub threads: u64,
    pub busy: u64,
}

#[derive(Clone, Debug)]
pub struct RequestSnapshot {
    pub pid: u64,
    pub thread: u64,
    pub app: String,
    pub method: String,
    pub path: String,
    pub client: String,
    pub elapsed: Duration,
    /// The app's Python stack (requests running over a second).
    pub stack: String,
}

#[derive(Clone, Debug)]
pub struct GroupSnapshot {
    pub name: String,
    /// Its daemons alive now.
    pub processes: u64,
    pub recycles: Vec<(RecycleReason, u64)>,
}

/// Everything the status page shows, read at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub uptime: Duration,
    pub python: String,
    pub recycles: Vec<(RecycleReason, u64)>,
    pub apps: Vec<AppSnapshot>,
    pub procs: Vec<ProcSnapshot>,
    pub requests: Vec<RequestSnapshot>,
    pub groups: Vec<GroupSnapshot>,
}

fn lossy(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

impl Region {
    /// Reads the whole region (processes that are gone are swept first).
    pub fn snapshot(&self) -> Snapshot {
        Region::snapshot_of(self, |p| {
            std::path::Path::new(&format!("/proc/{p}")).exists()
        })
    }

    /// Reads the whole region, after sweeping the processes `alive` denies.
    fn snapshot_of(&self, alive: impl Fn(u64) -> bool) -> Snapshot {
        self.sweep(alive);
        let now = unix_now();
        let requests = self.requests_snapshot(now);
        let procs = self.procs_snapshot(&requests);
        let groups = self.groups_snapshot(&procs);
        let (major, minor) = crate::python::embed::embedded_version();
        Snapshot {
            uptime: now.saturating_sub(Duration::from_secs(
                self.started_unix.load(Ordering::Relaxed),
            )),
            python: format!("{major}.{minor}"),
            recycles: recycle_counts(&self.recycles),
            apps: self.apps_snapshot(),
            procs,
            requests,
            groups,
        }
    }

    /// The apps loaded (a slot whose app failed to load is left out).
    fn apps_snapshot(&self) -> Vec<AppSnapshot> {
        self.apps
            .iter()
            .take_while(|s| s.state.load(Ordering::Acquire) != 0)
            .filter(|s| s.state.load(Ordering::Acquire) == 2)
            .map(|s| AppSnapshot {
                name: lossy(s.name.load()),
                responses: std::array::from_fn(|i| s.responses[i].load(Ordering::Relaxed)),
                duration: s.duration.snapshot(),
                queue_wait: s.queue_wait.snapshot(),
                in_flight: s.in_flight.load(Ordering::Relaxed).max(0),
                queued: s.queued.load(Ordering::Relaxed).max(0),
                exceptions: s.exceptions.load(Ordering::Relaxed),
                request_timeouts: s.request_timeouts.load(Ordering::Relaxed),
                queue_timeouts: s.queue_timeouts.load(Ordering::Relaxed),
                bytes_in: s.bytes_in.load(Ordering::Relaxed),
                bytes_out: s.bytes_out.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The requests in flight, longest first.
    fn requests_snapshot(&self, now: Duration) -> Vec<RequestSnapshot> {
        let mut requests: Vec<RequestSnapshot> = self
            .requests
            .iter()
            .filter_map(|q| self.request_snapshot(q, now))
            .collect();
        requests.sort_by_key(|r| std::cmp::Reverse(r.elapsed));
        requests
    }

    /// A request slot's copy, if one is there: read between two equal
    /// even sequence numbers (its writer was not in the middle of it), a
    /// few tries at most.
    fn request_snapshot(&self, q: &RequestSlot, now: Duration) -> Option<RequestSnapshot> {
        for _ in 0..4 {
            let pid = q.pid.load(Ordering::Acquire);
            let seq = q.seq.load(Ordering::Acquire);
            if pid == 0 {
                return None;
            }
            if seq % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let started = q.started_unix_us.load(Ordering::Relaxed);
            let app = self
                .apps
                .get(q.app.load(Ordering::Relaxed) as usize)
                .map(|s| lossy(s.name.load()))
                .unwrap_or_default();
            let r = RequestSnapshot {
                pid,
                thread: q.thread.load(Ordering::Relaxed),
                app,
                method: lossy(q.method.load()),
                path: lossy(q.path.load()),
                client: lossy(q.client.load()),
                elapsed: now.saturating_sub(Duration::from_micros(started)),
                stack: lossy(q.stack.load()),
            };
            if q.seq.load(Ordering::Acquire) == seq && q.pid.load(Ordering::Acquire) == pid {
                return Some(r);
            }
        }
        None
    }

    /// The processes, each with its requests in flight counted as busy
    /// threads.
    fn procs_snapshot(&self, requests: &[RequestSnapshot]) -> Vec<ProcSnapshot> {
        self.procs
            .iter()
            .filter_map(|p| {
                let pid = p.pid.load(Ordering::Acquire);
                (pid != 0).then(|| ProcSnapshot {
                    pid,
                    group: lossy(p.group.load()),
                    started_unix: p.started_unix.load(Ordering::Relaxed),
                    requests: p.requests.load(Ordering::Relaxed),
                    rss: p.rss.load(Ordering::Relaxed),
                    threads: p.threads.load(Ordering::Relaxed),
                    busy: requests.iter().filter(|r| r.pid == pid).count() as u64,
                })
            })
            .collect()
    }

    /// The process groups, with their live processes counted.
    fn groups_snapshot(&self, procs: &[ProcSnapshot]) -> Vec<GroupSnapshot> {
        self.groups
            .iter()
            .filter(|g| g.state.load(Ordering::Acquire) == 2)
            .map(|g| {
                let name = lossy(g.name.load());
                GroupSnapshot {
                    processes: procs.iter().filter(|p| p.group == name).count() as u64,
                    name,
                    recycles: recycle_counts(&g.recycles),
                }
            })
            .collect()
    }
}

/// Recycles by reason, from their counters.
fn recycle_counts(counters: &[AtomicU64; 3]) -> Vec<(RecycleReason, u64)> {
    RecycleReason::ALL
        .iter()
        .map(|r| (*r, counters[*r as usize].load(Ordering::Relaxed)))
        .collect()
}

/// Once a second: this process's RSS, and the Python stacks of its
/// requests that have run for over a second.
mod sampler {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use pyo3::prelude::*;

    use super::{ATTACHED, unix_now};

    /// Requests running longer than this get their stack shown.
    const SLOW: Duration = Duration::from_secs(1);

    pub(super) fn start() {
        let _ = std::thread::Builder::new()
            .name("oxwsgi-metrics".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    sample();
                }
            });
    }

    fn sample() {
        let Some(a) = ATTACHED.get() else { return };
        if let Some(rss) = super::rss_bytes() {
            a.region.procs[a.proc].rss.store(rss, Ordering::Relaxed);
        }
        let now = unix_now().as_micros() as u64;
        let slow: Vec<usize> = (0..a.region.requests.len())
            .filter(|&i| {
                let q = &a.region.requests[i];
                q.pid.load(Ordering::Acquire) == a.pid
                    && now.saturating_sub(q.started_unix_us.load(Ordering::Relaxed))
                        > SLOW.as_micros() as u64
            })
            .collect();
        if slow.is_empty() || !crate::python::embed::python_running() {
            return;
        }
        crate::python::embed::ensure_thread_state();
        Python::attach(|py| {
            for i in slow {
                let q = &a.region.requests[i];
                let thread = q.thread.load(Ordering::Relaxed);
                let stack: Vec<String> = py
                    .import("oxwsgi_support")
                    .and_then(|m| m.call_method1("stack_of", (thread,)))
                    .and_then(|s| s.extract())
                    .unwrap_or_default();
                // Still the same request (it may have ended meanwhile; the
                // GIL keeps its thread from starting another one's Python).
                if q.pid.load(Ordering::Acquire) != a.pid
                    || q.thread.load(Ordering::Relaxed) != thread
                {
                    continue;
                }
                q.seq.fetch_add(1, Ordering::AcqRel);
                q.stack.store(stack.join("\n").as_bytes());
                q.seq.fetch_add(1, Ordering::AcqRel);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty region for a test, leaked for 'static. Built on a thread
    /// with a large stack: the region (over a megabyte) passes through it.
    fn region() -> &'static Region {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(|| &*Box::leak(Box::new(unsafe_free_zeroed())))
            .expect("spawn")
            .join()
            .expect("built")
    }

    /// All zeroes, built without `unsafe`: every field is an atomic.
    fn unsafe_free_zeroed() -> Region {
        fn text<const W: usize>() -> Text<W> {
            Text {
                len: AtomicU64::new(0),
                words: std::array::from_fn(|_| AtomicU64::new(0)),
            }
        }
        fn hist() -> Histogram {
            Histogram {
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                count: AtomicU64::new(0),
                sum_us: AtomicU64::new(0),
            }
        }
        let u = || AtomicU64::new(0);
        Region {
            magic: u(),
            started_unix: u(),
            recycles: std::array::from_fn(|_| u()),
            draining: AtomicBool::new(false),
            apps: std::array::from_fn(|_| AppSlot {
                state: u(),
                name: text(),
                responses: std::array::from_fn(|_| u()),
                duration: hist(),
                queue_wait: hist(),
                in_flight: AtomicI64::new(0),
                queued: AtomicI64::new(0),
                exceptions: u(),
                request_timeouts: u(),
                queue_timeouts: u(),
                bytes_in: u(),
                bytes_out: u(),
            }),
            procs: std::array::from_fn(|_| ProcSlot {
                pid: u(),
                group: text(),
                started_unix: u(),
                requests: u(),
                rss: u(),
                threads: u(),
            }),
            requests: std::array::from_fn(|_| RequestSlot {
                seq: u(),
                pid: u(),
                thread: u(),
                app: u(),
                started_unix_us: u(),
                method: text(),
                path: text(),
                client: text(),
                stack: text(),
            }),
            groups: std::array::from_fn(|_| GroupSlot {
                state: u(),
                name: text(),
                recycles: std::array::from_fn(|_| u()),
            }),
        }
    }

    #[test]
    fn text_round_trips_and_truncates() {
        let t: Text<2> = Text {
            len: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        };
        t.store(b"GET");
        assert_eq!(t.load(), b"GET");
        t.store(b"0123456789abcdefXYZ");
        assert_eq!(t.load(), b"0123456789abcdef");
        t.store(b"");
        assert_eq!(t.load(), b"");
    }

    #[test]
    fn apps_are_found_by_name() {
        let r = region();
        r.init();
        let a = r.app("/srv/a.py").unwrap();
        let b = r.app("pkg.wsgi:application").unwrap();
        assert_ne!(a, b);
        assert_eq!(r.app("/srv/a.py"), Some(a));
        assert_eq!(r.snapshot().apps.len(), 2);
    }

    #[test]
    fn groups_count_their_processes_and_recycles() {
        let r = region();
        r.init();
        let g = named_slot(&r.groups, "site").unwrap();
        assert_eq!(named_slot(&r.groups, "site"), Some(g));
        r.groups[g].recycles[RecycleReason::MaxRss as usize].fetch_add(2, Ordering::Relaxed);
        r.proc(4_000_001, 4, "site").unwrap();
        r.proc(4_000_002, 8, "").unwrap();
        r.proc(4_000_003, 4, "site").unwrap();
        // Every pid counts as alive for this snapshot's sweep only if it is;
        // keep the test's pids by reading without a sweep.
        let snap = Region::snapshot_of(r, |_| true);
        let site = snap.groups.iter().find(|g| g.name == "site").unwrap();
        assert_eq!(site.processes, 2);
        assert!(site.recycles.contains(&(RecycleReason::MaxRss, 2)));
        let grouped: Vec<_> = snap.procs.iter().filter(|p| p.group == "site").collect();
        assert_eq!(grouped.len(), 2);
    }

    #[test]
    fn histograms_are_cumulative() {
        let r = region();
        let h = &r.apps[0].duration;
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1, "le 0.005");
        assert_eq!(s.buckets[3], 2, "le 0.05");
        assert_eq!(s.buckets[BUCKETS.len() - 1], 2, "le 10");
        assert_eq!(s.count, 3, "+Inf");
        assert!((s.sum - 60.033).abs() < 1e-6);
    }

    #[test]
    fn sweeping_frees_the_slots_of_dead_processes() {
        let r = region();
        let p = r.proc(4_000_000, 8, "").unwrap();
        assert_eq!(r.procs[p].pid.load(Ordering::Relaxed), 4_000_000);
        r.requests[3].pid.store(4_000_000, Ordering::Relaxed);
        r.sweep(|_| false);
        assert_eq!(r.procs[p].pid.load(Ordering::Relaxed), 0);
        assert_eq!(r.requests[3].pid.load(Ordering::Relaxed), 0);
    }
}

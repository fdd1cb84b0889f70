//! Request timeouts. One watchdog thread per process watches the requests
//! that run with a time limit. At a request's deadline it has the server
//! answer for the app (`ResponseSink::timeout_action`: 504, or the response
//! cut), raises `oxwsgi.RequestTimeout` in the request's thread, and logs
//! where that thread was. A thread that has not come back `stuck_grace()`
//! later is blocked outside Python (in C: a sleep, a socket read) where no
//! exception reaches it; the server's stuck handler then recycles the
//! process's Python side.
//!
//! The deadline is checked against the request thread under the GIL on both
//! sides: the exception is raised only while the request is still being
//! watched, and a request that ends after its deadline clears an exception
//! still pending, so it can never land in the thread's next request.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::python::embed;
use crate::response::sink::TimeoutAction;
use crate::sync::Recover;

/// How long a request's thread may take to come back after its deadline
/// before it counts as stuck, unless the process's group says otherwise.
pub const STUCK_GRACE: Duration = Duration::from_secs(5);

/// The grace in force in this process, in milliseconds.
static GRACE_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(STUCK_GRACE.as_millis() as u64);

/// How long a request's thread may take to come back after its deadline
/// before it counts as stuck (mod_wsgi 6's `interrupt-timeout`).
pub fn stuck_grace() -> Duration {
    Duration::from_millis(GRACE_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Sets `stuck_grace` for this process (a daemon, from its group's
/// options).
pub fn set_stuck_grace(grace: Duration) {
    let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX).max(1);
    GRACE_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// What the server does with a stuck thread (recycle), told why.
pub type StuckHandler = Box<dyn Fn(&str) + Send + Sync>;

struct Entry {
    /// The request thread's Python thread id ...
    ident: u64,
    /// ... in this interpreter (`None`: the main one), where the
    /// exception must be raised.
    interp: Option<crate::python::embed::SubInterpreter>,
    started: Instant,
    limit: Duration,
    /// "app X: GET /uri", for the log.
    what: String,
    action: Option<TimeoutAction>,
    fired: bool,
    stuck: bool,
}

impl Entry {
    fn deadline(&self) -> Instant {
        self.started + self.limit
    }

    /// When the watchdog must look at this entry next, if ever.
    fn due(&self) -> Option<Instant> {
        match (self.fired, self.stuck) {
            (false, _) => Some(self.deadline()),
            (true, false) => Some(self.deadline() + stuck_grace()),
            (true, true) => None,
        }
    }
}

#[derive(Default)]
struct Watch {
    entries: HashMap<u64, Entry>,
    next_id: u64,
    started: bool,
}

static WATCH: Mutex<Option<Watch>> = Mutex::new(None);
static WAKE: Condvar = Condvar::new();
static STUCK: OnceLock<StuckHandler> = OnceLock::new();

/// Sets what the server does when a request's thread is stuck (once per
/// process; later calls are ignored).
pub fn on_stuck(handler: StuckHandler) {
    let _ = STUCK.set(handler);
}

/// Request threads written off as stuck that have not come back.
pub fn stuck_threads() -> usize {
    WATCH
        .lock()
        .recover()
        .as_ref()
        .map_or(0, |w| w.entries.values().filter(|e| e.stuck).count())
}

/// A request being watched; `end` it when the app's part is over.
pub(crate) struct Watched {
    id: u64,
}

/// Watches the calling thread's request for `limit`. Call with the GIL held
/// (`_py`): the request thread's id is Python's.
pub(crate) fn watch(
    py: Python<'_>,
    limit: Duration,
    what: String,
    action: Option<TimeoutAction>,
) -> Watched {
    let mut guard = WATCH.lock().recover();
    let w = guard.get_or_insert_with(Watch::default);
    w.next_id += 1;
    let id = w.next_id;
    w.entries.insert(
        id,
        Entry {
            ident: embed::thread_ident(),
            interp: crate::python::app_group::current(py),
            started: Instant::now(),
            limit,
            what,
            action,
            fired: false,
            stuck: false,
        },
    );
    if !w.started {
        let spawned = std::thread::Builder::new()
            .name("oxwsgi-watchdog".into())
            .spawn(run);
        match spawned {
            Ok(_) => w.started = true,
            Err(e) => {
                log::error!(target: "oxwsgi", "cannot start the request timeout watchdog: {e}")
            }
        }
    }
    drop(guard);
    WAKE.notify_one();
    Watched { id }
}

impl Watched {
    /// Stops watching; true when the request had passed its deadline. With
    /// the GIL held (`py`), so the watchdog cannot raise into this thread
    /// in between, and an exception it raised but Python has not delivered
    /// yet is withdrawn.
    pub(crate) fn end(self, py: Python<'_>) -> bool {
        let entry = WATCH
            .lock()
            .recover()
            .as_mut()
            .and_then(|w| w.entries.remove(&self.id));
        let fired = entry.is_some_and(|e| e.fired);
        if fired {
            embed::raise_in_thread(py, embed::thread_ident(), None);
        }
        fired
    }
}

/// The watchdog thread.
fn run() {
    loop {
        let (expired, stuck) = wait_for_due();
        for (id, action) in expired {
            // The server answers first: that needs no GIL, and the app may
            // hold it (a busy loop) or another thread may.
            if let Some(action) = action {
                action();
            }
            interrupt(id);
        }
        for what in stuck {
            let why = format!(
                "{what}: its thread did not come back {} s after the request timeout (blocked outside Python)",
                stuck_grace().as_secs_f64()
            );
            match STUCK.get() {
                Some(handler) => {
                    log::error!(target: "oxwsgi", "{why}");
                    handler(&why);
                }
                None => log::error!(target: "oxwsgi", "{why}; it stays busy until it returns"),
            }
        }
    }
}

type Expired = Vec<(u64, Option<TimeoutAction>)>;

/// Sleeps until an entry is due; returns the requests that just passed
/// their deadline (with their server actions) and those now stuck.
fn wait_for_due() -> (Expired, Vec<String>) {
    let mut guard = WATCH.lock().recover();
    loop {
        let now = Instant::now();
        let w = guard.get_or_insert_with(Watch::default);
        let mut expired = Vec::new();
        let mut stuck = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, e) in &mut w.entries {
            let Some(due) = e.due() else { continue };
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
            } else if !e.fired {
                e.fired = true;
                expired.push((*id, e.action.take()));
            } else {
                e.stuck = true;
                stuck.push(e.what.clone());
            }
        }
        if !expired.is_empty() || !stuck.is_empty() {
            return (expired, stuck);
        }
        guard = match next {
            Some(t) => WAKE.wait_timeout(guard, t - now).recover().0,
            None => WAKE.wait(guard).recover(),
        };
    }
}

/// Raises `oxwsgi.RequestTimeout` in request `id`'s thread, if it is still
/// watched, and logs where the thread was.
fn interrupt(id: u64) {
    if !embed::python_running() {
        return;
    }
    let interp = WATCH
        .lock()
        .recover()
        .as_ref()
        .and_then(|w| w.entries.get(&id))
        .map(|e| e.interp);
    let Some(interp) = interp else {
        return;
    };
    embed::ensure_thread_state();
    // Attached as a thread of the request's interpreter: there the GIL's
    // holder is asked to let go (`embed::attach_in`), and the exception is
    // raised.
    crate::python::app_group::attach_interpreter(interp, |py| {
        // Under the GIL the request thread cannot end meanwhile (it ends
        // with the GIL held).
        let found = WATCH
            .lock()
            .recover()
            .as_ref()
            .and_then(|w| w.entries.get(&id))
            .map(|e| (e.ident, e.started.elapsed(), e.limit, e.what.clone()));
        let Some((ident, elapsed, limit, what)) = found else {
            return;
        };
        // Python code runs here (the stack is formatted by `traceback`), and
        // the interpreter may hand the GIL to the request's thread meanwhile:
        // it may end its request, and start another.
        let stack = stack_of(py, ident);
        let exc = py
            .import("oxwsgi")
            .and_then(|m| m.getattr("RequestTimeout"));
        // So it is looked up again, and raised with no Python code between
        // the two (the GIL stays with this thread): the exception reaches
        // the request it is meant for, or none.
        let still = WATCH
            .lock()
            .recover()
            .as_ref()
            .is_some_and(|w| w.entries.contains_key(&id));
        if !still {
            return;
        }
        let raised = exc.is_ok_and(|exc| embed::raise_in_thread(py, ident, Some(&exc)));
        let how = if raised {
            "oxwsgi.RequestTimeout raised in its thread"
        } else {
            "its thread could not be interrupted"
        };
        let at = if stack.is_empty() {
            " (the thread runs no Python code now)".to_string()
        } else {
            format!(", which was at:\n{}", stack.join("\n"))
        };
        log::error!(
            target: "oxwsgi",
            "{what}: request timeout after {:.3} s (limit {:.3} s); {how}{at}",
            elapsed.as_secs_f64(),
            limit.as_secs_f64()
        );
    });
}

fn stack_of(py: Python<'_>, ident: u64) -> Vec<String> {
    py.import("oxwsgi_support")
        .and_then(|m| m.call_method1("stack_of", (ident,)))
        .and_then(|s| s.extract())
        .unwrap_or_default()
}

//! `WSGIDrainTime SECONDS`: on a graceful stop (`apachectl graceful-stop`,
//! SIGWINCH to the parent) every child first answers readiness 503 for that
//! long while it goes on serving everything; then the stop goes on as the
//! MPM would have begun it at once (listeners closed, children finishing
//! what they have). A load balancer's health check takes the host out
//! before a connection is refused.
//!
//! Apache gives a module no hook before a graceful stop: the MPM's signal
//! handler sets a flag its main loop reads. So the parent puts its own
//! handler in front of the MPM's, once the MPM has set its own for this
//! generation (from the child_status hook, which runs in the parent after
//! each child it starts). The first graceful-stop signal marks the shared
//! metrics region draining and arms a timer that raises the same signal
//! when the drain is over; the timer's signal puts the MPM's handler back
//! and delivers itself to it. Everything a handler does is async-signal-safe:
//! atomics, `write(2)`, `sigaction`, `timer_settime`, `raise`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering};
use std::time::Duration;

use oxwsgi_core::ops::metrics::Region;

/// Apache's graceful-stop signal (AP_SIG_GRACEFUL_STOP on Linux).
const SIGNAL: libc::c_int = libc::SIGWINCH;

/// WSGIDrainTime, in milliseconds (0: off).
static MILLIS: AtomicU32 = AtomicU32::new(0);
/// The parent's pid: a child that inherited the handler passes the signal
/// on as if it were not there.
static PARENT: AtomicI32 = AtomicI32::new(0);
/// The metrics region the children read readiness from.
static REGION: AtomicPtr<Region> = AtomicPtr::new(std::ptr::null_mut());
/// The timer that ends the drain (a `timer_t`), made once in the parent.
static TIMER: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());
static TIMER_MADE: AtomicBool = AtomicBool::new(false);
/// A drain is under way (a second signal meanwhile changes nothing).
static DRAINING: AtomicBool = AtomicBool::new(false);
/// The log line the handler writes when the drain begins (made beforehand:
/// a handler may not allocate).
static BEGIN_LINE: AtomicPtr<Vec<u8>> = AtomicPtr::new(std::ptr::null_mut());

/// The MPM's action for the signal, saved when ours replaced it. Written
/// only while ours is not installed (so the handler never runs during the
/// write), read by the handler.
struct Saved(UnsafeCell<Option<libc::sigaction>>);
// SAFETY: see the struct's comment: the one writer runs while no reader
// can, in the parent's single thread.
unsafe impl Sync for Saved {}
static SAVED: Saved = Saved(UnsafeCell::new(None));

/// In the parent, once the configuration is read (each generation), before
/// its children fork: what the handler needs. `time`: WSGIDrainTime.
pub fn prepare(time: Option<Duration>, region: Option<&'static Region>) {
    let millis = time.map_or(0, |t| t.as_millis().clamp(1, u128::from(u32::MAX)) as u32);
    MILLIS.store(millis, Ordering::Release);
    REGION.store(
        region.map_or(std::ptr::null_mut(), |r| std::ptr::from_ref(r).cast_mut()),
        Ordering::Release,
    );
    PARENT.store(std::process::id() as i32, Ordering::Release);
    let Some(time) = time else {
        return;
    };
    let line = format!(
        "[oxwsgi] graceful stop: readiness answers 503 for {time:?} (WSGIDrainTime), \
         then Apache stops gracefully\n"
    )
    .into_bytes();
    // SAFETY: a BEGIN_LINE that is set is a leaked, never freed Vec.
    let same = unsafe { BEGIN_LINE.load(Ordering::Acquire).as_ref() } == Some(&line);
    if !same {
        // Leaked, not freed: a signal may be reading the old one. A few
        // bytes when a graceful restart changes the time.
        BEGIN_LINE.store(Box::into_raw(Box::new(line)), Ordering::Release);
    }
}

/// In the parent, after the MPM started a child: puts our handler in front
/// of the MPM's if the MPM set its own since (a new generation does).
pub fn interpose() {
    if MILLIS.load(Ordering::Acquire) == 0 || DRAINING.load(Ordering::Acquire) {
        return;
    }
    if !make_timer() {
        return;
    }
    let ours = on_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    // SAFETY: sigaction reads the current action into a zeroed local; when
    // it is not ours, SAVED is written while our handler is not installed
    // (see Saved), then ours replaces it, with SA_SIGINFO to match its
    // signature and the MPM's mask.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(SIGNAL, std::ptr::null(), &mut current) != 0
            || current.sa_sigaction == ours
        {
            return;
        }
        *SAVED.0.get() = Some(current);
        let mut sa = current;
        sa.sa_sigaction = ours;
        sa.sa_flags = current.sa_flags | libc::SA_SIGINFO;
        libc::sigaction(SIGNAL, &sa, std::ptr::null_mut());
    }
}

/// The drain's timer: it raises the same signal, told apart by its code.
fn make_timer() -> bool {
    if TIMER_MADE.load(Ordering::Acquire) {
        return true;
    }
    // SAFETY: a zeroed sigevent asking for SIGNAL; timer_create writes the
    // new timer's id into a live local.
    unsafe {
        let mut ev: libc::sigevent = std::mem::zeroed();
        ev.sigev_notify = libc::SIGEV_SIGNAL;
        ev.sigev_signo = SIGNAL;
        let mut timer: libc::timer_t = std::ptr::null_mut();
        if libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut timer) != 0 {
            log::error!(
                target: "oxwsgi",
                "WSGIDrainTime: cannot make the drain's timer ({}); a graceful stop will not drain",
                std::io::Error::last_os_error()
            );
            return false;
        }
        TIMER.store(timer, Ordering::Release);
    }
    TIMER_MADE.store(true, Ordering::Release);
    true
}

/// The graceful-stop signal, in front of the MPM's handler. Guarded like
/// every entry; nothing in it allocates or can panic.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    oxwsgi_core::guard::entry("the graceful-stop signal", (), || {
        // SAFETY: the kernel's arguments to this SA_SIGINFO handler.
        unsafe { signalled(sig, info, ctx) }
    });
}

/// # Safety
/// The kernel's arguments to a SA_SIGINFO handler, in a signal handler.
unsafe fn signalled(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: getpid is async-signal-safe.
    if unsafe { libc::getpid() } != PARENT.load(Ordering::Acquire) {
        // SAFETY: the kernel's arguments, passed on as they came.
        unsafe { pass_on(sig, info, ctx) };
        return;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a live siginfo.
    let from_timer = !info.is_null() && unsafe { (*info).si_code } == libc::SI_TIMER;
    if from_timer {
        // SAFETY: async-signal-safe calls only; see hand_back.
        unsafe { hand_back(sig) };
        return;
    }
    if DRAINING.swap(true, Ordering::AcqRel) {
        return;
    }
    let region = REGION.load(Ordering::Acquire);
    // SAFETY: REGION, when set, is the metrics region, mapped until the
    // process exits; BEGIN_LINE, when set, is a Vec leaked by prepare and
    // never freed; write, timer_settime are async-signal-safe.
    unsafe {
        if let Some(r) = region.as_ref() {
            r.start_draining();
        }
        if let Some(line) = BEGIN_LINE.load(Ordering::Acquire).as_ref() {
            libc::write(2, line.as_ptr().cast(), line.len());
        }
        let millis = MILLIS.load(Ordering::Acquire).max(1);
        let mut when: libc::itimerspec = std::mem::zeroed();
        when.it_value.tv_sec = libc::time_t::from(millis / 1000);
        when.it_value.tv_nsec = libc::c_long::from(millis % 1000) * 1_000_000;
        let armed = libc::timer_settime(
            TIMER.load(Ordering::Acquire),
            0,
            &when,
            std::ptr::null_mut(),
        ) == 0;
        if !armed {
            hand_back(sig);
        }
    }
}

/// The drain is over: the MPM's handler goes back in place and gets the
/// signal it was sent.
///
/// # Safety
/// From the signal handler, in the parent, after `interpose` saved the
/// MPM's action.
unsafe fn hand_back(sig: libc::c_int) {
    // SAFETY: SAVED was written before our handler went in (the
    // function's contract); sigaction and raise are async-signal-safe.
    unsafe {
        if let Some(mpm) = (*SAVED.0.get()).as_ref() {
            libc::sigaction(sig, mpm, std::ptr::null_mut());
        }
        libc::raise(sig);
    }
}

/// A child that inherited the handler: the signal goes where it would have
/// gone without it.
///
/// # Safety
/// The kernel's arguments to a SA_SIGINFO handler.
unsafe fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: SAVED was written before the fork that made this child (the
    // handler is only inherited after interpose), and is never written in
    // a child; the saved handler is called as its flags say it takes its
    // arguments.
    unsafe {
        let Some(mpm) = (*SAVED.0.get()).as_ref() else {
            return;
        };
        match mpm.sa_sigaction {
            // SIGWINCH's default is to ignore it.
            libc::SIG_DFL | libc::SIG_IGN => {}
            h if mpm.sa_flags & libc::SA_SIGINFO != 0 => {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(h);
                f(sig, info, ctx);
            }
            h => {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
                f(sig);
            }
        }
    }
}

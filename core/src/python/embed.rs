//! The raw CPython layer: every direct C-API call of the core lives here, under
//! small safe functions that the rest of the core uses.
//!
//! - interpreter start (explicit `PyPreConfig`/`PyConfig`) and bounded finalisation,
//! - one persistent Python thread state per server thread,
//! - zero-copy views of `bytes` objects that can cross threads,
//! - latin-1 `str` construction and fd duplication,
//! - `bytes` objects filled in place, without zeroing them first.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::sync::Recover;

/// Set once Python has been finalised: thread-state destructors must then
/// leave the interpreter alone.
static FINALIZED: AtomicBool = AtomicBool::new(false);
/// The thread state of the thread that initialised Python, released after start.
static MAIN_TSTATE: AtomicPtr<ffi::PyThreadState> = AtomicPtr::new(std::ptr::null_mut());

/// What the interpreter is started with, already validated (see `interpreter`).
pub(crate) struct StartParams<'a> {
    pub program_name: &'a Path,
    pub home: Option<&'a Path>,
    /// `-O` level, bytecode writing, hash seed (`interpreter::PythonSettings`).
    pub optimize: u8,
    pub write_bytecode: bool,
    pub hash_seed: Option<u32>,
}

/// The server's own SIGINT disposition, saved before Python starts: importing
/// Python's `signal` module installs a KeyboardInterrupt handler even when
/// `install_signal_handlers` is off, and `keep_server_signals` undoes that.
static SAVED_SIGINT: std::sync::Mutex<Option<SigAction>> = std::sync::Mutex::new(None);

struct SigAction(libc::sigaction);

// SAFETY: a sigaction struct is plain data (a handler address, flags, a mask).
unsafe impl Send for SigAction {}

/// Puts back the SIGINT disposition the server had before Python started.
pub(crate) fn keep_server_signals() {
    let saved = SAVED_SIGINT.lock().recover();
    if let Some(SigAction(action)) = saved.as_ref() {
        // SAFETY: `action` was filled in by sigaction for the same signal.
        unsafe {
            libc::sigaction(libc::SIGINT, action, std::ptr::null_mut());
        }
    }
}

/// Makes the children this process starts its own to wait for. nginx's
/// workers inherit the master's SIGCHLD handler, which reaps every child
/// with `waitpid(-1)`: a child the app starts (`subprocess`) would then be
/// reaped by nginx first, and Python's `wait()` would get ECHILD and report
/// exit status 0 for a command that failed. `SIG_IGN` would make the kernel
/// reap them the same way. The default disposition leaves each child to
/// whoever waits for it. Returns whether the disposition changed.
pub(crate) fn own_children() -> bool {
    // SAFETY: sigaction with a null new action only writes into `old`; the
    // new action is a zeroed struct with SIG_DFL and an empty mask, valid
    // for SIGCHLD. Dispositions are per process: the server's master (or
    // parent) keeps its own handler.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction == libc::SIG_DFL
        {
            return false;
        }
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(libc::SIGCHLD, &dfl, std::ptr::null_mut()) == 0
    }
}

/// Whether the calling thread holds the GIL (for tests of when it is
/// released).
pub fn holds_gil() -> bool {
    // SAFETY: PyGILState_Check may be called from any thread, with or
    // without the GIL, once Python is initialised (callers start it first).
    unsafe { ffi::PyGILState_Check() == 1 }
}

/// The current SIGINT handler address, for tests.
pub fn sigint_handler() -> usize {
    // SAFETY: querying with a null new action only writes into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

/// Starts CPython in this process. Called once, by `interpreter::Interpreter::start`.
pub(crate) fn start(params: &StartParams<'_>) -> Result<(), String> {
    // SAFETY: querying with a null new action only writes into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) == 0 {
            *SAVED_SIGINT.lock().recover() = Some(SigAction(old));
        }
    }
    // SAFETY: always safe to call.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err("Python is already initialised in this process".into());
    }
    let program = path_cstring(params.program_name)?;
    let home = params.home.map(path_cstring).transpose()?;

    // SAFETY: PyPreConfig is a plain C struct that PyPreConfig_InitPythonConfig
    // fully initialises before we read or change it; Py_PreInitialize only reads it.
    unsafe {
        let mut pre = std::mem::MaybeUninit::<ffi::PyPreConfig>::zeroed();
        ffi::PyPreConfig_InitPythonConfig(pre.as_mut_ptr());
        let pre = pre.assume_init_mut();
        // Server workers often run with an empty or C locale environment: UTF-8
        // mode gives Python a UTF-8 filesystem encoding regardless, and leaving
        // the locale alone keeps the server's own behaviour unchanged.
        pre.utf8_mode = 1;
        pre.configure_locale = 0;
        pre.coerce_c_locale = 0;
        pre.use_environment = 0;
        pre.parse_argv = 0;
        check(ffi::Py_PreInitialize(pre), "Py_PreInitialize")?;
    }

    // SAFETY: PyConfig_InitPythonConfig initialises every field; the setters copy
    // the C strings we pass (which outlive the calls); PyConfig_Clear frees what
    // the config owns on every path after init.
    unsafe {
        let mut cfg = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(cfg.as_mut_ptr());
        let cfg = cfg.assume_init_mut();
        // The server owns signals, the environment is the server's (not the
        // site's), and the server's C stdio must not be reconfigured.
        cfg.install_signal_handlers = 0;
        cfg.use_environment = 0;
        cfg.parse_argv = 0;
        cfg.user_site_directory = 0;
        cfg.configure_c_stdio = 0;
        cfg.pathconfig_warnings = 0;
        cfg.optimization_level = params.optimize.into();
        cfg.write_bytecode = params.write_bytecode.into();
        if let Some(seed) = params.hash_seed {
            cfg.use_hash_seed = 1;
            cfg.hash_seed = seed.into();
        }
        let result = (|| {
            check(
                ffi::PyConfig_SetBytesString(cfg, &mut cfg.program_name, program.as_ptr()),
                "program name",
            )?;
            if let Some(home) = &home {
                check(
                    ffi::PyConfig_SetBytesString(cfg, &mut cfg.home, home.as_ptr()),
                    "python home",
                )?;
            }
            check(ffi::Py_InitializeFromConfig(cfg), "Py_InitializeFromConfig")
        })();
        ffi::PyConfig_Clear(cfg);
        result?;
    }
    // The initialising thread now holds the GIL with the main thread state.
    // Release it so server threads can attach; `finalize` takes it back.
    // SAFETY: Python was just initialised on this thread, which holds the GIL.
    let tstate = unsafe { ffi::PyEval_SaveThread() };
    MAIN_TSTATE.store(tstate, Ordering::Release);
    PERSISTENT.with(|p| p.set(true));
    OWN_MAIN.with(|m| m.set(tstate));
    Ok(())
}

fn path_cstring(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("path {} contains a NUL byte", path.display()))
}

fn check(status: ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only inspects the struct; err_msg, when set, is
    // a static C string owned by CPython.
    unsafe {
        if ffi::PyStatus_Exception(status) == 0 {
            return Ok(());
        }
        let msg = if status.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(status.err_msg)
                .to_string_lossy()
                .into_owned()
        };
        Err(format!("{what} failed: {msg}"))
    }
}

thread_local! {
    /// Whether this thread already owns a persistent Python thread state.
    static PERSISTENT: Cell<bool> = const { Cell::new(false) };
    /// That state (its main-interpreter one).
    static OWN_MAIN: Cell<*mut ffi::PyThreadState> = const { Cell::new(std::ptr::null_mut()) };
    static KEEPER: ThreadStateKeeper = const { ThreadStateKeeper(Cell::new(std::ptr::null_mut())) };
}

/// Deletes `state`, a state of the calling thread.
///
/// # Safety
/// `state` was made for the calling thread, is live and is not current
/// (the thread is attached nowhere): restoring it takes the GIL, and
/// DeleteCurrent deletes it and lets the GIL go.
unsafe fn delete_own_state(state: *mut ffi::PyThreadState) {
    // SAFETY: the contract.
    unsafe {
        ffi::PyEval_RestoreThread(state);
        ffi::PyThreadState_Clear(state);
        ffi::PyThreadState_DeleteCurrent();
    }
}

/// Deletes this thread's persistent thread state when the thread exits.
struct ThreadStateKeeper(Cell<*mut ffi::PyThreadState>);

impl Drop for ThreadStateKeeper {
    fn drop(&mut self) {
        let state = self.0.get();
        if state.is_null() || !python_running() {
            return;
        }
        // SAFETY: `state` is this thread's main-interpreter state, made by
        // `ensure_thread_state`; the thread is exiting, attached nowhere.
        unsafe { delete_own_state(state) };
    }
}

/// Gives the calling thread a Python thread state that lives as long as the
/// thread, so that attaching per request does not create and destroy one (and
/// `threading.local` data survives between requests served by the thread).
/// It is the thread's PyGILState state, which pyo3's `Python::attach`
/// restores: call this before attaching to the main interpreter.
#[inline]
pub fn ensure_thread_state() {
    if PERSISTENT.with(|p| p.get()) {
        keep_main_bound();
        return;
    }
    ensure_thread_state_slow();
}

/// As `ensure_thread_state`, without binding the state again: for a
/// thread about to enter an application group, which needs its main state
/// to exist (first, so that it is the PyGILState one) but not to be bound
/// (entering the group rebinds it to the group's anyway).
#[inline]
fn ensure_main_state() {
    if !PERSISTENT.with(|p| p.get()) {
        ensure_thread_state_slow();
    }
}

/// Makes this thread's main-interpreter state its PyGILState state again
/// when a sub-interpreter's took its place: from Python 3.12, a state that
/// becomes current binds itself so, and pyo3 (PyGILState_Ensure) would
/// then run main-interpreter code in the application group last entered.
/// A pointer comparison, except on a thread's way back from a group.
#[inline]
fn keep_main_bound() {
    let main = OWN_MAIN.with(|m| m.get());
    // SAFETY: reads this thread's PyGILState state; no GIL needed.
    if main.is_null() || unsafe { ffi::PyGILState_GetThisThreadState() } == main {
        return;
    }
    if this_thread_attached() {
        return;
    }
    // SAFETY: `main` is this thread's own state, current nowhere (the
    // thread is attached nowhere); making it current binds it again, and
    // saving it lets the GIL go.
    unsafe {
        ffi::PyEval_RestoreThread(main);
        ffi::PyEval_SaveThread();
    }
}

#[cold]
fn ensure_thread_state_slow() {
    // SAFETY: PyThreadState_New needs no GIL (it locks the interpreter's
    // list of states itself) and registers the new state as this thread's
    // PyGILState one, with a counter of 1, as PyGILState_Ensure followed by
    // PyEval_SaveThread would, but without taking the GIL: under Python
    // 3.11 a main-interpreter thread waiting for the GIL cannot make a busy
    // thread of an application group let go of it. A thread that already
    // has a PyGILState state (Python's own threads) keeps it.
    unsafe {
        if ffi::Py_IsInitialized() == 0 || !ffi::PyGILState_GetThisThreadState().is_null() {
            return;
        }
        let state = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
        OWN_MAIN.with(|m| m.set(state));
        KEEPER.with(|k| k.0.set(state));
    }
    PERSISTENT.with(|p| p.set(true));
}

/// How many thread states the interpreter has (each server thread that ever
/// ran Python holds one until it exits).
pub fn thread_state_count(_py: Python<'_>) -> usize {
    let mut n = 0;
    // SAFETY: the GIL is held (the `Python` token proves it), which keeps the
    // interpreter's thread-state list stable while we walk it.
    unsafe {
        let interp = ffi::PyInterpreterState_Get();
        let mut t = ffi::PyInterpreterState_ThreadHead(interp);
        while !t.is_null() {
            n += 1;
            t = ffi::PyThreadState_Next(t);
        }
    }
    n
}

/// Finalises Python from the thread that started it: runs atexit handlers and
/// tears the interpreter down. The caller has made sure no other thread is in
/// Python (the server stopped its request threads).
pub(crate) fn finalize() -> Result<(), String> {
    let tstate = MAIN_TSTATE.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if tstate.is_null() {
        return Err("Python was not started by this process".into());
    }
    FINALIZED.store(true, Ordering::Release);
    // SAFETY: `tstate` is the main thread state saved by `start` on this thread
    // and not attached anywhere; restoring it gives us the GIL, which
    // Py_FinalizeEx requires and consumes.
    let rc = unsafe {
        ffi::PyEval_RestoreThread(tstate);
        ffi::Py_FinalizeEx()
    };
    if rc == 0 {
        Ok(())
    } else {
        Err("Py_FinalizeEx reported an error while flushing buffered data".into())
    }
}

/// Tunes glibc's allocator for a server process whose Python threads
/// allocate and free request bodies of a few MiB per request: such blocks
/// stay in the heap instead of a fresh mmap (page faults) each time, the heap
/// is trimmed above 8 MiB, and the threads share two arenas (the GIL
/// serialises them anyway), so what a burst leaves behind stays small.
pub fn tune_heap() {
    // SAFETY: mallopt only changes allocator parameters; the server calls
    // this once, before its Python threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// A `str` from bytes taken as latin-1, as PEP 3333 wants for environ values.
#[inline]
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: the pointer and length describe `bytes`; latin-1 decoding cannot
    // fail except on memory exhaustion, which we turn into a panic like pyo3 does.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)
            .expect("out of memory decoding latin-1")
            .cast_into_unchecked()
    }
}

/// A `bytes` object of at most `len` bytes, written in place by `fill`
/// (which may release the GIL: nobody else can see the object yet) and cut
/// to the count it returns. CPython hands the buffer out uninitialised, and
/// it stays so until `fill` writes it: a 1 MiB `wsgi.input.read()` is then
/// one copy, not a memset and a copy.
pub fn bytes_filled<'py, E: From<PyErr>>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<usize, E>,
) -> Result<Bound<'py, PyBytes>, E> {
    // SAFETY: a NULL source asks CPython for an uninitialised buffer of
    // `len` bytes (plus its NUL); the new reference is owned by `obj`.
    let obj = unsafe {
        let ptr = ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t);
        Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: the buffer is `len` bytes long, owned by `obj` (alive for this
    // function), and referenced nowhere else; MaybeUninit makes no claim
    // about its contents.
    let buf = unsafe {
        std::slice::from_raw_parts_mut(
            ffi::PyBytes_AsString(obj.as_ptr()).cast::<MaybeUninit<u8>>(),
            len,
        )
    };
    let written = fill(buf)?;
    assert!(written <= len, "fill claims more bytes than the buffer has");
    if written == len {
        return Ok(obj);
    }
    // SAFETY: `fill` initialised the first `written` bytes of the buffer.
    let head = unsafe {
        std::slice::from_raw_parts(ffi::PyBytes_AsString(obj.as_ptr()).cast::<u8>(), written)
    };
    Ok(PyBytes::new(py, head))
}

/// Zeroes `buf` and views it as initialised bytes: for readers that can only
/// write into initialised memory.
pub fn zeroed(buf: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    for b in buf.iter_mut() {
        b.write(0);
    }
    // SAFETY: every element was just initialised; MaybeUninit<u8> and u8
    // have the same layout.
    unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// A `bytes` object's contents, readable without the GIL and sendable across
/// threads: the response chunks that servers write from their own threads.
pub struct BytesView {
    /// Held only to keep the buffer alive.
    _obj: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `bytes` objects are immutable, and the strong reference in `_obj`
// keeps the buffer at `ptr` alive and unchanged wherever the view goes; `Py`
// itself is Send and defers the decref when dropped without the GIL.
unsafe impl Send for BytesView {}
// SAFETY: the buffer is immutable and kept alive by `_obj`; a shared view
// only reads it, so reads from several threads at once are sound.
unsafe impl Sync for BytesView {}

impl BytesView {
    pub fn new(bytes: Bound<'_, PyBytes>) -> Self {
        let slice = bytes.as_bytes();
        let (ptr, len) = (slice.as_ptr(), slice.len());
        BytesView {
            _obj: bytes.unbind(),
            ptr,
            len,
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: see the Send impl: the buffer is alive and immutable while
        // `self._obj` holds its reference.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// An owned duplicate of a file descriptor that Python code handed us, so the
/// server can send the file even after Python closes its own descriptor.
pub fn dup_fd(fd: RawFd) -> std::io::Result<File> {
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the descriptor is only borrowed for the duration of the dup call;
    // an invalid one makes fcntl fail with EBADF, which we return.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(File::from(borrowed.try_clone_to_owned()?))
}

/// The calling thread's Python thread id (`threading.get_ident()`), the one
/// `raise_in_thread` takes.
pub(crate) fn thread_ident() -> u64 {
    // SAFETY: PyThread_get_thread_ident only reads the calling thread's id
    // (pthread_self); it needs neither the GIL nor an initialised Python.
    unsafe { ffi::PyThread_get_thread_ident() }
}

/// Schedules `exc` (an exception class) to be raised in the Python thread
/// `ident` at its next bytecode, or with `None` clears one still pending.
/// True when the thread was found.
pub(crate) fn raise_in_thread(_py: Python<'_>, ident: u64, exc: Option<&Bound<'_, PyAny>>) -> bool {
    let exc = exc.map_or(std::ptr::null_mut(), Bound::as_ptr);
    // SAFETY: the GIL is held (`_py`); `exc` is a live object kept alive by the
    // caller's borrow, or null (clear), and the call does not steal a
    // reference. The id is only compared with thread states' ids.
    unsafe { ffi::PyThreadState_SetAsyncExc(ident as std::ffi::c_long, exc) == 1 }
}

/// Python is up and not being finalised: a helper thread may attach.
pub(crate) fn python_running() -> bool {
    // SAFETY: Py_IsInitialized only reads the runtime's state flag; it is
    // callable at any time, from any thread, without the GIL.
    !FINALIZED.load(Ordering::Acquire) && unsafe { ffi::Py_IsInitialized() } != 0
}

/// A sub-interpreter (an application group's), made by `new_interpreter`
/// and never ended: the process exits with it (`interpreters`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SubInterpreter(*mut ffi::PyInterpreterState);

// SAFETY: an interpreter state is process-wide; it is only used under the
// GIL, through thread states of the thread using it.
unsafe impl Send for SubInterpreter {}
// SAFETY: as for Send: shared references only hand the pointer to calls
// made under the GIL.
unsafe impl Sync for SubInterpreter {}

/// Makes a sub-interpreter sharing the GIL and the allocator of the main
/// one (Python's legacy sub-interpreters, mod_wsgi's kind), runs `setup`
/// in it, and comes back to the caller's thread state. The new
/// interpreter's first thread state becomes this thread's in it. A setup
/// that fails ends the interpreter again.
pub(crate) fn new_interpreter(
    py: Python<'_>,
    setup: impl FnOnce(Python<'_>) -> PyResult<()>,
) -> Result<SubInterpreter, String> {
    // SAFETY: the GIL is held (`py`) by the caller's thread state, which
    // Py_NewInterpreter swaps out for the new interpreter's first one;
    // swapping it back below restores the caller's state on every path.
    let (first, caller) = unsafe {
        let caller = ffi::PyThreadState_Get();
        let first = ffi::Py_NewInterpreter();
        if first.is_null() {
            ffi::PyThreadState_Swap(caller);
            return Err("Py_NewInterpreter failed".into());
        }
        (first, caller)
    };
    let setup = catch_unwind(AssertUnwindSafe(|| setup(py)));
    // SAFETY: `first` is current on this thread (setup runs Python, which
    // may release and retake the GIL, but always with the current state).
    let interp = unsafe { ffi::PyThreadState_GetInterpreter(first) };
    let failed = match setup {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            let msg = e.to_string();
            crate::python::traceback::log_py_err(
                py,
                &e,
                "application group: setting up its interpreter",
            );
            Some(msg)
        }
        Err(_) => Some("setting up the interpreter panicked".to_string()),
    };
    if let Some(msg) = failed {
        // SAFETY: `first` is the only thread state of the new interpreter
        // and the current one, which Py_EndInterpreter requires; it leaves
        // no state current, so the caller's is swapped back in.
        unsafe {
            ffi::Py_EndInterpreter(first);
            ffi::PyThreadState_Swap(caller);
        }
        return Err(msg);
    }
    // `first` is this thread's state in the new interpreter from now on:
    // a thread has one state per interpreter (PyThreadState_SetAsyncExc
    // picks the first state of a thread it finds, which must be the one
    // running).
    SUB_STATES.with(|s| s.borrow_mut().push((SubInterpreter(interp), first)));
    keep(SubInterpreter(interp));
    // SAFETY: the caller's state was current when we were called, and the
    // GIL is still held.
    unsafe { ffi::PyThreadState_Swap(caller) };
    Ok(SubInterpreter(interp))
}

/// Gives `interp` a thread state that is never deleted, held by a thread
/// that runs no Python: Python 3.11 reuses an interpreter's built-in first
/// state when its list of states has emptied (every thread that entered it
/// exited) and aborts on it ("thread state already initialized").
fn keep(interp: SubInterpreter) {
    type Ask = (SubInterpreter, std::sync::mpsc::Sender<()>);
    static KEEPER: std::sync::OnceLock<Option<std::sync::Mutex<std::sync::mpsc::Sender<Ask>>>> =
        std::sync::OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Ask>();
        std::thread::Builder::new()
            .name("oxwsgi-interps".into())
            .spawn(move || {
                ensure_main_state();
                for (interp, done) in rx {
                    // SAFETY: `interp` is live (interpreters are never
                    // ended); PyThreadState_New needs no GIL. The state is
                    // never current and never deleted.
                    unsafe { ffi::PyThreadState_New(interp.0) };
                    let _ = done.send(());
                }
            })
            .ok()
            .map(|_| std::sync::Mutex::new(tx))
    });
    let Some(keeper) = keeper else {
        log::warn!(target: "oxwsgi", "cannot start the thread that keeps the interpreters' states");
        return;
    };
    let (done, wait) = std::sync::mpsc::channel();
    if keeper.lock().recover().send((interp, done)).is_ok() {
        let _ = wait.recv();
    }
}

thread_local! {
    /// This thread's state in each sub-interpreter it entered, kept (as
    /// the main one is) for the thread's life.
    static SUB_STATES: SubStates = const { SubStates(std::cell::RefCell::new(Vec::new())) };
}

struct SubStates(std::cell::RefCell<Vec<(SubInterpreter, *mut ffi::PyThreadState)>>);

impl std::ops::Deref for SubStates {
    type Target = std::cell::RefCell<Vec<(SubInterpreter, *mut ffi::PyThreadState)>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for SubStates {
    fn drop(&mut self) {
        if !python_running() {
            return;
        }
        for (_, t) in self.0.borrow_mut().drain(..) {
            // SAFETY: `t` was made for this thread, which is exiting,
            // attached nowhere.
            unsafe { delete_own_state(t) };
        }
    }
}

/// This thread's state in `interp`, made on first use (after its main
/// one: a thread's first state is its PyGILState state, which must be in
/// the main interpreter).
fn state_in(interp: SubInterpreter) -> *mut ffi::PyThreadState {
    ensure_main_state();
    SUB_STATES.with(|s| {
        let mut s = s.borrow_mut();
        if let Some((_, t)) = s.iter().find(|(i, _)| *i == interp) {
            return *t;
        }
        // SAFETY: `interp` is a live interpreter (they are never ended
        // once set up); PyThreadState_New needs no GIL (it locks the
        // interpreter's list of states itself).
        let t = unsafe { ffi::PyThreadState_New(interp.0) };
        s.push((interp, t));
        t
    })
}

/// Runs `f` with this thread's state in `interp` current, and the
/// caller's back afterwards (also when `f` panics): for a thread that is
/// attached already.
pub(crate) fn within<R>(
    py: Python<'_>,
    interp: SubInterpreter,
    f: impl FnOnce(Python<'_>) -> R,
) -> R {
    let state = state_in(interp);
    // SAFETY: the GIL is held (`py`) with the caller's state current.
    let caller = unsafe { ffi::PyThreadState_Get() };
    if caller == state {
        return f(py);
    }
    struct Back(*mut ffi::PyThreadState);
    impl Drop for Back {
        fn drop(&mut self) {
            // SAFETY: whatever `f` did with the GIL, it holds it again on
            // return (or unwind) with `state` current; the caller's state
            // takes its place.
            unsafe { ffi::PyThreadState_Swap(self.0) };
        }
    }
    // SAFETY: `state` belongs to this thread and to `interp`, and is
    // current nowhere else; the GIL is held.
    unsafe { ffi::PyThreadState_Swap(state) };
    let _back = Back(caller);
    f(py)
}

/// The interpreter of the calling thread's current state: `None` for the
/// main one.
pub(crate) fn current_interpreter(_py: Python<'_>) -> Option<SubInterpreter> {
    // SAFETY: the GIL is held (`_py`), so a thread state is current.
    unsafe {
        let interp = ffi::PyThreadState_GetInterpreter(ffi::PyThreadState_Get());
        (interp != ffi::PyInterpreterState_Main()).then_some(SubInterpreter(interp))
    }
}

/// Runs `f` attached to `interp` from a thread that is not attached: the
/// GIL is taken with this thread's state in `interp` itself, not with its
/// main one. Python 3.11 asks the GIL's holder to let go only when it runs
/// in the waiter's interpreter: a thread waiting as a main-interpreter
/// thread would wait for a busy request of a group to end.
///
/// pyo3 counts a thread as attached only through its own entry points, and
/// PyGILState attaches only to the main interpreter: `f` therefore runs
/// inside a call of `RUNNER`, a function pyo3 made, whose entry counts the
/// attachment.
pub(crate) fn attach_in<R, F: FnOnce(Python<'_>) -> R>(interp: SubInterpreter, f: F) -> R {
    if this_thread_attached() || RUNNER.get().is_none() {
        return Python::attach(|py| within(py, interp, f));
    }
    let state = state_in(interp);
    let mut slot = JobSlot {
        f: Some(f),
        result: None,
    };
    let job = Job {
        data: (&raw mut slot).cast(),
        run: run_job::<F, R>,
    };
    // SAFETY: this thread is attached nowhere; `state` is its own state in
    // `interp`, current nowhere, so restoring it takes the GIL.
    unsafe { ffi::PyEval_RestoreThread(state) };
    let outer = JOB.replace(Some(job));
    // SAFETY: the GIL is held; RUNNER is a live function object (kept by
    // the static), called with no arguments; the new reference it returns
    // is released, and an error it raised (none is expected) printed.
    unsafe {
        let runner = RUNNER.get().map_or(std::ptr::null_mut(), |r| r.as_ptr());
        let out = ffi::PyObject_CallNoArgs(runner);
        if out.is_null() {
            ffi::PyErr_Print();
        } else {
            ffi::Py_DECREF(out);
        }
    }
    JOB.set(outer);
    // SAFETY: `state` is current and holds the GIL, taken above.
    unsafe { ffi::PyEval_SaveThread() };
    match slot.result {
        Some(Ok(r)) => r,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => panic!("the interpreter's runner did not run its job"),
    }
}

/// Whether the thread state holding the GIL is one of this thread's (its
/// main one or one in a sub-interpreter). Python 3.11 keeps one current
/// state for the whole process (the GIL holder's), later versions one per
/// thread: comparing with this thread's own states answers for both.
fn this_thread_attached() -> bool {
    // SAFETY: both calls only read (the current state, this thread's
    // PyGILState one), need no GIL, and may return NULL.
    let (current, own) = unsafe {
        (
            ffi::compat::PyThreadState_GetUnchecked(),
            ffi::PyGILState_GetThisThreadState(),
        )
    };
    !current.is_null()
        && (current == own || SUB_STATES.with(|s| s.borrow().iter().any(|(_, t)| *t == current)))
}

/// The function `attach_in` enters an interpreter through.
static RUNNER: std::sync::OnceLock<Py<pyo3::types::PyCFunction>> = std::sync::OnceLock::new();

/// Makes `RUNNER` (in the main interpreter, at its setup).
pub(crate) fn make_runner(py: Python<'_>) -> PyResult<()> {
    if RUNNER.get().is_some() {
        return Ok(());
    }
    let f = pyo3::types::PyCFunction::new_closure(
        py,
        Some(c"oxwsgi_enter"),
        None,
        |args: &Bound<'_, pyo3::types::PyTuple>, _: Option<&Bound<'_, pyo3::types::PyDict>>| {
            if let Some(job) = JOB.take() {
                // SAFETY: `job` was set by `attach_in` on this thread for
                // this call, and its slot lives on that caller's stack
                // until the call returns.
                unsafe { (job.run)(job.data, args.py()) };
            }
        },
    )?;
    let _ = RUNNER.set(f.unbind());
    Ok(())
}

/// What `RUNNER` runs: a slot on `attach_in`'s stack and the function that
/// runs it, typed for it.
#[derive(Clone, Copy)]
struct Job {
    data: *mut (),
    run: unsafe fn(*mut (), Python<'_>),
}

thread_local! {
    static JOB: Cell<Option<Job>> = const { Cell::new(None) };
}

struct JobSlot<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

/// # Safety
/// `data` points to a live `JobSlot<F, R>` no one else uses meanwhile.
unsafe fn run_job<F: FnOnce(Python<'_>) -> R, R>(data: *mut (), py: Python<'_>) {
    // SAFETY: the contract: `attach_in` made `data` from its own slot.
    let slot = unsafe { &mut *data.cast::<JobSlot<F, R>>() };
    if let Some(f) = slot.f.take() {
        slot.result = Some(catch_unwind(AssertUnwindSafe(|| f(py))));
    }
}

/// The Python version this build embeds, as `(major, minor)`.
pub fn embedded_version() -> (u32, u32) {
    // The libpython we link is versioned (libpython3.11.so.1.0): the build
    // script records the version of the interpreter pyo3 was configured with.
    let v = env!("OXWSGI_BUILD_PYTHON_VERSION");
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(3);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

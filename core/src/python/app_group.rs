//! Application groups (mod_wsgi's `WSGIApplicationGroup`): the Python
//! interpreters that keep the apps of one process apart. The group `""`
//! (`%{GLOBAL}`) is the main interpreter; any other name gets a
//! sub-interpreter of its own, made when an app of the group first needs
//! it and set up as the main one is (log streams, `oxwsgi`, `mod_wsgi`,
//! the python path). Two Django sites in two groups each import their own
//! `settings`.
//!
//! The sub-interpreters are Python's legacy kind, as mod_wsgi's: they
//! share the GIL and the allocator with the main interpreter, so objects
//! the core keeps process-wide (its types, `wsgi.errors`, interned environ
//! keys, made in the main interpreter at start) serve every group. A
//! thread keeps its state in each interpreter it entered, like its main
//! one. They are never ended: at shutdown each group's threads are joined
//! and its atexit handlers run, and the process exits with them (ending
//! an interpreter with threads of its own still alive aborts Python).

use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use crate::python::embed::{self, SubInterpreter};
use crate::sync::Recover;

/// The main interpreter's group (`%{GLOBAL}`).
pub const GLOBAL: &str = "";

struct Group {
    name: String,
    /// The interpreter, or why it could not be made (logged then; the
    /// group's requests fail without trying again).
    interp: Result<SubInterpreter, String>,
}

static GROUPS: std::sync::Mutex<Vec<Group>> = std::sync::Mutex::new(Vec::new());

/// How a new group's interpreter is set up (current on the thread): the
/// interpreter's start registers it, as it set up the main one.
pub type SetUp = fn(Python<'_>, &str) -> PyResult<()>;

static SET_UP: std::sync::OnceLock<SetUp> = std::sync::OnceLock::new();

/// Called once Python is set up: how the groups' interpreters will be.
pub fn set_up_with(f: SetUp) {
    let _ = SET_UP.set(f);
}

/// Why a group's interpreter is not there to run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub group: String,
    pub reason: String,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "application group {:?} has no interpreter: {}",
            self.group, self.reason
        )
    }
}

/// Runs `f` in application group `group`'s interpreter (the calling
/// thread holds the GIL with its main thread state current). The main
/// group costs nothing but the comparison.
#[inline]
pub fn within<R>(
    py: Python<'_>,
    group: &str,
    f: impl FnOnce(Python<'_>) -> R,
) -> Result<R, Unavailable> {
    if group == GLOBAL {
        return Ok(f(py));
    }
    let interp = interpreter_of(py, group)?;
    Ok(embed::within(py, interp, f))
}

/// Runs `f` attached to application group `group`'s interpreter, from a
/// thread that is not attached (a request's). The main group is
/// `Python::attach` and a comparison.
#[inline]
pub fn attach<R>(group: &str, f: impl FnOnce(Python<'_>) -> R) -> Result<R, Unavailable> {
    if group == GLOBAL {
        return Ok(Python::attach(f));
    }
    let known = GROUPS
        .lock()
        .recover()
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.interp.clone());
    let interp = match known {
        Some(i) => i.map_err(|reason| Unavailable {
            group: group.to_string(),
            reason,
        })?,
        None => {
            // Made from the main interpreter (first use of the group only).
            embed::ensure_thread_state();
            Python::attach(|py| interpreter_of(py, group))?
        }
    };
    Ok(embed::attach_in(interp, f))
}

/// As `attach`, for the interpreter `interp` (`None`: the main one).
pub(crate) fn attach_interpreter<R>(
    interp: Option<SubInterpreter>,
    f: impl FnOnce(Python<'_>) -> R,
) -> R {
    match interp {
        None => Python::attach(f),
        Some(i) => embed::attach_in(i, f),
    }
}

/// Runs `f` in the interpreter `interp` names (`None`: the main one), from
/// a thread attached to the main one.
pub(crate) fn within_interpreter<R>(
    py: Python<'_>,
    interp: Option<SubInterpreter>,
    f: impl FnOnce(Python<'_>) -> R,
) -> R {
    match interp {
        None => f(py),
        Some(i) => embed::within(py, i, f),
    }
}

/// The interpreter the calling thread runs in now (`None`: the main one).
pub(crate) fn current(py: Python<'_>) -> Option<SubInterpreter> {
    embed::current_interpreter(py)
}

#[cold]
fn interpreter_of(py: Python<'_>, group: &str) -> Result<SubInterpreter, Unavailable> {
    // Setting up an interpreter runs Python, which lets go of the GIL now
    // and then: a thread waiting here must not hold it meanwhile.
    let mut groups = GROUPS.lock_py_attached(py).recover();
    let unavailable = |reason: &String| Unavailable {
        group: group.to_string(),
        reason: reason.clone(),
    };
    if let Some(g) = groups.iter().find(|g| g.name == group) {
        return g.interp.clone().map_err(|e| unavailable(&e));
    }
    let interp = embed::new_interpreter(py, |py| match SET_UP.get() {
        Some(set_up) => set_up(py, group),
        None => Err(pyo3::exceptions::PyRuntimeError::new_err(
            "the main interpreter is not set up",
        )),
    });
    match &interp {
        Ok(_) => log::info!(target: "oxwsgi", "application group {group:?}: interpreter made"),
        Err(e) => log::error!(
            target: "oxwsgi",
            "application group {group:?}: cannot make its interpreter ({e}); its requests \
             fail with 500"
        ),
    }
    let result = interp.clone().map_err(|e| unavailable(&e));
    groups.push(Group {
        name: group.to_string(),
        interp,
    });
    result
}

/// Each sub-interpreter made so far, by group name.
pub(crate) fn made() -> Vec<(String, SubInterpreter)> {
    GROUPS
        .lock()
        .recover()
        .iter()
        .filter_map(|g| Some((g.name.clone(), *g.interp.as_ref().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_the_group() {
        let u = Unavailable {
            group: "site|/a".into(),
            reason: "Py_NewInterpreter failed".into(),
        };
        let text = u.to_string();
        assert!(text.contains("\"site|/a\""), "{text}");
        assert!(text.contains("Py_NewInterpreter failed"), "{text}");
    }
}

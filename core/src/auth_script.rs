//! The scripts Apache asks before a request reaches an app, as mod_wsgi
//! runs them: the auth scripts (`WSGIAuthUserScript`,
//! `WSGIAuthGroupScript`, `WSGIAccessScript`), whose functions Apache's
//! authentication, authorization and access control ask with the
//! request's environ (`check_password(environ, user, password)`,
//! `groups_for_user(environ, user)`, `allow_access(environ, host)`,
//! `get_realm_hash(environ, user, realm)`), and the dispatch script
//! (`WSGIDispatchScript`), whose `process_group(environ)`,
//! `application_group(environ)` and `callable_object(environ)` choose
//! where the request runs. Each runs in the application group its
//! directive names (the main interpreter by default). A script is loaded
//! once per group and again when its file changes; an exception is logged
//! with its traceback and the answer is an error (the request is denied,
//! or gets 500).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyDict;

use crate::sync::Recover;

/// What a password check said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The password is the user's (`True`).
    Granted,
    /// It is not (`False`).
    Denied,
    /// No such user (`None`).
    NoUser,
    /// The script failed (logged).
    Error,
}

/// A loaded script: its path and application group, the modification time
/// it was loaded at, and its module (an object of that group's
/// interpreter).
type Loaded = ((PathBuf, String), Option<SystemTime>, Py<PyAny>);

static SCRIPTS: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The script at `path` as a module of group `group`'s interpreter (the
/// one the caller runs in): the one loaded, unless the file changed since.
fn module<'py>(py: Python<'py>, path: &Path, group: &str) -> PyResult<Bound<'py, PyAny>> {
    let now = mtime(path);
    let key = (path.to_path_buf(), group.to_string());
    // Waiting for the lock lets go of the GIL: the thread loading a script
    // may need it back to finish.
    let mut scripts = SCRIPTS.lock_py_attached(py).recover();
    if let Some((_, at, m)) = scripts.iter().find(|(k, _, _)| *k == key) {
        if *at == now {
            return Ok(m.bind(py).clone());
        }
    }
    let name = format!(
        "_oxwsgi_auth_{}",
        path.to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    );
    let m = py
        .import("oxwsgi_support")?
        .call_method1("load_script", (path.as_os_str(), name))?;
    scripts.retain(|(k, _, _)| *k != key);
    scripts.push((key, now, m.clone().unbind()));
    Ok(m)
}

/// The request's environ for a script: its variables, as the server made
/// them (CGI's), and mod_wsgi's.
fn environ<'py>(
    py: Python<'py>,
    vars: &[(Vec<u8>, Vec<u8>)],
    group: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in vars {
        d.set_item(
            crate::python::embed::latin1(py, k),
            crate::python::embed::latin1(py, v),
        )?;
    }
    d.set_item("mod_wsgi.process_group", "")?;
    d.set_item("mod_wsgi.application_group", group)?;
    Ok(d)
}

/// Where a script runs and the request it is asked about.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    /// The script's file.
    pub script: &'a Path,
    /// Its application group (`""`: the main interpreter).
    pub group: &'a str,
    /// The request's variables, as the server made them (CGI's).
    pub vars: &'a [(Vec<u8>, Vec<u8>)],
}

/// Runs `f` in the asked script's interpreter; `None` when the group has
/// none (logged).
fn run<R>(asked: &Asked<'_>, f: impl FnOnce(Python<'_>) -> Option<R>) -> Option<R> {
    if asked.group == crate::python::app_group::GLOBAL {
        crate::python::embed::ensure_thread_state();
    }
    match crate::python::app_group::attach(asked.group, f) {
        Ok(r) => r,
        Err(e) => {
            log::error!(target: "oxwsgi", "{}: {e}", asked.script.display());
            None
        }
    }
}

/// Calls `function` of the script at `script` with the environ of `vars`
/// and `args`; `None` after logging why it failed.
fn call<'py>(
    py: Python<'py>,
    asked: &Asked<'_>,
    function: &str,
    args: &[&[u8]],
) -> Option<Bound<'py, PyAny>> {
    let context = format!("script {}: {function}()", asked.script.display());
    let result = (|| {
        let m = module(py, asked.script, asked.group)?;
        let f = m.getattr(function).map_err(|_| {
            pyo3::exceptions::PyAttributeError::new_err(format!(
                "the script defines no {function}()"
            ))
        })?;
        let mut call_args = vec![environ(py, asked.vars, asked.group)?.into_any()];
        call_args.extend(
            args.iter()
                .map(|a| crate::python::embed::latin1(py, a).into_any()),
        );
        f.call1(pyo3::types::PyTuple::new(py, call_args)?)
    })();
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            crate::python::traceback::log_py_err(py, &e, &context);
            None
        }
    }
}

/// `check_password(environ, user, password)` of the asked script.
pub fn check_password(asked: &Asked<'_>, user: &[u8], password: &[u8]) -> Verdict {
    run(asked, |py| {
        let v = call(py, asked, "check_password", &[user, password])?;
        if v.is_none() {
            return Some(Verdict::NoUser);
        }
        Some(match v.is_truthy() {
            Ok(true) => Verdict::Granted,
            Ok(false) => Verdict::Denied,
            Err(e) => {
                crate::python::traceback::log_py_err(py, &e, "auth script: check_password()");
                Verdict::Error
            }
        })
    })
    .unwrap_or(Verdict::Error)
}

/// `groups_for_user(environ, user)` of the asked script: the user's groups
/// (as text); `None` when the script failed (logged).
pub fn groups_for_user(asked: &Asked<'_>, user: &[u8]) -> Option<Vec<String>> {
    run(asked, |py| {
        let v = call(py, asked, "groups_for_user", &[user])?;
        let mut out = Vec::new();
        let items = v
            .try_iter()
            .map_err(|e| {
                crate::python::traceback::log_py_err(py, &e, "auth script: groups_for_user()")
            })
            .ok()?;
        for item in items {
            let item = item.ok()?;
            let text = match item.extract::<String>() {
                Ok(s) => s,
                Err(_) => String::from_utf8_lossy(&item.extract::<Vec<u8>>().ok()?).into_owned(),
            };
            out.push(text);
        }
        Some(out)
    })
}

/// `allow_access(environ, host)` of the asked script (mod_wsgi's
/// `WSGIAccessScript`): `Some(Some(allowed))`, `Some(None)` when it leaves
/// the decision to the server's other rules, `None` when it failed or
/// answered something else (logged: the request is denied).
pub fn allow_access(asked: &Asked<'_>, host: &[u8]) -> Option<Option<bool>> {
    run(asked, |py| {
        let v = call(py, asked, "allow_access", &[host])?;
        if v.is_none() {
            return Some(None);
        }
        match v.cast::<pyo3::types::PyBool>() {
            Ok(b) => Some(Some(b.is_true())),
            Err(_) => {
                log::error!(
                    target: "oxwsgi",
                    "auth script {}: allow_access() must return a boolean or None",
                    asked.script.display()
                );
                None
            }
        }
    })
}

/// `get_realm_hash(environ, user, realm)` of the asked script (for
/// `AuthDigestProvider wsgi`): `Some(Some(hash))`, the hex MD5 of
/// `user:realm:password`; `Some(None)`: no such user; `None` when it
/// failed or answered something else (logged).
pub fn get_realm_hash(asked: &Asked<'_>, user: &[u8], realm: &[u8]) -> Option<Option<Vec<u8>>> {
    run(asked, |py| {
        let v = call(py, asked, "get_realm_hash", &[user, realm])?;
        if v.is_none() {
            return Some(None);
        }
        let hash = latin1_text(&v).unwrap_or_default();
        if hash.is_empty() {
            log::error!(
                target: "oxwsgi",
                "auth script {}: get_realm_hash() must return the realm hash (a non-empty str or bytes) or None",
                asked.script.display()
            );
            return None;
        }
        Some(Some(hash))
    })
}

/// A `bytes`, or a `str` of Latin-1 characters, as bytes.
fn latin1_text(v: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = v.extract::<Vec<u8>>() {
        return Some(b);
    }
    v.extract::<String>()
        .ok()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// What a dispatch script chose for a request; `None` where it had no
/// such function or it returned `None` (the configuration's choice
/// stands).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatch {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable_object: Option<String>,
}

/// Asks the dispatch script (`WSGIDispatchScript`) where the request runs:
/// its `process_group(environ)`, then `application_group(environ)`, then
/// `callable_object(environ)`, each when it defines it. Each answer is a
/// Latin-1 `str` (or `bytes`) or `None`. `None` when the script failed or
/// answered something else (logged with the traceback: the request gets
/// 500, as under mod_wsgi).
pub fn dispatch(asked: &Asked<'_>) -> Option<Dispatch> {
    run(asked, |py| {
        let context = |f: &str| format!("dispatch script {}: {f}()", asked.script.display());
        let m = match module(py, asked.script, asked.group) {
            Ok(m) => m,
            Err(e) => {
                crate::python::traceback::log_py_err(py, &e, context("import"));
                return None;
            }
        };
        let mut answers = [None, None, None];
        for (slot, function) in
            answers
                .iter_mut()
                .zip(["process_group", "application_group", "callable_object"])
        {
            if !m.hasattr(function).unwrap_or(false) {
                continue;
            }
            let v = call(py, asked, function, &[])?;
            if v.is_none() {
                continue;
            }
            let Some(text) = latin1_text(&v).map(|b| b.iter().map(|&c| char::from(c)).collect())
            else {
                log::error!(
                    target: "oxwsgi",
                    "{}: must return a str of Latin-1 characters or None",
                    context(function)
                );
                return None;
            };
            *slot = Some(text);
        }
        let [process_group, application_group, callable_object] = answers;
        Some(Dispatch {
            process_group,
            application_group,
            callable_object,
        })
    })
}

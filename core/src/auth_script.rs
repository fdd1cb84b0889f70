//! Apache's auth scripts, as mod_wsgi runs them (`WSGIAuthUserScript`,
//! `WSGIAuthGroupScript`, `WSGIAccessScript`): a Python script whose
//! functions Apache's authentication, authorization and access control
//! ask, with the request's environ (`check_password(environ, user,
//! password)`, `groups_for_user(environ, user)`, `allow_access(environ,
//! host)`, `get_realm_hash(environ, user, realm)`). The script is loaded once and again
//! when its file changes; an exception is logged with its traceback and
//! the answer is an error (the request is denied).

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

/// A loaded script: its path, the modification time it was loaded at, and
/// its module.
type Loaded = (PathBuf, Option<SystemTime>, Py<PyAny>);

static SCRIPTS: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The script at `path` as a module: the one loaded, unless the file
/// changed since.
fn module<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, PyAny>> {
    let now = mtime(path);
    // Waiting for the lock lets go of the GIL: the thread loading a script
    // may need it back to finish.
    let mut scripts = SCRIPTS.lock_py_attached(py).recover();
    if let Some((_, at, m)) = scripts.iter().find(|(p, _, _)| p == path) {
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
    scripts.retain(|(p, _, _)| p != path);
    scripts.push((path.to_path_buf(), now, m.clone().unbind()));
    Ok(m)
}

/// The request's environ for a script: its variables, as the server made
/// them (CGI's), and mod_wsgi's.
fn environ<'py>(py: Python<'py>, vars: &[(Vec<u8>, Vec<u8>)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in vars {
        d.set_item(crate::embed::latin1(py, k), crate::embed::latin1(py, v))?;
    }
    d.set_item("mod_wsgi.process_group", "")?;
    d.set_item("mod_wsgi.application_group", "")?;
    Ok(d)
}

/// Calls `function` of the script at `script` with the environ of `vars`
/// and `args`; `None` after logging why it failed.
fn call<'py>(
    py: Python<'py>,
    script: &Path,
    function: &str,
    vars: &[(Vec<u8>, Vec<u8>)],
    args: &[&[u8]],
) -> Option<Bound<'py, PyAny>> {
    let context = format!("auth script {}: {function}()", script.display());
    let result = (|| {
        let m = module(py, script)?;
        let f = m.getattr(function).map_err(|_| {
            pyo3::exceptions::PyAttributeError::new_err(format!(
                "the script defines no {function}()"
            ))
        })?;
        let mut call_args = vec![environ(py, vars)?.into_any()];
        call_args.extend(args.iter().map(|a| crate::embed::latin1(py, a).into_any()));
        f.call1(pyo3::types::PyTuple::new(py, call_args)?)
    })();
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            crate::errors::log_py_err(py, &e, &context);
            None
        }
    }
}

/// `check_password(environ, user, password)` of the script at `script`.
pub fn check_password(
    script: &Path,
    vars: &[(Vec<u8>, Vec<u8>)],
    user: &[u8],
    password: &[u8],
) -> Verdict {
    crate::embed::ensure_thread_state();
    Python::attach(|py| {
        let Some(v) = call(py, script, "check_password", vars, &[user, password]) else {
            return Verdict::Error;
        };
        if v.is_none() {
            Verdict::NoUser
        } else {
            match v.is_truthy() {
                Ok(true) => Verdict::Granted,
                Ok(false) => Verdict::Denied,
                Err(e) => {
                    crate::errors::log_py_err(py, &e, "auth script: check_password()");
                    Verdict::Error
                }
            }
        }
    })
}

/// `groups_for_user(environ, user)` of the script at `script`: the user's
/// groups (as text); `None` when the script failed (logged).
pub fn groups_for_user(
    script: &Path,
    vars: &[(Vec<u8>, Vec<u8>)],
    user: &[u8],
) -> Option<Vec<String>> {
    crate::embed::ensure_thread_state();
    Python::attach(|py| {
        let v = call(py, script, "groups_for_user", vars, &[user])?;
        let mut out = Vec::new();
        let items = v
            .try_iter()
            .map_err(|e| crate::errors::log_py_err(py, &e, "auth script: groups_for_user()"))
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

/// `allow_access(environ, host)` of the script at `script` (mod_wsgi's
/// `WSGIAccessScript`): `Some(Some(allowed))`, `Some(None)` when it leaves
/// the decision to the server's other rules, `None` when it failed or
/// answered something else (logged: the request is denied).
pub fn allow_access(
    script: &Path,
    vars: &[(Vec<u8>, Vec<u8>)],
    host: &[u8],
) -> Option<Option<bool>> {
    crate::embed::ensure_thread_state();
    Python::attach(|py| {
        let v = call(py, script, "allow_access", vars, &[host])?;
        if v.is_none() {
            return Some(None);
        }
        match v.cast::<pyo3::types::PyBool>() {
            Ok(b) => Some(Some(b.is_true())),
            Err(_) => {
                log::error!(
                    target: "oxwsgi",
                    "auth script {}: allow_access() must return a boolean or None",
                    script.display()
                );
                None
            }
        }
    })
}

/// `get_realm_hash(environ, user, realm)` of the script at `script` (for
/// `AuthDigestProvider wsgi`): `Some(Some(hash))`, the hex MD5 of
/// `user:realm:password`; `Some(None)`: no such user; `None` when it
/// failed or answered something else (logged).
pub fn get_realm_hash(
    script: &Path,
    vars: &[(Vec<u8>, Vec<u8>)],
    user: &[u8],
    realm: &[u8],
) -> Option<Option<Vec<u8>>> {
    crate::embed::ensure_thread_state();
    Python::attach(|py| {
        let v = call(py, script, "get_realm_hash", vars, &[user, realm])?;
        if v.is_none() {
            return Some(None);
        }
        let hash = if let Ok(b) = v.extract::<Vec<u8>>() {
            b
        } else if let Ok(s) = v.extract::<String>() {
            s.chars()
                .map(|c| c as u32)
                .map(|c| u8::try_from(c).ok())
                .collect::<Option<Vec<u8>>>()?
        } else {
            Vec::new()
        };
        if hash.is_empty() {
            log::error!(
                target: "oxwsgi",
                "auth script {}: get_realm_hash() must return the realm hash (a non-empty str or bytes) or None",
                script.display()
            );
            return None;
        }
        Some(Some(hash))
    })
}

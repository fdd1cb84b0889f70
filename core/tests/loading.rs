//! Loading apps: scripts and modules, failures reported once, several apps
//! side by side, retry and reload when a script changes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use oxwsgi_core::Outcome;

fn fails_to_load(target: &str, uri: &str, messages: &[&str]) {
    let app = app_with(target, |_| {});
    let (resp, outcome) = get(&app, uri);
    assert_eq!(outcome, Outcome::Error(500), "{target}");
    assert_eq!(resp.status(), 500);
    let needle = format!("app {}: cannot load", app.name());
    let lines = logs_with(&needle);
    for m in messages {
        assert!(
            lines.iter().any(|l| l.contains(m)),
            "{target}: no {m:?} in {lines:#?}"
        );
    }
    // Logged once: a second request adds no lines.
    let (resp, _) = get(&app, uri);
    assert_eq!(resp.status(), 500);
    assert_eq!(
        logs_with(&needle).len(),
        lines.len(),
        "{target}: logged again"
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let path = fixture("broken_syntax.py");
    fails_to_load(
        path.to_str().unwrap(),
        "/syntax",
        &["SyntaxError", "broken_syntax.py\", line 1", "Traceback"],
    );
}

#[test]
fn import_errors_show_the_traceback() {
    let path = fixture("broken_import.py");
    fails_to_load(
        path.to_str().unwrap(),
        "/import",
        &[
            "ModuleNotFoundError: No module named 'module_that_does_not_exist_anywhere'",
            "line 1",
        ],
    );
}

#[test]
fn a_missing_callable_lists_what_the_script_defines() {
    let path = fixture("no_callable.py");
    fails_to_load(
        path.to_str().unwrap(),
        "/nocallable",
        &["has no callable named 'application' (it defines: app, make_app)"],
    );
}

#[test]
fn a_callable_that_is_not_callable() {
    let path = fixture("not_callable.py");
    fails_to_load(
        path.to_str().unwrap(),
        "/notcallable",
        &["'application' in", "is a str, not a callable"],
    );
}

#[test]
fn a_missing_script() {
    fails_to_load(
        "/nonexistent/site/wsgi.py",
        "/missing",
        &["script /nonexistent/site/wsgi.py does not exist"],
    );
}

#[test]
fn a_missing_module() {
    fails_to_load(
        "no_such_pkg.wsgi:app",
        "/nomod",
        &["ModuleNotFoundError: No module named 'no_such_pkg'"],
    );
}

#[test]
fn the_callable_name_is_configurable() {
    let app = app_with(fixture("no_callable.py").to_str().unwrap(), |o| {
        o.spec.callable = "app".into()
    });
    let (resp, _) = get(&app, "/");
    assert_eq!(resp.text(), "I am called app");
}

#[test]
fn module_apps_with_a_mount() {
    let app = app_with("fixturepkg.wsgi:app", |o| o.mount = "/pkg".into());
    let (resp, _) = get(&app, "/pkg/x");
    assert_eq!(resp.text(), "module app at /pkg|/x");
}

fn temp_script(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxwsgi-load-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wsgi.py");
    std::fs::write(&path, body).unwrap();
    path
}

fn app_returning(word: &str) -> String {
    format!(
        "WORD = {word:?}\n\ndef application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [WORD.encode()]\n"
    )
}

#[test]
fn scripts_have_their_own_namespaces() {
    let a = temp_script("ns-a", &app_returning("alpha"));
    let b = temp_script("ns-b", &app_returning("beta"));
    let app_a = app_with(a.to_str().unwrap(), |_| {});
    let app_b = app_with(b.to_str().unwrap(), |_| {});
    assert_eq!(get(&app_a, "/").0.text(), "alpha");
    assert_eq!(get(&app_b, "/").0.text(), "beta");
    assert_eq!(get(&app_a, "/").0.text(), "alpha");
}

/// Writes `body` and makes sure the mtime moves even on coarse clocks.
fn rewrite(path: &Path, body: &str, age: Duration) {
    std::fs::write(path, body).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() + age).unwrap();
}

#[test]
fn a_fixed_script_is_loaded_on_the_next_request() {
    let path = temp_script("retry", "def application(environ, start_response)\n");
    let app = app_with(path.to_str().unwrap(), |_| {});
    assert_eq!(get(&app, "/").0.status(), 500);
    rewrite(&path, &app_returning("fixed"), Duration::from_secs(5));
    let (resp, _) = get(&app, "/");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "fixed");
}

#[test]
fn reload_on_change() {
    let path = temp_script("reload", &app_returning("v1"));
    let app = app_with(path.to_str().unwrap(), |o| o.reload_on_change = true);
    assert_eq!(get(&app, "/").0.text(), "v1");
    rewrite(&path, &app_returning("v2"), Duration::from_secs(10));
    assert_eq!(get(&app, "/").0.text(), "v2");

    // Without reloading, the loaded app stays.
    let path = temp_script("noreload", &app_returning("v1"));
    let app = app_with(path.to_str().unwrap(), |_| {});
    assert_eq!(get(&app, "/").0.text(), "v1");
    rewrite(&path, &app_returning("v2"), Duration::from_secs(10));
    assert_eq!(get(&app, "/").0.text(), "v1");
}

#[test]
fn preloading_reports_readiness() {
    python();
    let good = app_with(fixture("cases.py").to_str().unwrap(), |_| {});
    let bad = app_with(fixture("broken_syntax.py").to_str().unwrap(), |_| {});
    oxwsgi_core::ensure_thread_state();
    pyo3::Python::attach(|py| {
        assert!(good.preload(py));
        assert!(!bad.preload(py));
    });
}

#[test]
fn the_script_directory_is_importable() {
    let path = temp_script(
        "sibling",
        "from helper import WORD\n\ndef application(e, s):\n    s('200 OK', [])\n    return [WORD.encode()]\n",
    );
    std::fs::write(
        path.parent().unwrap().join("helper.py"),
        "WORD = 'from a sibling module'\n",
    )
    .unwrap();
    let app = app_with(path.to_str().unwrap(), |_| {});
    assert_eq!(get(&app, "/").0.text(), "from a sibling module");
}

//! Application groups: apps in groups of their own import their own
//! modules; the main interpreter is shared; requests in several groups at
//! once; the request timeout reaches a thread in a sub-interpreter; an
//! extension that refuses sub-interpreters is named with the fix.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{app_with, get, logs_with, repo};
use oxwsgi_core::{App, Outcome};

fn site(name: &str, group: &str, mount: &str) -> App {
    let script = repo().join(format!("tests/apps/groups/site_{name}/wsgi.py"));
    app_with(script.to_str().unwrap(), |o| {
        o.application_group = group.into();
        o.mount = mount.into();
        o.request_timeout = Some(Duration::from_millis(300));
    })
}

fn body(app: &App, uri: &str) -> String {
    let (resp, outcome) = get(app, uri);
    assert_eq!(outcome, Outcome::Complete, "{uri}: {}", resp.text());
    resp.text()
}

#[test]
fn groups_keep_projects_apart_and_the_main_interpreter_is_shared() {
    let a = site("a", "apart|/a", "/a");
    let b = site("b", "apart|/b", "/b");
    assert!(body(&a, "/a/").starts_with("site=a "));
    assert!(body(&b, "/b/").starts_with("site=b "), "b got a's conf");
    // Each group counts its own requests.
    assert!(body(&a, "/a/").contains("hits=2"));
    assert!(body(&b, "/b/").contains("hits=2"));
    // In one interpreter, the second site gets the first one's `conf`
    // (what application groups are for).
    let a = site("a", "", "/a");
    let b = site("b", "", "/b");
    let text = body(&a, "/a/");
    assert!(text.starts_with("site=a "), "{text}");
    let text = body(&b, "/b/");
    assert!(text.starts_with("site=a "), "{text}");
    let made = logs_with("application group \"apart|/a\": interpreter made");
    assert_eq!(made.len(), 1, "{made:#?}");
}

#[test]
fn groups_serve_from_many_threads_at_once() {
    let apps: Vec<App> = ["x", "y", "z"]
        .iter()
        .map(|g| site(if *g == "y" { "b" } else { "a" }, &format!("busy-{g}"), ""))
        .collect();
    std::thread::scope(|s| {
        for t in 0..6 {
            let apps = &apps;
            s.spawn(move || {
                for i in 0..40 {
                    let app = &apps[(t + i) % apps.len()];
                    let text = body(app, "/");
                    let want = if app.options().application_group == "busy-y" {
                        "site=b "
                    } else {
                        "site=a "
                    };
                    assert!(text.starts_with(want), "{text}");
                }
            });
        }
    });
    // Every request was counted in its own group's interpreter.
    let total: u32 = apps
        .iter()
        .map(|a| {
            let t = body(a, "/");
            t.split("hits=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u32>()
                .unwrap()
                - 1
        })
        .sum();
    assert_eq!(total, 240);
}

#[test]
fn the_request_timeout_reaches_a_thread_in_a_group() {
    let app = site("a", "timed", "");
    let (resp, outcome) = get(&app, "/spin");
    assert_eq!(outcome, Outcome::Error(504), "{}", resp.text());
    let lines = logs_with("oxwsgi.RequestTimeout raised in its thread");
    assert!(
        lines.iter().any(|l| l.contains("/spin")),
        "the watchdog did not reach the sub-interpreter's thread: {lines:#?}"
    );
    // The thread serves its next request normally.
    assert!(body(&app, "/").starts_with("site=a "));
}

#[test]
fn an_extension_refusing_sub_interpreters_is_named_with_the_fix() {
    let app = site("a", "refusing", "");
    let (resp, _) = get(&app, "/refuse?groups.refusing");
    assert_eq!(resp.status(), 500);
    let lines = logs_with("cannot be loaded in an application group's sub-interpreter");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("extension module groups.refusing ") && l.contains("%{GLOBAL}")),
        "{lines:#?}"
    );
}

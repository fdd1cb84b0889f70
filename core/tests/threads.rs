//! Server threads calling into Python: persistent thread states, and many
//! threads at once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;

#[test]
fn thread_state_persists_between_requests_on_a_thread() {
    python();
    std::thread::spawn(|| {
        let first = get(cases(), "/thread-local").0.text();
        let second = get(cases(), "/thread-local").0.text();
        let (name1, hits1) = first.rsplit_once(':').unwrap();
        let (name2, hits2) = second.rsplit_once(':').unwrap();
        assert_eq!(name1, name2);
        // threading.local survived: the thread state was not recreated.
        assert_eq!((hits1, hits2), ("1", "2"));
    })
    .join()
    .unwrap();
    // A new thread has a state of its own.
    std::thread::spawn(|| assert!(get(cases(), "/thread-local").0.text().ends_with(":1")))
        .join()
        .unwrap();
}

#[test]
fn many_threads_share_the_interpreter() {
    python();
    let hello = std::sync::Arc::new(app_with(
        repo().join("examples/hello.py").to_str().unwrap(),
        |_| {},
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let hello = hello.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let (resp, _) = get(&hello, &format!("/t{t}i{i}"));
                    assert_eq!(resp.text(), format!("<h1>Hello, t{t}i{i}!</h1>"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn threads_that_exit_release_their_state() {
    python();
    // Hundreds of short-lived threads: each creates a thread state and must
    // delete it on exit, or Python's thread list grows without bound.
    for _ in 0..300 {
        std::thread::spawn(|| assert_eq!(get(cases(), "/cookies").0.status(), 200))
            .join()
            .unwrap();
    }
    oxwsgi_core::ensure_thread_state();
    let live = pyo3::Python::attach(oxwsgi_core::python::interpreter::thread_state_count);
    assert!(
        live < 50,
        "{live} Python thread states alive after the threads exited"
    );
}

//! The request timeout in the core: the app's thread gets
//! `oxwsgi.RequestTimeout`, the client 504 (or a cut response), the log the
//! app's stack, and no exception leaks into the thread's next request.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{app_with, fixture, get, logs_with};
use oxwsgi_core::{App, Outcome};

fn limited() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        app_with(fixture("cases.py").to_str().unwrap(), |o| {
            o.request_timeout = Some(Duration::from_millis(300));
        })
    })
}

fn caught() -> serde_like::Counts {
    serde_like::parse(&get(limited(), "/caught").0.text())
}

/// The two numbers of `/caught`, without a JSON crate.
mod serde_like {
    pub struct Counts {
        pub timeouts: u64,
        pub closed: u64,
    }
    pub fn parse(text: &str) -> Counts {
        let num = |key: &str| {
            let at = text.find(key).unwrap() + key.len() + 3;
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        };
        Counts {
            timeouts: num("timeouts"),
            closed: num("closed"),
        }
    }
}

#[test]
fn a_busy_app_is_stopped_with_504_and_its_stack_is_logged() {
    let before = caught().timeouts;
    let t = Instant::now();
    let (resp, _) = get(limited(), "/spin");
    assert_eq!(resp.status(), 504, "{}", resp.text());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(caught().timeouts > before, "the app saw the exception");
    let logged = logs_with("GET /spin: request timeout after");
    let entry = logged.last().unwrap();
    assert!(entry.contains("limit 0.300 s"), "{entry}");
    assert!(
        entry.contains("oxwsgi.RequestTimeout raised in its thread"),
        "{entry}"
    );
    assert!(
        entry.contains("cases.py\", line") && entry.contains("in spin"),
        "{entry}"
    );
}

#[test]
fn after_the_headers_the_response_is_cut_and_close_runs() {
    let before = caught().closed;
    let (resp, outcome) = get(limited(), "/spin-late");
    assert_eq!(resp.status(), 200);
    assert!(resp.aborted() && !resp.finished(), "cut, not complete");
    assert_eq!(resp.text(), "started\n");
    assert_eq!(outcome, Outcome::Aborted);
    assert!(caught().closed > before, "close() was called");
}

#[test]
fn an_app_blocked_in_c_gets_504_when_it_comes_back() {
    // The in-memory sink cannot answer for the app, so the 504 waits for it.
    let (resp, _) = get(limited(), "/sleep?ms=600");
    assert_eq!(resp.status(), 504);
    assert!(logs_with("GET /sleep?ms=600: request timeout").len() == 1);
}

#[test]
fn no_exception_lands_in_the_next_request() {
    for _ in 0..3 {
        assert_eq!(get(limited(), "/spin").0.status(), 504);
        // Ends right at its deadline: an exception the watchdog raised
        // then must not reach the request after it.
        get(limited(), "/sleep?ms=300");
        for _ in 0..20 {
            let (resp, outcome) = get(limited(), "/sleep?ms=1");
            assert_eq!(resp.status(), 200, "{}", resp.text());
            assert_eq!(outcome, Outcome::Complete);
        }
    }
}

#[test]
fn fast_requests_are_not_touched() {
    for _ in 0..50 {
        assert_eq!(get(limited(), "/sleep?ms=0").0.status(), 200);
    }
    assert!(logs_with("GET /sleep?ms=0: request timeout").is_empty());
}

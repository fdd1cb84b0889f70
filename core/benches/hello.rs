//! The core's own cost per request: examples/hello.py pushed through
//! `handle` with the in-memory adapter, next to a bare Python call of the same
//! app with a ready-made environ dict, measured in the same run.
//!
//! `cargo bench -p oxwsgi-core --bench hello` (`-- --quick` for a short run).
//! Prints the median of several rounds for each, and the difference: what
//! the core adds (environ, start_response, validation, response collection,
//! attaching to Python) on top of running the app itself.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;
use std::io;
use std::time::Instant;

use oxwsgi_core::testing::MemoryRequest;
use oxwsgi_core::{
    App, AppOptions, AppSpec, Chunk, Interpreter, InterpreterConfig, ResponseHead, ResponseSink,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// A sink that only counts, so the measurement is the core's.
struct CountingSink(usize);

impl ResponseSink for CountingSink {
    fn may_block(&self) -> bool {
        false
    }
    fn start(&mut self, head: ResponseHead) -> io::Result<()> {
        self.0 += head.headers.len();
        Ok(())
    }
    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        self.0 += chunk.len();
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn abort(&mut self) {}
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `f` `n` times per round and returns the median µs per call.
fn measure(rounds: usize, n: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let per_round: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    median(per_round)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, n) = if quick { (5, 20_000) } else { (11, 100_000) };
    let _py = Interpreter::start(InterpreterConfig::default()).expect("python starts");
    oxwsgi_core::ensure_thread_state();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.py");
    let app = App::new(AppOptions::new(AppSpec::parse(hello, None).unwrap()));
    let mut req = MemoryRequest::get("/bench")
        .header("User-Agent", "wrk")
        .header("Accept", "*/*");

    // The core: everything from a server's request to its sink.
    let core = measure(rounds, n, || {
        let sink = Box::new(CountingSink(0));
        black_box(oxwsgi_core::handle(&app, &mut req, sink));
    });

    // The app alone: one call with a ready-made dict and a trivial
    // start_response, iterating the result, all under one GIL hold.
    let bare = Python::attach(|py| {
        let ns = PyDict::new(py);
        py.run(
            &std::ffi::CString::new(std::fs::read_to_string(hello).unwrap()).unwrap(),
            Some(&ns),
            None,
        )
        .unwrap();
        py.run(
            c"def start_response(status, headers, exc_info=None):\n    return None\n",
            Some(&ns),
            None,
        )
        .unwrap();
        let app = ns.get_item("application").unwrap().unwrap();
        let sr = ns.get_item("start_response").unwrap().unwrap();
        let environ = PyDict::new(py);
        for (k, v) in [
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/bench"),
            ("QUERY_STRING", ""),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("HTTP_HOST", "localhost"),
            ("wsgi.url_scheme", "http"),
        ] {
            environ.set_item(k, v).unwrap();
        }
        measure(rounds, n, || {
            let result = app.call1((&environ, &sr)).unwrap();
            let list = result.cast::<PyList>().unwrap();
            for item in list.iter() {
                black_box(item.len().unwrap());
            }
        })
    });

    // What attaching to Python costs by itself, part of the core's share.
    let attach = measure(rounds, n, || {
        Python::attach(|py| {
            black_box(py);
        })
    });

    let overhead = core - bare;
    println!("hello.py through the core (in-memory adapter), median of {rounds} rounds of {n}:");
    println!(
        "  core:      {core:7.3} µs/request  {:>10.0} requests/s",
        1e6 / core
    );
    println!(
        "  bare call: {bare:7.3} µs/request  {:>10.0} requests/s",
        1e6 / bare
    );
    println!("  of which attaching to Python: {attach:.3} µs/request");
    println!("  core's own share: {overhead:.3} µs/request (target: at most 2 µs)");
}

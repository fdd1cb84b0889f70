//! Load from `wrk` (installed by build/deps.sh), and what it reports that a
//! user would notice.

use std::process::Command;

pub struct Load {
    pub requests: u64,
    pub output: String,
}

/// `wrk` on `path` for `secs` seconds with 16 kept-alive connections.
pub fn wrk(port: u16, path: &str, secs: u32) -> Load {
    wrk_with(port, path, secs, &[])
}

/// `wrk` on `path` for `secs` seconds with 16 connections, sending
/// `headers` (`Connection: close`: a connection per request).
pub fn wrk_with(port: u16, path: &str, secs: u32, headers: &[&str]) -> Load {
    let out = Command::new("wrk")
        .args(headers.iter().flat_map(|h| ["-H", h]))
        .args([
            "-t2",
            "-c16",
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "5s",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run wrk (build/deps.sh installs it)");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests = output
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Load { requests, output }
}

impl Load {
    /// wrk's "Max" latency column, in seconds.
    pub fn max_latency(&self) -> f64 {
        let line = self
            .output
            .lines()
            .find(|l| l.trim_start().starts_with("Latency"))
            .expect("wrk printed its latency");
        let max = line.split_whitespace().nth(3).expect("a Max column");
        let (num, unit) = max.split_at(max.find(|c: char| c.is_alphabetic()).expect("a unit"));
        let n: f64 = num.parse().expect("a number");
        match unit {
            "us" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            other => panic!("latency unit {other}"),
        }
    }

    /// Answers that were not 2xx (or 3xx), and socket errors.
    pub fn failures(&self) -> u64 {
        let mut n = 0;
        for line in self.output.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                n += rest.trim().parse::<u64>().unwrap_or(u64::MAX / 2);
            }
            if let Some(rest) = line.strip_prefix("Socket errors:") {
                n += rest
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>();
            }
        }
        n
    }

    /// No non-2xx answer and no socket error.
    pub fn all_2xx(&self) -> bool {
        !self.output.contains("Non-2xx") && !self.output.contains("Socket errors")
    }
}

/// Under `wrk` on `path`, SIGKILLs the first of `processes()` (a group's
/// daemons, `count` of them once started) and fails unless a replacement is
/// there within 1.5 s and at most `threads` requests (what the killed one
/// had begun) failed.
pub fn a_killed_process_costs_at_most(
    port: u16,
    path: &str,
    threads: u64,
    count: usize,
    processes: impl Fn() -> Vec<i32>,
) {
    use std::time::{Duration, Instant};
    // A daemon shows under its group's name once its Python has started.
    assert!(crate::wait_until(Duration::from_secs(10), || processes()
        .len()
        == count));
    let before = count;
    let path = path.to_string();
    let load = std::thread::spawn(move || wrk(port, &path, 4));
    std::thread::sleep(Duration::from_millis(1500));
    let victim = processes()[0];
    // SAFETY: signalling a process of the server the calling test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let t = Instant::now();
    assert!(crate::wait_until(Duration::from_secs(5), || {
        let now = processes();
        now.len() == before && !now.contains(&victim)
    }));
    let back = t.elapsed();
    let l = load.join().unwrap();
    assert!(
        back < Duration::from_millis(1500),
        "replaced after {back:?}"
    );
    assert!(l.failures() <= threads, "{}", l.output);
    assert!(l.requests > 1000, "{}", l.output);
}

//! Reading and checking the status page's Prometheus text.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::repo;

/// The value of the sample `name{labels}` in Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Fails unless Prometheus's own `promtool check metrics` (from Debian's
/// package, unpacked by build/deps.sh) takes `text` without a word.
pub fn promtool_check(text: &str) {
    let promtool = repo()
        .join(crate::unpacked("prometheus"))
        .join("usr/bin/promtool");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build/deps.sh unpacks it)", promtool.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{text}");
    assert!(said.trim().is_empty(), "promtool found problems: {said}");
}

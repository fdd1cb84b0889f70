//! The status page, in three forms from one snapshot of the metrics:
//! Prometheus' text format (for `?format=prometheus` and for the `Accept`
//! header Prometheus sends), JSON (`?format=json`) and an HTML page (the
//! default, for a browser: it refreshes itself, without JavaScript).
//!
//! Everything that came from a request (path, client, app name, stack) is
//! escaped for the form it goes into; request bodies, headers, cookies and
//! query strings are never recorded in the first place.

use std::fmt::Write;

use crate::ops::metrics::{AppSnapshot, BUCKETS, HistogramSnapshot, ProcSnapshot, Snapshot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    Json,
    Html,
}

impl Format {
    /// `?format=` wins; else what the `Accept` header asks for; else HTML.
    pub fn choose(query: &[u8], accept: Option<&[u8]>) -> Format {
        for pair in query.split(|b| *b == b'&') {
            match pair {
                b"format=prometheus" | b"format=metrics" => return Format::Prometheus,
                b"format=json" => return Format::Json,
                b"format=html" => return Format::Html,
                _ => {}
            }
        }
        let accept = String::from_utf8_lossy(accept.unwrap_or_default()).to_ascii_lowercase();
        if accept.contains("application/openmetrics-text") || accept.contains("version=0.0.4") {
            Format::Prometheus
        } else if accept.starts_with("application/json") {
            Format::Json
        } else {
            Format::Html
        }
    }
}

/// A rendered status response.
pub struct Page {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Headers every status response carries: never cached, and a page that
/// could not run a script even if one slipped through the escaping.
pub const HEADERS: [(&str, &str); 3] = [
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'",
    ),
    ("X-Content-Type-Options", "nosniff"),
];

pub fn render(format: Format, s: &Snapshot) -> Page {
    match format {
        Format::Prometheus => Page {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(s).into_bytes(),
        },
        Format::Json => Page {
            content_type: "application/json",
            body: json(s).into_bytes(),
        },
        Format::Html => Page {
            content_type: "text/html; charset=utf-8",
            body: html(s).into_bytes(),
        },
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    for (bound, n) in BUCKETS.iter().zip(h.buckets) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// A per-app series: its name, its help text, and how to read it.
type Series<T> = (&'static str, &'static str, fn(&AppSnapshot) -> T);

pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let apps: Vec<(String, &AppSnapshot)> = s
        .apps
        .iter()
        .map(|a| (format!("app=\"{}\"", label(&a.name)), a))
        .collect();
    family(
        &mut out,
        "oxwsgi_info",
        "gauge",
        "The server's Python and oxwsgi versions.",
    );
    let _ = writeln!(
        out,
        "oxwsgi_info{{python=\"{}\",version=\"{}\"}} 1",
        label(&s.python),
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "oxwsgi_uptime_seconds",
        "gauge",
        "Seconds since the metrics started (server start; reloads keep them).",
    );
    let _ = writeln!(out, "oxwsgi_uptime_seconds {}", s.uptime.as_secs());
    family(
        &mut out,
        "oxwsgi_requests_total",
        "counter",
        "Responses by status class.",
    );
    for (l, a) in &apps {
        for (i, n) in a.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "oxwsgi_requests_total{{{l},status=\"{}xx\"}} {n}",
                i + 1
            );
        }
    }
    family(
        &mut out,
        "oxwsgi_request_duration_seconds",
        "histogram",
        "Time from the app's call to the end of its response.",
    );
    for (l, a) in &apps {
        histogram(&mut out, "oxwsgi_request_duration_seconds", l, &a.duration);
    }
    family(
        &mut out,
        "oxwsgi_queue_wait_seconds",
        "histogram",
        "Time requests waited for a Python thread.",
    );
    for (l, a) in &apps {
        histogram(&mut out, "oxwsgi_queue_wait_seconds", l, &a.queue_wait);
    }
    let gauges: [Series<i64>; 2] = [
        (
            "oxwsgi_requests_in_flight",
            "Requests the app is running now.",
            |a| a.in_flight,
        ),
        (
            "oxwsgi_queue_depth",
            "Requests waiting for a Python thread now.",
            |a| a.queued,
        ),
    ];
    for (name, help, get) in gauges {
        family(&mut out, name, "gauge", help);
        for (l, a) in &apps {
            let _ = writeln!(out, "{name}{{{l}}} {}", get(a));
        }
    }
    let counters: [Series<u64>; 5] = [
        (
            "oxwsgi_app_exceptions_total",
            "Exceptions the app raised.",
            |a| a.exceptions,
        ),
        (
            "oxwsgi_request_timeouts_total",
            "Requests stopped at their request timeout.",
            |a| a.request_timeouts,
        ),
        (
            "oxwsgi_queue_timeouts_total",
            "Requests refused (503) after waiting past the queue timeout.",
            |a| a.queue_timeouts,
        ),
        (
            "oxwsgi_request_body_bytes_total",
            "Request body bytes the app read.",
            |a| a.bytes_in,
        ),
        (
            "oxwsgi_response_body_bytes_total",
            "Response body bytes the app produced.",
            |a| a.bytes_out,
        ),
    ];
    for (name, help, get) in counters {
        family(&mut out, name, "counter", help);
        for (l, a) in &apps {
            let _ = writeln!(out, "{name}{{{l}}} {}", get(a));
        }
    }
    family(
        &mut out,
        "oxwsgi_threads",
        "gauge",
        "Python threads of each server process, busy or idle.",
    );
    let procs: Vec<(String, &ProcSnapshot)> = s.procs.iter().map(|p| (proc_labels(p), p)).collect();
    for (l, p) in &procs {
        let idle = p.threads.saturating_sub(p.busy);
        let _ = writeln!(out, "oxwsgi_threads{{{l},state=\"busy\"}} {}", p.busy);
        let _ = writeln!(out, "oxwsgi_threads{{{l},state=\"idle\"}} {idle}");
    }
    family(
        &mut out,
        "oxwsgi_process_resident_memory_bytes",
        "gauge",
        "Resident memory of each server process running Python.",
    );
    for (l, p) in &procs {
        let _ = writeln!(out, "oxwsgi_process_resident_memory_bytes{{{l}}} {}", p.rss);
    }
    family(
        &mut out,
        "oxwsgi_process_requests_total",
        "counter",
        "Requests each server process served since it started.",
    );
    for (l, p) in &procs {
        let _ = writeln!(out, "oxwsgi_process_requests_total{{{l}}} {}", p.requests);
    }
    family(
        &mut out,
        "oxwsgi_recycles_total",
        "counter",
        "Processes whose Python was replaced, by reason.",
    );
    for (why, n) in &s.recycles {
        let _ = writeln!(
            out,
            "oxwsgi_recycles_total{{reason=\"{}\"}} {n}",
            why.label()
        );
    }
    if s.groups.is_empty() {
        return out;
    }
    family(
        &mut out,
        "oxwsgi_group_processes",
        "gauge",
        "Daemon processes of each process group alive now.",
    );
    for g in &s.groups {
        let _ = writeln!(
            out,
            "oxwsgi_group_processes{{group=\"{}\"}} {}",
            label(&g.name),
            g.processes
        );
    }
    family(
        &mut out,
        "oxwsgi_group_recycles_total",
        "counter",
        "Daemon processes of each process group replaced, by reason.",
    );
    for g in &s.groups {
        for (why, n) in &g.recycles {
            let _ = writeln!(
                out,
                "oxwsgi_group_recycles_total{{group=\"{}\",reason=\"{}\"}} {n}",
                label(&g.name),
                why.label()
            );
        }
    }
    out
}

/// A process's labels: its pid, and its group for a group's daemon.
fn proc_labels(p: &ProcSnapshot) -> String {
    if p.group.is_empty() {
        format!("pid=\"{}\"", p.pid)
    } else {
        format!("pid=\"{}\",group=\"{}\"", p.pid, label(&p.group))
    }
}

/// A JSON string literal.
fn js(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Also `<`, so the JSON can never close a surrounding <script>.
            c if (c as u32) < 0x20 || c == '<' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_histogram(h: &HistogramSnapshot) -> String {
    let buckets: Vec<String> = BUCKETS
        .iter()
        .zip(h.buckets)
        .map(|(b, n)| format!("{{\"le\":{b},\"count\":{n}}}"))
        .collect();
    format!(
        "{{\"count\":{},\"sum\":{},\"buckets\":[{}]}}",
        h.count,
        h.sum,
        buckets.join(",")
    )
}

pub fn json(s: &Snapshot) -> String {
    let apps: Vec<String> = s
        .apps
        .iter()
        .map(|a| {
            format!(
                "{{\"name\":{},\"responses\":{{\"1xx\":{},\"2xx\":{},\"3xx\":{},\"4xx\":{},\"5xx\":{}}},\
                 \"duration_seconds\":{},\"queue_wait_seconds\":{},\"in_flight\":{},\"queued\":{},\
                 \"exceptions\":{},\"request_timeouts\":{},\"queue_timeouts\":{},\
                 \"request_body_bytes\":{},\"response_body_bytes\":{}}}",
                js(&a.name),
                a.responses[0],
                a.responses[1],
                a.responses[2],
                a.responses[3],
                a.responses[4],
                json_histogram(&a.duration),
                json_histogram(&a.queue_wait),
                a.in_flight,
                a.queued,
                a.exceptions,
                a.request_timeouts,
                a.queue_timeouts,
                a.bytes_in,
                a.bytes_out
            )
        })
        .collect();
    let procs: Vec<String> = s
        .procs
        .iter()
        .map(|p| {
            format!(
                "{{\"pid\":{},\"group\":{},\"started\":{},\"requests\":{},\"rss_bytes\":{},\"threads\":{},\"busy\":{}}}",
                p.pid,
                js(&p.group),
                p.started_unix,
                p.requests,
                p.rss,
                p.threads,
                p.busy
            )
        })
        .collect();
    let requests: Vec<String> = s
        .requests
        .iter()
        .map(|r| {
            format!(
                "{{\"pid\":{},\"thread\":{},\"app\":{},\"method\":{},\"path\":{},\"client\":{},\
                 \"elapsed_seconds\":{:.3},\"stack\":{}}}",
                r.pid,
                r.thread,
                js(&r.app),
                js(&r.method),
                js(&r.path),
                js(&r.client),
                r.elapsed.as_secs_f64(),
                js(&r.stack)
            )
        })
        .collect();
    let recycles = |r: &[(crate::ops::metrics::RecycleReason, u64)]| -> String {
        r.iter()
            .map(|(why, n)| format!("{}:{n}", js(why.label())))
            .collect::<Vec<_>>()
            .join(",")
    };
    let groups: Vec<String> = s
        .groups
        .iter()
        .map(|g| {
            format!(
                "{{\"name\":{},\"processes\":{},\"recycles\":{{{}}}}}",
                js(&g.name),
                g.processes,
                recycles(&g.recycles)
            )
        })
        .collect();
    format!(
        "{{\"uptime_seconds\":{},\"python\":{},\"version\":{},\"recycles\":{{{}}},\
         \"apps\":[{}],\"processes\":[{}],\"groups\":[{}],\"requests\":[{}]}}\n",
        s.uptime.as_secs(),
        js(&s.python),
        js(env!("CARGO_PKG_VERSION")),
        recycles(&s.recycles),
        apps.join(","),
        procs.join(","),
        groups.join(","),
        requests.join(",")
    )
}

/// Text for HTML element content and attribute values.
fn h(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The median of a histogram, as the upper bound of its bucket.
fn p50(hist: &HistogramSnapshot) -> String {
    if hist.count == 0 {
        return "-".into();
    }
    let half = hist.count.div_ceil(2);
    match BUCKETS.iter().zip(hist.buckets).find(|(_, n)| *n >= half) {
        Some((b, _)) => format!("&le; {} ms", b * 1000.0),
        None => format!("&gt; {} s", BUCKETS[BUCKETS.len() - 1]),
    }
}

pub fn html(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\">\
         <title>oxwsgi status</title><style>\
         body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}}\
         th{{background:#f3f3f3}} td.l,th.l{{text-align:left}}\
         pre{{margin:0;font-size:12px;white-space:pre-wrap;text-align:left}}\
         .slow{{background:#fff4e0}}</style></head><body>\
         <h1>oxwsgi status</h1><p>Up {} s &middot; Python {} &middot; oxwsgi {} &middot; \
         recycles: {} &middot; refreshes every 2 s \
         (<a href=\"?format=json\">JSON</a>, <a href=\"?format=prometheus\">Prometheus</a>)</p>",
        s.uptime.as_secs(),
        h(&s.python),
        env!("CARGO_PKG_VERSION"),
        s.recycles
            .iter()
            .map(|(why, n)| format!("{} {n}", why.label()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str(
        "<h2>Apps</h2><table><tr><th class=\"l\">app</th><th>2xx</th><th>3xx</th><th>4xx</th>\
         <th>5xx</th><th>in flight</th><th>queued</th><th>median time</th><th>exceptions</th>\
         <th>timeouts</th><th>queue timeouts</th><th>in</th><th>out</th></tr>",
    );
    for a in &s.apps {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h(&a.name),
            a.responses[1],
            a.responses[2],
            a.responses[3],
            a.responses[4],
            a.in_flight,
            a.queued,
            p50(&a.duration),
            a.exceptions,
            a.request_timeouts,
            a.queue_timeouts,
            mib(a.bytes_in),
            mib(a.bytes_out)
        );
    }
    if !s.groups.is_empty() {
        out.push_str(
            "</table><h2>Process groups</h2><table><tr><th class=\"l\">group</th>\
             <th>processes</th><th class=\"l\">recycles</th></tr>",
        );
        for g in &s.groups {
            let _ = write!(
                out,
                "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                h(&g.name),
                g.processes,
                g.recycles
                    .iter()
                    .map(|(why, n)| format!("{} {n}", why.label()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    out.push_str(
        "</table><h2>Processes</h2><table><tr><th>pid</th><th class=\"l\">group</th>\
         <th>requests</th><th>threads busy</th><th>threads</th><th>memory</th></tr>",
    );
    for p in &s.procs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.pid,
            if p.group.is_empty() {
                "(server)".to_string()
            } else {
                h(&p.group)
            },
            p.requests,
            p.busy,
            p.threads,
            mib(p.rss)
        );
    }
    let _ = write!(
        out,
        "</table><h2>Requests in flight ({})</h2><table><tr><th>pid</th><th>thread</th>\
         <th class=\"l\">app</th><th class=\"l\">request</th><th class=\"l\">client</th>\
         <th>elapsed</th><th class=\"l\">Python stack (after 1 s)</th></tr>",
        s.requests.len()
    );
    for r in &s.requests {
        let slow = r.elapsed.as_secs() >= 1;
        let _ = write!(
            out,
            "<tr{}><td>{}</td><td>{:x}</td><td class=\"l\">{}</td><td class=\"l\">{} {}</td>\
             <td class=\"l\">{}</td><td>{:.3} s</td><td class=\"l\"><pre>{}</pre></td></tr>",
            if slow { " class=\"slow\"" } else { "" },
            r.pid,
            r.thread,
            h(&r.app),
            h(&r.method),
            h(&r.path),
            h(&r.client),
            r.elapsed.as_secs_f64(),
            h(&r.stack)
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::metrics::{AppSnapshot, GroupSnapshot, RecycleReason, RequestSnapshot};
    use std::time::Duration;

    fn snapshot() -> Snapshot {
        let hist = HistogramSnapshot {
            buckets: [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3],
            count: 4,
            sum: 12.5,
        };
        Snapshot {
            uptime: Duration::from_secs(42),
            python: "3.11".into(),
            recycles: vec![(RecycleReason::MaxRequests, 2), (RecycleReason::Stuck, 0)],
            apps: vec![AppSnapshot {
                name: "/srv/\"odd\"\\app.py".into(),
                responses: [0, 10, 1, 2, 3],
                duration: hist.clone(),
                queue_wait: hist,
                in_flight: 1,
                queued: 0,
                exceptions: 3,
                request_timeouts: 1,
                queue_timeouts: 0,
                bytes_in: 100,
                bytes_out: 2000,
            }],
            procs: vec![
                ProcSnapshot {
                    pid: 77,
                    group: String::new(),
                    started_unix: 1,
                    requests: 16,
                    rss: 30 << 20,
                    threads: 8,
                    busy: 1,
                },
                ProcSnapshot {
                    pid: 78,
                    group: "site".into(),
                    started_unix: 1,
                    requests: 5,
                    rss: 20 << 20,
                    threads: 4,
                    busy: 0,
                },
            ],
            groups: vec![GroupSnapshot {
                name: "site".into(),
                processes: 1,
                recycles: vec![(RecycleReason::MaxRss, 3)],
            }],
            requests: vec![RequestSnapshot {
                pid: 77,
                thread: 0xabc,
                app: "/srv/app.py".into(),
                method: "GET".into(),
                path: "/<script>alert(1)</script>".into(),
                client: "127.0.0.1".into(),
                elapsed: Duration::from_millis(1500),
                stack: "  File \"x.py\", line 1, in <module>".into(),
            }],
        }
    }

    #[test]
    fn the_format_follows_the_query_then_the_accept_header() {
        let prom =
            b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::choose(b"", Some(prom)), Format::Prometheus);
        assert_eq!(Format::choose(b"format=json", Some(prom)), Format::Json);
        assert_eq!(
            Format::choose(b"a=1&format=prometheus", None),
            Format::Prometheus
        );
        assert_eq!(Format::choose(b"", Some(b"application/json")), Format::Json);
        assert_eq!(Format::choose(b"", Some(b"text/html,*/*")), Format::Html);
        assert_eq!(Format::choose(b"", None), Format::Html);
    }

    #[test]
    fn prometheus_text_escapes_labels_and_ends_histograms_with_inf() {
        let text = prometheus(&snapshot());
        assert!(
            text.contains(r#"oxwsgi_requests_total{app="/srv/\"odd\"\\app.py",status="5xx"} 3"#),
            "{text}"
        );
        assert!(text.contains(
            r#"oxwsgi_request_duration_seconds_bucket{app="/srv/\"odd\"\\app.py",le="+Inf"} 4"#
        ));
        assert!(text.contains(
            r#"oxwsgi_request_duration_seconds_bucket{app="/srv/\"odd\"\\app.py",le="0.005"} 1"#
        ));
        assert!(text.contains(r#"oxwsgi_threads{pid="77",state="idle"} 7"#));
        assert!(text.contains(r#"oxwsgi_recycles_total{reason="max_requests"} 2"#));
        assert!(text.contains(r#"oxwsgi_threads{pid="78",group="site",state="idle"} 4"#));
        assert!(text.contains(r#"oxwsgi_group_processes{group="site"} 1"#));
        assert!(text.contains(r#"oxwsgi_group_recycles_total{group="site",reason="max_rss"} 3"#));
        // Every sample belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line}");
            }
        }
    }

    #[test]
    fn json_escapes_what_came_from_requests() {
        let text = json(&snapshot());
        assert!(
            text.contains(r#""path":"/\u003cscript>alert(1)\u003c/script>""#),
            "{text}"
        );
        assert!(text.contains(r#""name":"/srv/\"odd\"\\app.py""#));
        assert!(text.contains(r#""recycles":{"max_requests":2,"stuck":0}"#));
        assert!(
            text.contains(r#""groups":[{"name":"site","processes":1,"recycles":{"max_rss":3}}]"#)
        );
        assert!(text.contains(r#""pid":78,"group":"site""#));
    }

    #[test]
    fn the_page_escapes_what_came_from_requests() {
        let page = html(&snapshot());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("/&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("in &lt;module&gt;"));
        assert!(page.contains("class=\"slow\""));
        assert!(page.contains("<meta http-equiv=\"refresh\""));
    }
}

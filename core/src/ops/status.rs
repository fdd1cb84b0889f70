//! The status page, in three forms from one snapshot of the metrics:
//! Prometheus' text format (for `?format=prometheus` and for the `Accept`
//! header Prometheus sends), JSON (`?format=json`) and an HTML page (the
//! default, for a browser: it refreshes itself, without JavaScript).
//!
//! Everything that came from a request (path, client, app name, stack) is
//! escaped for the form it goes into; request bodies, headers, cookies and
//! query strings are never recorded in the first place.

use std::fmt::Write;

use crate::ops::metrics::{
    AppSnapshot, BUCKETS, GroupSnapshot, HistogramSnapshot, ProcSnapshot, RecycleReason,
    RequestSnapshot, Snapshot,
};

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

/// A family whose series are one value per row: `rows` gives each row's
/// labels and value.
fn series<V: std::fmt::Display>(
    out: &mut String,
    (name, kind, help): Family,
    rows: impl IntoIterator<Item = (String, V)>,
) {
    family(out, name, kind, help);
    for (labels, v) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    for (bound, n) in BUCKETS.iter().zip(h.buckets) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// What an app's family holds.
enum AppValue<'a> {
    /// Responses by status class, 1xx to 5xx.
    ByClass(&'a [u64; 5]),
    Histogram(&'a HistogramSnapshot),
    Gauge(i64),
    Counter(u64),
    /// A counter of bytes (the page shows MiB).
    Bytes(u64),
}

/// One family of per-app series, as each form shows it.
struct AppFamily {
    /// Prometheus' name, type and help text.
    metric: &'static str,
    kind: &'static str,
    help: &'static str,
    /// The app's key in JSON.
    json: &'static str,
    /// The page's column(s) (`None`: the page leaves it out).
    column: Option<&'static str>,
    get: for<'a> fn(&'a AppSnapshot) -> AppValue<'a>,
}

/// Every per-app family, in the order Prometheus and JSON list them.
const APP_FAMILIES: [AppFamily; 10] = [
    AppFamily {
        metric: "oxwsgi_requests_total",
        kind: "counter",
        help: "Responses by status class.",
        json: "responses",
        column: Some("<th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th>"),
        get: |a| AppValue::ByClass(&a.responses),
    },
    AppFamily {
        metric: "oxwsgi_request_duration_seconds",
        kind: "histogram",
        help: "Time from the app's call to the end of its response.",
        json: "duration_seconds",
        column: Some("<th>median time</th>"),
        get: |a| AppValue::Histogram(&a.duration),
    },
    AppFamily {
        metric: "oxwsgi_queue_wait_seconds",
        kind: "histogram",
        help: "Time requests waited for a Python thread.",
        json: "queue_wait_seconds",
        column: None,
        get: |a| AppValue::Histogram(&a.queue_wait),
    },
    AppFamily {
        metric: "oxwsgi_requests_in_flight",
        kind: "gauge",
        help: "Requests the app is running now.",
        json: "in_flight",
        column: Some("<th>in flight</th>"),
        get: |a| AppValue::Gauge(a.in_flight),
    },
    AppFamily {
        metric: "oxwsgi_queue_depth",
        kind: "gauge",
        help: "Requests waiting for a Python thread now.",
        json: "queued",
        column: Some("<th>queued</th>"),
        get: |a| AppValue::Gauge(a.queued),
    },
    AppFamily {
        metric: "oxwsgi_app_exceptions_total",
        kind: "counter",
        help: "Exceptions the app raised.",
        json: "exceptions",
        column: Some("<th>exceptions</th>"),
        get: |a| AppValue::Counter(a.exceptions),
    },
    AppFamily {
        metric: "oxwsgi_request_timeouts_total",
        kind: "counter",
        help: "Requests stopped at their request timeout.",
        json: "request_timeouts",
        column: Some("<th>timeouts</th>"),
        get: |a| AppValue::Counter(a.request_timeouts),
    },
    AppFamily {
        metric: "oxwsgi_queue_timeouts_total",
        kind: "counter",
        help: "Requests refused (503) after waiting past the queue timeout.",
        json: "queue_timeouts",
        column: Some("<th>queue timeouts</th>"),
        get: |a| AppValue::Counter(a.queue_timeouts),
    },
    AppFamily {
        metric: "oxwsgi_request_body_bytes_total",
        kind: "counter",
        help: "Request body bytes the app read.",
        json: "request_body_bytes",
        column: Some("<th>in</th>"),
        get: |a| AppValue::Bytes(a.bytes_in),
    },
    AppFamily {
        metric: "oxwsgi_response_body_bytes_total",
        kind: "counter",
        help: "Response body bytes the app produced.",
        json: "response_body_bytes",
        column: Some("<th>out</th>"),
        get: |a| AppValue::Bytes(a.bytes_out),
    },
];

/// A family's name, type and help text.
type Family = (&'static str, &'static str, &'static str);

const INFO: Family = (
    "oxwsgi_info",
    "gauge",
    "The server's Python and oxwsgi versions.",
);
const UPTIME: Family = (
    "oxwsgi_uptime_seconds",
    "gauge",
    "Seconds since the metrics started (server start; reloads keep them).",
);
const THREADS: Family = (
    "oxwsgi_threads",
    "gauge",
    "Python threads of each server process, busy or idle.",
);
const RSS: Family = (
    "oxwsgi_process_resident_memory_bytes",
    "gauge",
    "Resident memory of each server process running Python.",
);
const PROCESS_REQUESTS: Family = (
    "oxwsgi_process_requests_total",
    "counter",
    "Requests each server process served since it started.",
);
const RECYCLES: Family = (
    "oxwsgi_recycles_total",
    "counter",
    "Processes whose Python was replaced, by reason.",
);
const GROUP_PROCESSES: Family = (
    "oxwsgi_group_processes",
    "gauge",
    "Daemon processes of each process group alive now.",
);
const GROUP_RECYCLES: Family = (
    "oxwsgi_group_recycles_total",
    "counter",
    "Daemon processes of each process group replaced, by reason.",
);

pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let version = format!(
        "python=\"{}\",version=\"{}\"",
        label(&s.python),
        env!("CARGO_PKG_VERSION")
    );
    series(&mut out, INFO, [(version, 1)]);
    series(&mut out, UPTIME, [(String::new(), s.uptime.as_secs())]);
    app_series(&mut out, &s.apps);
    process_series(&mut out, s);
    if !s.groups.is_empty() {
        group_series(&mut out, s);
    }
    out
}

/// Every per-app family (`APP_FAMILIES`), each app's series.
fn app_series(out: &mut String, apps: &[AppSnapshot]) {
    let apps: Vec<(String, &AppSnapshot)> = apps
        .iter()
        .map(|a| (format!("app=\"{}\"", label(&a.name)), a))
        .collect();
    for f in &APP_FAMILIES {
        family(out, f.metric, f.kind, f.help);
        for (l, a) in &apps {
            let name = f.metric;
            match (f.get)(a) {
                AppValue::ByClass(n) => {
                    for (i, n) in n.iter().enumerate() {
                        let _ = writeln!(out, "{name}{{{l},status=\"{}xx\"}} {n}", i + 1);
                    }
                }
                AppValue::Histogram(h) => histogram(out, name, l, h),
                AppValue::Gauge(n) => {
                    let _ = writeln!(out, "{name}{{{l}}} {n}");
                }
                AppValue::Counter(n) | AppValue::Bytes(n) => {
                    let _ = writeln!(out, "{name}{{{l}}} {n}");
                }
            }
        }
    }
}

/// The server processes' families, and the recycles of their Python.
fn process_series(out: &mut String, s: &Snapshot) {
    let procs: Vec<(String, &ProcSnapshot)> = s.procs.iter().map(|p| (proc_labels(p), p)).collect();
    let threads = procs.iter().flat_map(|(l, p)| {
        let idle = p.threads.saturating_sub(p.busy);
        [
            (format!("{l},state=\"busy\""), p.busy),
            (format!("{l},state=\"idle\""), idle),
        ]
    });
    series(out, THREADS, threads);
    series(out, RSS, procs.iter().map(|(l, p)| (l.clone(), p.rss)));
    let requests = procs.iter().map(|(l, p)| (l.clone(), p.requests));
    series(out, PROCESS_REQUESTS, requests);
    let recycles = s.recycles.iter();
    series(
        out,
        RECYCLES,
        recycles.map(|(why, n)| (format!("reason=\"{}\"", why.label()), *n)),
    );
}

/// The process groups' families.
fn group_series(out: &mut String, s: &Snapshot) {
    let group = |g: &GroupSnapshot| format!("group=\"{}\"", label(&g.name));
    let alive = s.groups.iter().map(|g| (group(g), g.processes));
    series(out, GROUP_PROCESSES, alive);
    let recycles = s.groups.iter().flat_map(|g| {
        g.recycles
            .iter()
            .map(move |(why, n)| (format!("{},reason=\"{}\"", group(g), why.label()), *n))
    });
    series(out, GROUP_RECYCLES, recycles);
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
    let list = |items: Vec<String>| items.join(",");
    format!(
        "{{\"uptime_seconds\":{},\"python\":{},\"version\":{},\"recycles\":{{{}}},\
         \"apps\":[{}],\"processes\":[{}],\"groups\":[{}],\"requests\":[{}]}}\n",
        s.uptime.as_secs(),
        js(&s.python),
        js(env!("CARGO_PKG_VERSION")),
        json_recycles(&s.recycles),
        list(s.apps.iter().map(json_app).collect()),
        list(s.procs.iter().map(json_proc).collect()),
        list(s.groups.iter().map(json_group).collect()),
        list(s.requests.iter().map(json_request).collect()),
    )
}

/// An app: its name, then every family of `APP_FAMILIES` by its key.
fn json_app(a: &AppSnapshot) -> String {
    let mut o = format!("{{\"name\":{}", js(&a.name));
    for f in &APP_FAMILIES {
        let _ = write!(o, ",\"{}\":", f.json);
        match (f.get)(a) {
            AppValue::ByClass(n) => {
                let classes: Vec<String> = n
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("\"{}xx\":{n}", i + 1))
                    .collect();
                let _ = write!(o, "{{{}}}", classes.join(","));
            }
            AppValue::Histogram(h) => o.push_str(&json_histogram(h)),
            AppValue::Gauge(n) => {
                let _ = write!(o, "{n}");
            }
            AppValue::Counter(n) | AppValue::Bytes(n) => {
                let _ = write!(o, "{n}");
            }
        }
    }
    o.push('}');
    o
}

fn json_proc(p: &ProcSnapshot) -> String {
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
}

fn json_request(r: &RequestSnapshot) -> String {
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
}

fn json_group(g: &GroupSnapshot) -> String {
    format!(
        "{{\"name\":{},\"processes\":{},\"recycles\":{{{}}}}}",
        js(&g.name),
        g.processes,
        json_recycles(&g.recycles)
    )
}

fn json_recycles(r: &[(RecycleReason, u64)]) -> String {
    r.iter()
        .map(|(why, n)| format!("{}:{n}", js(why.label())))
        .collect::<Vec<_>>()
        .join(",")
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
    html_head(&mut out, s);
    html_apps(&mut out, &s.apps);
    if !s.groups.is_empty() {
        html_groups(&mut out, &s.groups);
    }
    html_procs(&mut out, &s.procs);
    html_requests(&mut out, &s.requests);
    out.push_str("</table></body></html>\n");
    out
}

/// The recycles by reason, for a person.
fn html_recycles(r: &[(RecycleReason, u64)]) -> String {
    r.iter()
        .map(|(why, n)| format!("{} {n}", why.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The document's head, and the server's line.
fn html_head(out: &mut String, s: &Snapshot) {
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
        html_recycles(&s.recycles)
    );
}

/// The apps' table: a column for each family of `APP_FAMILIES` the page
/// shows.
fn html_apps(out: &mut String, apps: &[AppSnapshot]) {
    out.push_str("<h2>Apps</h2><table><tr><th class=\"l\">app</th>");
    for f in &APP_FAMILIES {
        out.push_str(f.column.unwrap_or_default());
    }
    out.push_str("</tr>");
    for a in apps {
        let _ = write!(out, "<tr><td class=\"l\">{}</td>", h(&a.name));
        for f in APP_FAMILIES.iter().filter(|f| f.column.is_some()) {
            match (f.get)(a) {
                // 1xx is never an app's final answer.
                AppValue::ByClass(n) => {
                    for n in &n[1..] {
                        let _ = write!(out, "<td>{n}</td>");
                    }
                }
                AppValue::Histogram(hist) => {
                    let _ = write!(out, "<td>{}</td>", p50(hist));
                }
                AppValue::Gauge(n) => {
                    let _ = write!(out, "<td>{n}</td>");
                }
                AppValue::Counter(n) => {
                    let _ = write!(out, "<td>{n}</td>");
                }
                AppValue::Bytes(n) => {
                    let _ = write!(out, "<td>{}</td>", mib(n));
                }
            }
        }
        out.push_str("</tr>");
    }
}

fn html_groups(out: &mut String, groups: &[GroupSnapshot]) {
    out.push_str(
        "</table><h2>Process groups</h2><table><tr><th class=\"l\">group</th>\
         <th>processes</th><th class=\"l\">recycles</th></tr>",
    );
    for g in groups {
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            h(&g.name),
            g.processes,
            html_recycles(&g.recycles)
        );
    }
}

fn html_procs(out: &mut String, procs: &[ProcSnapshot]) {
    out.push_str(
        "</table><h2>Processes</h2><table><tr><th>pid</th><th class=\"l\">group</th>\
         <th>requests</th><th>threads busy</th><th>threads</th><th>memory</th></tr>",
    );
    for p in procs {
        let group = if p.group.is_empty() {
            "(server)".to_string()
        } else {
            h(&p.group)
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"l\">{group}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.pid,
            p.requests,
            p.busy,
            p.threads,
            mib(p.rss)
        );
    }
}

fn html_requests(out: &mut String, requests: &[RequestSnapshot]) {
    let _ = write!(
        out,
        "</table><h2>Requests in flight ({})</h2><table><tr><th>pid</th><th>thread</th>\
         <th class=\"l\">app</th><th class=\"l\">request</th><th class=\"l\">client</th>\
         <th>elapsed</th><th class=\"l\">Python stack (after 1 s)</th></tr>",
        requests.len()
    );
    for r in requests {
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

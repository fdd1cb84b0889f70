//! The nginx configuration of a plan: a complete server of its own, every
//! file it writes inside the root (so it runs as any user, beside the
//! system's nginx), the app at `/`. `daemon off` is given on the command
//! line by whoever runs it in the foreground.

use std::fmt::Write;

use crate::plan::{GROUP, Plan, quoted};

/// Debian's MIME types for static files, when nginx-common is there.
const MIME_TYPES: &str = "/etc/nginx/mime.types";

pub fn render(plan: &Plan) -> String {
    let o = &plan.options;
    let root = &plan.root;
    let mut c = String::new();
    let mut line = |s: String| {
        c.push_str(&s);
        c.push('\n');
    };
    line(crate::plan::header(plan, "nginx"));
    line(format!(
        "load_module {};",
        quoted(plan.install.module.display())
    ));
    let workers = if o.group { 1 } else { o.processes.unwrap_or(1) };
    line(format!("worker_processes {workers};"));
    line(format!("pid {};", quoted(root.join("nginx.pid").display())));
    line(format!("error_log {} {};", error_log(plan), o.log_level));
    if let Some(u) = &plan.user {
        line(format!("user {u};"));
    }
    if !o.group {
        // The app's current directory (a worker chdirs there before Python
        // starts in it).
        line(format!(
            "working_directory {};",
            quoted(plan.working_directory.display())
        ));
    }
    line("events { worker_connections 1024; }".into());
    line("http {".into());
    if std::path::Path::new(MIME_TYPES).exists() {
        line(format!("    include {MIME_TYPES};"));
    }
    line("    default_type application/octet-stream;".into());
    line("    sendfile on;".into());
    line("    server_tokens off;".into());
    line("    client_max_body_size 10m;".into());
    if o.access_log {
        line(format!(
            "    access_log {} combined;",
            quoted(root.join("access.log").display())
        ));
    } else {
        line("    access_log off;".into());
    }
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        line(format!(
            "    {t}_temp_path {};",
            quoted(root.join("tmp").join(t).display())
        ));
    }
    if plan.drain_time() > 0 {
        line(format!("    wsgi_drain_time {}s;", plan.drain_time()));
    }
    if o.group {
        line(format!(
            "    wsgi_daemon_process {GROUP} {};",
            plan.group_options(false)
        ));
    } else {
        if let Some(h) = &plan.python.home {
            line(format!("    wsgi_python_home {};", quoted(h.display())));
        }
        if !plan.python_path.is_empty() {
            line(format!(
                "    wsgi_python_path {};",
                quoted(plan.python_path_joined())
            ));
        }
        if let Some(t) = o.threads {
            line(format!("    wsgi_threads {t};"));
        }
        if let Some(n) = o.max_requests {
            line(format!("    wsgi_max_requests {n};"));
        }
    }
    line("    server {".into());
    line(format!("        listen {};", plan.listen(o.port)));
    if let (Some(port), Some(cert), Some(key)) = (
        o.https_port,
        &o.ssl_certificate_file,
        &o.ssl_certificate_key_file,
    ) {
        line(format!("        listen {} ssl;", plan.listen(port)));
        line(format!(
            "        ssl_certificate {};",
            quoted(cert.display())
        ));
        line(format!(
            "        ssl_certificate_key {};",
            quoted(key.display())
        ));
    }
    line("        server_name localhost;".into());
    for (url, dir) in &plan.url_aliases {
        let (url, dir) = if url == "/" {
            ("/".to_string(), format!("{}/", dir.display()))
        } else {
            (url.clone(), dir.display().to_string())
        };
        line(format!(
            "        location ^~ {url} {{ alias {}; }}",
            quoted(dir)
        ));
    }
    if let Some(s) = &o.status_url {
        line(format!("        location = {s} {{ wsgi_status; }}"));
    }
    if let Some(h) = &o.health_url {
        line(format!("        location = {h} {{ wsgi_health ready; }}"));
        line(format!(
            "        location = {}/live {{ wsgi_health live; }}",
            h.trim_end_matches('/')
        ));
    }
    let mut app = format!("wsgi_app {};", quoted(plan.target.spec()));
    if plan.target.callable != "application"
        && matches!(plan.target.source, crate::target::Source::Script(_))
    {
        let _ = write!(app, " wsgi_callable {};", plan.target.callable);
    }
    if o.group {
        let _ = write!(app, " wsgi_process_group {GROUP};");
    } else if let Some(t) = o.request_timeout {
        let _ = write!(app, " wsgi_request_timeout {t}s;");
    }
    line(format!("        location / {{ {app} }}"));
    line("    }".into());
    line("}".into());
    c
}

fn error_log(plan: &Plan) -> String {
    if plan.options.log_to_terminal {
        "stderr".into()
    } else {
        quoted(plan.root.join("error.log").display())
    }
}

//! The nginx configuration of a plan: a complete server of its own, every
//! file it writes inside the root (so it runs as any user, beside the
//! system's nginx), the app at `/`. `daemon off` is given on the command
//! line by whoever runs it in the foreground.

use std::fmt::Write;

use crate::plan::{GROUP, Lines, Plan, quoted};

/// Debian's MIME types for static files, when nginx-common is there.
const MIME_TYPES: &str = "/etc/nginx/mime.types";

pub fn render(plan: &Plan) -> String {
    let mut c = Lines::default();
    main_context(&mut c, plan);
    http_settings(&mut c, plan);
    server_block(&mut c, plan);
    c.text()
}

/// The main context: the module, the workers, their files and user.
fn main_context(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    let root = &plan.root;
    c.line(crate::plan::header(plan, "nginx"));
    c.line(format!(
        "load_module {};",
        quoted(plan.install.module.display())
    ));
    let workers = if o.group { 1 } else { o.processes.unwrap_or(1) };
    c.line(format!("worker_processes {workers};"));
    c.line(format!("pid {};", quoted(root.join("nginx.pid").display())));
    c.line(format!("error_log {} {};", error_log(plan), o.log_level));
    if let Some(u) = &plan.user {
        c.line(format!("user {u};"));
    }
    if !o.group {
        // The app's current directory (a worker chdirs there before Python
        // starts in it).
        c.line(format!(
            "working_directory {};",
            quoted(plan.working_directory.display())
        ));
    }
    c.line("events { worker_connections 1024; }");
}

/// The http block's settings: files, logs, temp paths, and where Python runs.
fn http_settings(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    let root = &plan.root;
    c.line("http {");
    if std::path::Path::new(MIME_TYPES).exists() {
        c.line(format!("    include {MIME_TYPES};"));
    }
    c.line("    default_type application/octet-stream;");
    c.line("    sendfile on;");
    c.line("    server_tokens off;");
    c.line("    client_max_body_size 10m;");
    if o.access_log {
        c.line(format!(
            "    access_log {} combined;",
            quoted(root.join("access.log").display())
        ));
    } else {
        c.line("    access_log off;");
    }
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        c.line(format!(
            "    {t}_temp_path {};",
            quoted(root.join("tmp").join(t).display())
        ));
    }
    if plan.drain_time() > 0 {
        c.line(format!("    wsgi_drain_time {}s;", plan.drain_time()));
    }
    if o.group {
        c.line(format!(
            "    wsgi_daemon_process {GROUP} {};",
            plan.group_options(false)
        ));
    } else {
        if let Some(h) = &plan.python.home {
            c.line(format!("    wsgi_python_home {};", quoted(h.display())));
        }
        if !plan.python_path.is_empty() {
            c.line(format!(
                "    wsgi_python_path {};",
                quoted(plan.python_path_joined())
            ));
        }
        if let Some(t) = o.threads {
            c.line(format!("    wsgi_threads {t};"));
        }
        if let Some(n) = o.max_requests {
            c.line(format!("    wsgi_max_requests {n};"));
        }
    }
}

/// The one server: its ports, static files, the status and health pages, the app at `/`.
fn server_block(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    c.line("    server {");
    c.line(format!("        listen {};", plan.listen(o.port)));
    if let (Some(port), Some(cert), Some(key)) = (
        o.https_port,
        &o.ssl_certificate_file,
        &o.ssl_certificate_key_file,
    ) {
        c.line(format!("        listen {} ssl;", plan.listen(port)));
        c.line(format!(
            "        ssl_certificate {};",
            quoted(cert.display())
        ));
        c.line(format!(
            "        ssl_certificate_key {};",
            quoted(key.display())
        ));
    }
    c.line("        server_name localhost;");
    for (url, dir) in &plan.url_aliases {
        let (url, dir) = if url == "/" {
            ("/".to_string(), format!("{}/", dir.display()))
        } else {
            (url.clone(), dir.display().to_string())
        };
        c.line(format!(
            "        location ^~ {url} {{ alias {}; }}",
            quoted(dir)
        ));
    }
    if let Some(s) = &o.status_url {
        c.line(format!("        location = {s} {{ wsgi_status; }}"));
    }
    if let Some(h) = &o.health_url {
        c.line(format!("        location = {h} {{ wsgi_health ready; }}"));
        c.line(format!(
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
    c.line(format!("        location / {{ {app} }}"));
    c.line("    }");
    c.line("}");
}

fn error_log(plan: &Plan) -> String {
    if plan.options.log_to_terminal {
        "stderr".into()
    } else {
        quoted(plan.root.join("error.log").display())
    }
}

//! The Apache configuration of a plan: a complete server of its own (the
//! event MPM, the few modules it needs from Debian's apache2), every file it
//! writes inside the root, the app at `/` with mod_wsgi's directives, as
//! mod_wsgi-express writes them.

use crate::install::APACHE_MODULES;
use crate::plan::{GROUP, Lines, Plan, quoted};

pub fn render(plan: &Plan) -> String {
    let mut c = Lines::default();
    server(&mut c, plan);
    modules_and_logs(&mut c, plan);
    wsgi(&mut c, plan);
    urls(&mut c, plan);
    https(&mut c, plan);
    c.text()
}

/// The server itself: its root, files, port and user; its error log.
fn server(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    let root = &plan.root;
    c.line(crate::plan::header(plan, "Apache"));
    c.line(format!("ServerRoot {}", quoted(root.display())));
    c.line(format!("DefaultRuntimeDir {}", quoted(root.display())));
    c.line(format!(
        "PidFile {}",
        quoted(root.join("httpd.pid").display())
    ));
    c.line(format!("Listen {}", plan.listen(o.port)));
    if let Some(p) = o.https_port {
        c.line(format!("Listen {}", plan.listen(p)));
    }
    c.line("ServerName localhost");
    c.line("ServerTokens Prod");
    if let Some(u) = &plan.user {
        c.line(format!("User {u}"));
        if let Some((_, gid)) = crate::sys::ids_of(u) {
            c.line(format!("Group #{gid}"));
        }
    }
    if o.log_to_terminal {
        // Through a pipe: Apache would reopen a file path, which the user
        // may not (a terminal or a file of another user's). Apache gives
        // an error log's program its own stdout, which the command points
        // at its stderr.
        c.line("ErrorLog \"|/bin/cat\"");
    } else {
        c.line(format!(
            "ErrorLog {}",
            quoted(root.join("error.log").display())
        ));
    }
    c.line(format!("LogLevel {}", o.log_level));
}

/// The modules it loads, oxwsgi's among them, and the access log.
fn modules_and_logs(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    let root = &plan.root;
    // log_config is built into Debian's apache2.
    let mut modules = vec!["mpm_event", "authz_core", "mime", "alias"];
    if o.https_port.is_some() {
        modules.extend(["socache_shmcb", "ssl"]);
    }
    for m in modules {
        c.line(format!("LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so"));
    }
    c.line(format!(
        "LoadModule wsgi_module {}",
        quoted(plan.install.module.display())
    ));
    c.line("TypesConfig /etc/mime.types");
    c.line("LimitRequestBody 10485760");
    if o.access_log {
        c.line("LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{Referer}i\\\" \\\"%{User-Agent}i\\\"\" combined");
        c.line(format!(
            "CustomLog {} combined",
            quoted(root.join("access.log").display())
        ));
    }
}

/// Where the app runs: a process group, or the children (embedded).
fn wsgi(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    if o.group {
        c.line(format!(
            "WSGIDaemonProcess {GROUP} {}",
            plan.group_options(true)
        ));
        c.line(format!("WSGIProcessGroup {GROUP}"));
    } else {
        let processes = o.processes.unwrap_or(1);
        let threads = o.threads.unwrap_or(8);
        c.line(format!("StartServers {processes}"));
        c.line(format!("ServerLimit {processes}"));
        c.line(format!("ThreadsPerChild {threads}"));
        c.line(format!("ThreadLimit {threads}"));
        c.line(format!("MaxRequestWorkers {}", processes * threads));
        c.line(format!("MinSpareThreads {threads}"));
        c.line(format!("MaxSpareThreads {}", processes * threads));
        if let Some(h) = &plan.python.home {
            c.line(format!("WSGIPythonHome {}", quoted(h.display())));
        }
        if !plan.python_path.is_empty() {
            c.line(format!(
                "WSGIPythonPath {}",
                quoted(plan.python_path_joined())
            ));
        }
        if let Some(t) = o.request_timeout {
            c.line(format!("WSGIRequestTimeout {t}"));
        }
    }
    // The main interpreter, as mod_wsgi-express: C extensions that refuse
    // sub-interpreters load.
    c.line("WSGIApplicationGroup %{GLOBAL}");
}

/// What answers at which URL: static files, the status and health pages, the app.
fn urls(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    for (url, dir) in &plan.url_aliases {
        c.line(format!("Alias {url} {}", quoted(dir.display())));
        c.line(format!(
            "<Directory {}>\n    Require all granted\n</Directory>",
            quoted(dir.display())
        ));
    }
    if let Some(s) = &o.status_url {
        c.line(format!(
            "<Location {s}>\n    SetHandler wsgi-status\n</Location>"
        ));
    }
    if plan.drain_time() > 0 {
        c.line(format!("WSGIDrainTime {}", plan.drain_time()));
    }
    // A stop is graceful (the command and the unit send SIGWINCH): what is
    // in flight finishes, within half the time the command gives a stop.
    c.line(format!(
        "GracefulShutdownTimeout {}",
        crate::plan::STOP_LIMIT.as_secs() / 2
    ));
    if let Some(h) = &o.health_url {
        c.line(format!(
            "<Location {h}>\n    SetHandler wsgi-health-ready\n</Location>"
        ));
        c.line(format!(
            "<Location {}/live>\n    SetHandler wsgi-health-live\n</Location>",
            h.trim_end_matches('/')
        ));
    }
    let script = plan.script();
    c.line(format!("WSGIScriptAlias / {}", quoted(script.display())));
    if plan.target.callable != "application"
        && matches!(plan.target.source, crate::target::Source::Script(_))
    {
        c.line(format!("WSGICallableObject {}", plan.target.callable));
    }
    if let Some(dir) = script.parent() {
        c.line(format!(
            "<Directory {}>\n    Require all granted\n</Directory>",
            quoted(dir.display())
        ));
    }
}

/// HTTPS on its own port, when asked.
fn https(c: &mut Lines, plan: &Plan) {
    let o = &plan.options;
    if let (Some(p), Some(cert), Some(key)) = (
        o.https_port,
        &o.ssl_certificate_file,
        &o.ssl_certificate_key_file,
    ) {
        c.line(format!("<VirtualHost {}>", plan.listen(p)));
        c.line("    SSLEngine on");
        c.line(format!("    SSLCertificateFile {}", quoted(cert.display())));
        c.line(format!(
            "    SSLCertificateKeyFile {}",
            quoted(key.display())
        ));
        c.line("</VirtualHost>");
    }
}

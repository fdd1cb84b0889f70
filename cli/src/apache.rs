//! The Apache configuration of a plan: a complete server of its own (the
//! event MPM, the few modules it needs from Debian's apache2), every file it
//! writes inside the root, the app at `/` with mod_wsgi's directives, as
//! mod_wsgi-express writes them.

use crate::install::APACHE_MODULES;
use crate::plan::{GROUP, Plan, quoted};

pub fn render(plan: &Plan) -> String {
    let o = &plan.options;
    let root = &plan.root;
    let mut c = String::new();
    let mut line = |s: String| {
        c.push_str(&s);
        c.push('\n');
    };
    line(crate::plan::header(plan, "Apache"));
    line(format!("ServerRoot {}", quoted(root.display())));
    line(format!("DefaultRuntimeDir {}", quoted(root.display())));
    line(format!(
        "PidFile {}",
        quoted(root.join("httpd.pid").display())
    ));
    line(format!("Listen {}", plan.listen(o.port)));
    if let Some(p) = o.https_port {
        line(format!("Listen {}", plan.listen(p)));
    }
    line("ServerName localhost".into());
    line("ServerTokens Prod".into());
    if let Some(u) = &plan.user {
        line(format!("User {u}"));
        if let Some((_, gid)) = crate::sys::ids_of(u) {
            line(format!("Group #{gid}"));
        }
    }
    if o.log_to_terminal {
        // Through a pipe: Apache would reopen a file path, which the user
        // may not (a terminal or a file of another user's). Apache gives
        // an error log's program its own stdout, which the command points
        // at its stderr.
        line("ErrorLog \"|/bin/cat\"".into());
    } else {
        line(format!(
            "ErrorLog {}",
            quoted(root.join("error.log").display())
        ));
    }
    line(format!("LogLevel {}", o.log_level));
    // log_config is built into Debian's apache2.
    let mut modules = vec!["mpm_event", "authz_core", "mime", "alias"];
    if o.https_port.is_some() {
        modules.extend(["socache_shmcb", "ssl"]);
    }
    for m in modules {
        line(format!("LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so"));
    }
    line(format!(
        "LoadModule wsgi_module {}",
        quoted(plan.install.module.display())
    ));
    line("TypesConfig /etc/mime.types".into());
    line("LimitRequestBody 10485760".into());
    if o.access_log {
        line(
            "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{Referer}i\\\" \\\"%{User-Agent}i\\\"\" combined"
                .into(),
        );
        line(format!(
            "CustomLog {} combined",
            quoted(root.join("access.log").display())
        ));
    }
    if o.group {
        line(format!(
            "WSGIDaemonProcess {GROUP} {}",
            plan.group_options(true)
        ));
        line(format!("WSGIProcessGroup {GROUP}"));
    } else {
        let processes = o.processes.unwrap_or(1);
        let threads = o.threads.unwrap_or(8);
        line(format!("StartServers {processes}"));
        line(format!("ServerLimit {processes}"));
        line(format!("ThreadsPerChild {threads}"));
        line(format!("ThreadLimit {threads}"));
        line(format!("MaxRequestWorkers {}", processes * threads));
        line(format!("MinSpareThreads {threads}"));
        line(format!("MaxSpareThreads {}", processes * threads));
        if let Some(h) = &plan.python.home {
            line(format!("WSGIPythonHome {}", quoted(h.display())));
        }
        if !plan.python_path.is_empty() {
            line(format!(
                "WSGIPythonPath {}",
                quoted(plan.python_path_joined())
            ));
        }
        if let Some(t) = o.request_timeout {
            line(format!("WSGIRequestTimeout {t}"));
        }
    }
    // The main interpreter, as mod_wsgi-express: C extensions that refuse
    // sub-interpreters load.
    line("WSGIApplicationGroup %{GLOBAL}".into());
    for (url, dir) in &plan.url_aliases {
        line(format!("Alias {url} {}", quoted(dir.display())));
        line(format!(
            "<Directory {}>\n    Require all granted\n</Directory>",
            quoted(dir.display())
        ));
    }
    if let Some(s) = &o.status_url {
        line(format!(
            "<Location {s}>\n    SetHandler wsgi-status\n</Location>"
        ));
    }
    if plan.drain_time() > 0 {
        line(format!("WSGIDrainTime {}", plan.drain_time()));
    }
    // A stop is graceful (the command and the unit send SIGWINCH): what is
    // in flight finishes, within half the time the command gives a stop.
    line(format!(
        "GracefulShutdownTimeout {}",
        crate::plan::STOP_LIMIT.as_secs() / 2
    ));
    if let Some(h) = &o.health_url {
        line(format!(
            "<Location {h}>\n    SetHandler wsgi-health-ready\n</Location>"
        ));
        line(format!(
            "<Location {}/live>\n    SetHandler wsgi-health-live\n</Location>",
            h.trim_end_matches('/')
        ));
    }
    let script = plan.script();
    line(format!("WSGIScriptAlias / {}", quoted(script.display())));
    if plan.target.callable != "application"
        && matches!(plan.target.source, crate::target::Source::Script(_))
    {
        line(format!("WSGICallableObject {}", plan.target.callable));
    }
    if let Some(dir) = script.parent() {
        line(format!(
            "<Directory {}>\n    Require all granted\n</Directory>",
            quoted(dir.display())
        ));
    }
    if let (Some(p), Some(cert), Some(key)) = (
        o.https_port,
        &o.ssl_certificate_file,
        &o.ssl_certificate_key_file,
    ) {
        line(format!("<VirtualHost {}>", plan.listen(p)));
        line("    SSLEngine on".into());
        line(format!("    SSLCertificateFile {}", quoted(cert.display())));
        line(format!(
            "    SSLCertificateKeyFile {}",
            quoted(key.display())
        ));
        line("</VirtualHost>".into());
    }
    c
}

//! `--setup-only DIR`: the server's configuration in DIR, with the scripts
//! that start, stop and reload it there, and a systemd unit that runs it,
//! all ready to use as written (the same files `serve` runs from).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::args::Server;
use crate::plan::Plan;
use crate::server::{Mode, argv};

/// Writes everything; the files written, for the command to list.
pub fn write(plan: &Plan) -> Result<Vec<String>, String> {
    crate::server::write_files(plan)?;
    let mut written = vec![crate::server::config_path(plan).display().to_string()];
    for (name, mode, what) in [
        ("start", Mode::Start, "Starts the server in the background"),
        ("stop", Mode::Stop, "Stops the server"),
        (
            "reload",
            Mode::Reload,
            "Reloads the server: the app is imported again",
        ),
        ("configtest", Mode::Test, "Tests the server's configuration"),
    ] {
        let p = plan.root.join(name);
        let text = format!(
            "#!/bin/sh\n# {what} (written by oxwsgi for {}).\nexec {}\n",
            plan.target.describe,
            shell_words(&argv(plan, mode))
        );
        write_file(&p, &text, 0o755)?;
        written.push(p.display().to_string());
    }
    let unit = plan.root.join("oxwsgi-app.service");
    write_file(&unit, &unit_file(plan), 0o644)?;
    written.push(unit.display().to_string());
    Ok(written)
}

fn write_file(p: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// A systemd unit: the server in the foreground under systemd, reloaded and
/// stopped gracefully.
fn unit_file(plan: &Plan) -> String {
    let (reload, stop_signal) = match plan.options.server {
        Server::Nginx => ("/bin/kill -HUP $MAINPID", "SIGQUIT"),
        Server::Apache => ("/bin/kill -USR1 $MAINPID", "SIGWINCH"),
    };
    let user = match &plan.user {
        // Started as root: the server drops to its user itself.
        Some(_) => String::new(),
        None => current_user().map_or_else(String::new, |u| format!("User={u}\n")),
    };
    format!(
        "# Serves {} through {} (written by oxwsgi).\n\
         # Install: cp {unit} /etc/systemd/system/ && systemctl daemon-reload\n\
         #          && systemctl enable --now oxwsgi-app\n\
         [Unit]\n\
         Description=oxwsgi: {} through {}\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         {user}\
         WorkingDirectory={root}\n\
         ExecStartPre={test}\n\
         ExecStart={run}\n\
         ExecReload={reload}\n\
         KillSignal={stop_signal}\n\
         TimeoutStopSec=30\n\
         KillMode=mixed\n\
         Restart=on-failure\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        plan.target.describe,
        plan.options.server.name(),
        plan.target.describe,
        plan.options.server.name(),
        unit = plan.root.join("oxwsgi-app.service").display(),
        root = plan.root.display(),
        test = shell_words(&argv(plan, Mode::Test)),
        run = shell_words(&argv(plan, Mode::Foreground)),
    )
}

fn current_user() -> Option<String> {
    std::env::var("USER")
        .ok()
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|u| !u.is_empty())
}

/// Words for sh and systemd alike: single-quoted where needed.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_where_needed() {
        let w: Vec<String> = ["/usr/sbin/nginx", "-g", "daemon off;", "it's"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            shell_words(&w),
            "/usr/sbin/nginx -g 'daemon off;' 'it'\\''s'"
        );
    }
}

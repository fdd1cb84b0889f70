//! The command line: `oxwsgi serve [OPTIONS] APP`, `oxwsgi check [OPTIONS]
//! APP`. Options are named after mod_wsgi-express's where it has one; each
//! takes `--name value` or `--name=value`. A mistake is one message.

use std::path::PathBuf;

/// Which server runs the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Nginx,
    Apache,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Nginx => "nginx",
            Server::Apache => "Apache",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Serve(Options),
    Check(Options),
    Help,
    Version,
}

/// What `serve` and `check` are asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub app: String,
    pub server: Server,
    pub host: String,
    pub port: u16,
    /// `None`: the server's own default.
    pub processes: Option<u32>,
    pub threads: Option<u32>,
    /// In a process group (its own processes) instead of the server's.
    pub group: bool,
    pub callable: Option<String>,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    /// `(URL, DIR)`: static files the server sends itself.
    pub url_aliases: Vec<(String, PathBuf)>,
    pub reload_on_changes: bool,
    pub access_log: bool,
    pub log_to_terminal: bool,
    pub log_level: String,
    pub https_port: Option<u16>,
    pub ssl_certificate_file: Option<PathBuf>,
    pub ssl_certificate_key_file: Option<PathBuf>,
    /// Seconds.
    pub request_timeout: Option<u32>,
    pub max_requests: Option<u64>,
    pub status_url: Option<String>,
    /// Readiness at this URL, liveness at URL/live.
    pub health_url: Option<String>,
    /// Seconds readiness answers 503 before a graceful stop (default 5
    /// with `--health-url`, else 0).
    pub drain_time: Option<u32>,
    pub working_directory: Option<PathBuf>,
    pub server_root: Option<PathBuf>,
    /// Write the setup to this directory and exit.
    pub setup_only: Option<PathBuf>,
    /// The user the server's workers run as (only when started as root).
    pub user: Option<String>,
}

impl Options {
    fn new() -> Options {
        Options {
            app: String::new(),
            server: Server::Nginx,
            host: "127.0.0.1".into(),
            port: 8000,
            processes: None,
            threads: None,
            group: false,
            callable: None,
            python_home: None,
            python_path: Vec::new(),
            url_aliases: Vec::new(),
            reload_on_changes: false,
            access_log: false,
            log_to_terminal: false,
            log_level: "info".into(),
            https_port: None,
            ssl_certificate_file: None,
            ssl_certificate_key_file: None,
            request_timeout: None,
            max_requests: None,
            status_url: None,
            health_url: None,
            drain_time: None,
            working_directory: None,
            server_root: None,
            setup_only: None,
            user: None,
        }
    }
}

pub const USAGE: &str = "\
usage: oxwsgi serve [OPTIONS] APP     serve APP through a private nginx (or Apache)
       oxwsgi serve --setup-only DIR [OPTIONS] APP
                                      write that setup to DIR for production
       oxwsgi check [OPTIONS] APP     import APP as the server would, and say what stops it

APP is a WSGI script (app.py, site.wsgi), a module:callable (mysite.wsgi:application,
imported from the current directory), or a Django project directory (with manage.py).

options:
  --server nginx|apache        the server (default nginx)
  --host ADDRESS               the address to listen on (default 127.0.0.1)
  --port N                     the HTTP port (default 8000)
  --processes N                server processes, or the group's daemons with --group
  --threads N                  Python threads per process
  --group                      run the app in a process group (daemon processes of its own)
  --callable-object NAME       the callable of a script (default application)
  --python-home DIR            the virtualenv (default: the active one, $VIRTUAL_ENV)
  --python-path DIR            a directory to import from (repeatable)
  --url-alias URL DIR          serve DIR's files at URL, by the server itself (repeatable)
  --reload-on-changes          restart the app when a .py file under it changes (development)
  --access-log                 write an access log
  --log-to-terminal            the error log on the terminal instead of a file
  --log-level LEVEL            debug, info, notice, warn, error (default info)
  --https-port N               also serve HTTPS on N, with:
  --ssl-certificate-file FILE
  --ssl-certificate-key-file FILE
  --request-timeout SECONDS    the longest a request may run (then 504)
  --max-requests N             replace a process after N requests
  --status-url URL             the status page (Prometheus, JSON, HTML) at URL
  --health-url URL             readiness at URL (503 while draining), liveness at URL/live
  --drain-time SECONDS         on a stop, readiness 503 for this long first (default 5 with
                               --health-url)
  --working-directory DIR      the app's current directory (default: the app's directory)
  --server-root DIR            keep the server's configuration and logs in DIR
  --user NAME                  the user the app runs as, when started as root (default www-data)
";

/// Parses the arguments after the program's name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((verb, rest)) = args.split_first() else {
        return Err(
            "no command given: try oxwsgi serve APP (oxwsgi --help lists the options)".into(),
        );
    };
    match verb.as_str() {
        "serve" => parse_options(rest).map(Command::Serve),
        "check" => parse_options(rest).map(Command::Check),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" | "version" => Ok(Command::Version),
        other => Err(format!(
            "unknown command {other:?}: the commands are serve and check (oxwsgi --help)"
        )),
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options::new();
    let mut app: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if !arg.starts_with("--") || arg == "--" {
            if arg == "--" {
                if let Some(a) = args.get(i) {
                    set_app(&mut app, a)?;
                    i += 1;
                }
                continue;
            }
            set_app(&mut app, arg)?;
            continue;
        }
        let (name, mut inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let has_inline = inline.is_some();
        let flag = || -> Result<bool, String> {
            if has_inline {
                Err(format!("{name} takes no value"))
            } else {
                Ok(true)
            }
        };
        // `--name=value` gives the first value; more come from the next
        // arguments (`--url-alias=/static DIR`).
        let mut value = |what: &str| -> Result<String, String> {
            if let Some(v) = inline.take() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| format!("{name} needs {what}"))?;
            i += 1;
            Ok(v.clone())
        };
        match name {
            "--server" => {
                o.server = match value("nginx or apache")?.as_str() {
                    "nginx" => Server::Nginx,
                    "apache" | "apache2" | "httpd" => Server::Apache,
                    other => {
                        return Err(format!(
                            "--server {other}: the servers are nginx and apache"
                        ));
                    }
                }
            }
            "--host" => o.host = value("an address")?,
            "--port" => o.port = port(name, &value("a port")?)?,
            "--https-port" => o.https_port = Some(port(name, &value("a port")?)?),
            "--processes" => o.processes = Some(count(name, &value("a number")?)?),
            "--threads" => o.threads = Some(count(name, &value("a number")?)?),
            "--group" => o.group = flag()?,
            "--callable-object" => o.callable = Some(value("a name")?),
            "--python-home" => o.python_home = Some(value("a directory")?.into()),
            "--python-path" => o.python_path.push(value("a directory")?.into()),
            "--url-alias" => {
                let url = value("a URL and a directory")?;
                let dir = value("a directory after the URL")?;
                if !url.starts_with('/') {
                    return Err(format!("--url-alias {url}: the URL must start with /"));
                }
                o.url_aliases.push((url, dir.into()));
            }
            "--reload-on-changes" => o.reload_on_changes = flag()?,
            "--access-log" => o.access_log = flag()?,
            "--log-to-terminal" => o.log_to_terminal = flag()?,
            "--log-level" => {
                let level = value("a level")?;
                if !["debug", "info", "notice", "warn", "error", "crit"].contains(&level.as_str()) {
                    return Err(format!(
                        "--log-level {level}: the levels are debug, info, notice, warn, error and crit"
                    ));
                }
                o.log_level = level;
            }
            "--ssl-certificate-file" => o.ssl_certificate_file = Some(value("a file")?.into()),
            "--ssl-certificate-key-file" => {
                o.ssl_certificate_key_file = Some(value("a file")?.into())
            }
            "--request-timeout" => o.request_timeout = Some(count(name, &value("seconds")?)?),
            "--max-requests" => {
                let v = value("a number")?;
                o.max_requests = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("{name} {v}: expected a number above 0"))?,
                )
            }
            "--status-url" => o.status_url = Some(url(name, &value("a URL")?)?),
            "--health-url" => o.health_url = Some(url(name, &value("a URL")?)?),
            "--drain-time" => {
                let v = value("seconds")?;
                o.drain_time = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("{name} {v}: expected seconds (0: none)"))?,
                )
            }
            "--working-directory" => o.working_directory = Some(value("a directory")?.into()),
            "--server-root" => o.server_root = Some(value("a directory")?.into()),
            "--setup-only" => o.setup_only = Some(value("a directory")?.into()),
            "--user" => o.user = Some(value("a user name")?),
            "--help" => return Err(USAGE.trim_end().into()),
            other => return Err(format!("unknown option {other} (oxwsgi --help lists them)")),
        }
    }
    o.app =
        app.ok_or("no APP given: a WSGI script, a module:callable or a Django project directory")?;
    match (
        &o.https_port,
        &o.ssl_certificate_file,
        &o.ssl_certificate_key_file,
    ) {
        (Some(_), Some(_), Some(_)) | (None, None, None) => {}
        (Some(_), _, _) => {
            return Err(
                "--https-port needs --ssl-certificate-file and --ssl-certificate-key-file".into(),
            );
        }
        _ => return Err("the certificate options need --https-port".into()),
    }
    if o.https_port == Some(o.port) {
        return Err(format!("--https-port {} is also the HTTP port", o.port));
    }
    Ok(o)
}

fn set_app(app: &mut Option<String>, arg: &str) -> Result<(), String> {
    if let Some(first) = app {
        return Err(format!("two apps given ({first} and {arg}): serve one"));
    }
    *app = Some(arg.to_string());
    Ok(())
}

fn port(name: &str, v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{name} {v}: expected a port from 1 to 65535"))
}

fn count(name: &str, v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{name} {v}: expected a number above 0"))
}

fn url(name: &str, v: &str) -> Result<String, String> {
    if v.starts_with('/') && !v.contains(char::is_whitespace) && !v.contains(['{', '}', ';', '"']) {
        Ok(v.to_string())
    } else {
        Err(format!("{name} {v}: expected a URL path such as /status"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn serve(args: &str) -> Result<Options, String> {
        let args: Vec<String> = std::iter::once("serve")
            .chain(args.split_whitespace())
            .map(String::from)
            .collect();
        match parse(&args)? {
            Command::Serve(o) => Ok(o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_take_both_spellings() {
        let o = serve(
            "--port 9000 --processes=2 --threads 4 --group app.py --url-alias /static /srv/s \
             --url-alias=/media /srv/m --python-path a --python-path=b --log-level warn",
        )
        .unwrap();
        assert_eq!(
            (o.port, o.processes, o.threads, o.group),
            (9000, Some(2), Some(4), true)
        );
        assert_eq!(o.app, "app.py");
        assert_eq!(
            o.url_aliases,
            vec![
                ("/static".into(), "/srv/s".into()),
                ("/media".into(), "/srv/m".into())
            ]
        );
        assert_eq!(o.python_path, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(o.log_level, "warn");
        let o = serve("hello.py").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.server),
            ("127.0.0.1", 8000, Server::Nginx)
        );
    }

    #[test]
    fn mistakes_are_one_message_each() {
        for (args, says) in [
            ("", "no APP given"),
            ("a.py b.py", "two apps given"),
            ("--port 0 a.py", "--port 0: expected a port"),
            ("--port 70000 a.py", "--port 70000"),
            ("--port a.py", "--port a.py: expected a port"),
            ("a.py --port", "--port needs a port"),
            ("--threads 0 a.py", "--threads 0: expected a number above 0"),
            ("--server lighttpd a.py", "the servers are nginx and apache"),
            ("--frobnicate a.py", "unknown option --frobnicate"),
            ("--group=yes a.py", "--group takes no value"),
            ("--log-level loud a.py", "the levels are"),
            ("--https-port 8443 a.py", "needs --ssl-certificate-file"),
            ("--ssl-certificate-file c a.py", "need --https-port"),
            ("--url-alias static /srv a.py", "must start with /"),
            ("--status-url status a.py", "expected a URL path"),
            ("--status-url /a;b a.py", "expected a URL path"),
        ] {
            let e = serve(args).unwrap_err();
            assert!(e.contains(says), "{args}: {e}");
        }
        assert!(
            parse(&["run".into()])
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(parse(&[]).is_err());
        assert_eq!(parse(&["--help".into()]).unwrap(), Command::Help);
    }
}

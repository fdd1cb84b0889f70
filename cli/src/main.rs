//! `oxwsgi`: serves a WSGI app in one line through a private nginx (or
//! Apache) with oxwsgi's module, as the invoking user, without touching the
//! system's servers; writes that setup for production; or checks an app.
//!
//! Where things live:
//! - `args`: the command line; `target`: what APP names (a script, a
//!   module, a Django project); `python`: its virtualenv and version;
//!   `install`: where the server and oxwsgi's files are;
//! - `plan`: all of that resolved and checked once; `nginx`, `apache`:
//!   the configuration each server gets from a plan;
//! - `check`: importing the app as the server would, in the app's Python;
//! - `server`: writing, testing and running the server in the
//!   foreground; `watch`: `--reload-on-changes`; `setup`: `--setup-only`;
//! - `sys`: the few system calls std lacks.

mod apache;
mod args;
mod check;
mod install;
mod nginx;
mod plan;
mod python;
mod server;
mod setup;
mod sys;
mod target;
mod watch;

use std::path::PathBuf;
use std::time::Instant;

use args::{Command, Options};
use plan::Plan;

fn say(line: &str) {
    eprintln!("oxwsgi: {line}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args::parse(&args) {
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            0
        }
        Ok(Command::Version) => {
            println!(
                "oxwsgi {} (Python {})",
                env!("CARGO_PKG_VERSION"),
                python::BUILT
            );
            0
        }
        Ok(Command::Serve(o)) => serve(o).unwrap_or_else(fail),
        Ok(Command::Check(o)) => check(o).unwrap_or_else(fail),
        Err(e) => fail(e),
    };
    std::process::exit(code);
}

fn fail(e: String) -> i32 {
    say(&format!("error: {e}"));
    1
}

/// The server's directory: `--setup-only`'s or `--server-root`'s (kept),
/// else a new private one (removed at the end).
struct Root {
    path: PathBuf,
    remove: bool,
}

impl Root {
    fn for_options(o: &Options, cwd: &std::path::Path) -> Result<Root, String> {
        if let Some(d) = o.setup_only.as_ref().or(o.server_root.as_ref()) {
            let path = cwd.join(d);
            std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            return Ok(Root {
                path,
                remove: false,
            });
        }
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            // Not guessable: another user cannot make it first (it is
            // created, never reused).
            let path = base.join(format!(
                "oxwsgi-{}-{n}-{}",
                std::process::id(),
                random_hex()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt;
                    // The workers' user reads it when the command runs as
                    // root; nobody else needs to.
                    let mode = if sys::is_root() { 0o755 } else { 0o700 };
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
                    return Ok(Root { path, remove: true });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!("cannot make a directory in {}", base.display()))
    }
}

/// Eight random hex digits (from the kernel).
fn random_hex() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Drop for Root {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn current_dir() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("the current directory: {e}"))
}

fn plan_for(o: Options, cwd: &std::path::Path, root: &Root) -> Result<Plan, String> {
    let install = install::find(o.server)?;
    Plan::new(
        o,
        cwd,
        root.path.clone(),
        install,
        std::env::var_os("VIRTUAL_ENV").map(PathBuf::from),
        sys::is_root(),
    )
}

fn serve(o: Options) -> Result<i32, String> {
    let cwd = current_dir()?;
    let root = Root::for_options(&o, &cwd)?;
    let plan = plan_for(o, &cwd, &root)?;
    let python = plan.python.home.as_ref().map_or_else(
        || plan.python.executable.display().to_string(),
        |h| h.display().to_string(),
    );
    if plan.options.setup_only.is_none() {
        server::check_ports(&plan)?;
    }
    let t = Instant::now();
    let report = check::run(&plan)?;
    if !report.loaded {
        let more = if report.lines.iter().any(|l| l.contains("Traceback")) {
            format!(
                "; oxwsgi check {} shows the whole traceback",
                plan.options.app
            )
        } else {
            String::new()
        };
        return Err(format!("{}{more}", report.reason()));
    }
    say(&format!(
        "{} imports on {python} ({} ms)",
        plan.target.describe,
        t.elapsed().as_millis()
    ));
    if plan.options.setup_only.is_some() {
        let written = setup::write(&plan)?;
        server::test_config(&plan)?;
        say(&format!("wrote the setup to {}:", plan.root.display()));
        for f in written {
            println!("  {f}");
        }
        say(&format!(
            "run {0}/start (and {0}/stop), or install {0}/oxwsgi-app.service into systemd",
            plan.root.display()
        ));
        return Ok(0);
    }
    server::write_files(&plan)?;
    server::test_config(&plan)?;
    say(&format!(
        "starting {} ({}) in {}",
        plan.options.server.name(),
        shape(&plan),
        plan.root.display()
    ));
    server::run(&plan, &say)
}

/// How the app runs, in words.
fn shape(plan: &Plan) -> String {
    let o = &plan.options;
    let processes = o.processes.unwrap_or(1);
    let threads = o.threads.unwrap_or(8);
    let processes = match (processes, o.group) {
        (1, false) => "1 process".to_string(),
        (n, false) => format!("{n} processes"),
        (1, true) => "1 daemon process".to_string(),
        (n, true) => format!("{n} daemon processes"),
    };
    let threads = if threads == 1 {
        "1 thread".to_string()
    } else {
        format!("{threads} threads")
    };
    format!(
        "{processes}, {threads} each{}",
        if o.group { ", in a process group" } else { "" }
    )
}

fn check(o: Options) -> Result<i32, String> {
    let cwd = current_dir()?;
    let root = Root::for_options(
        &Options {
            server_root: None,
            setup_only: None,
            ..o.clone()
        },
        &cwd,
    )?;
    let plan = plan_for(o, &cwd, &root)?;
    let report = check::run(&plan)?;
    for l in &report.lines {
        eprintln!("{l}");
    }
    if report.loaded {
        say(&format!(
            "{} loads: {} would serve it",
            plan.target.describe,
            plan.options.server.name()
        ));
        Ok(0)
    } else {
        Err(report.reason())
    }
}

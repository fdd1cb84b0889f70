//! Importing the app the way the server will, before anything starts: the
//! app's Python runs oxwsgi's daemon extension, whose `check` loads the app
//! with the servers' own loader, python path and messages
//! (`oxwsgi_core::check`). A process group's daemon starts the same way.

use std::process::{Command, Stdio};

use crate::plan::Plan;
use crate::python::BUILT;

/// Loads the extension by path (nothing of it is importable from the
/// app's path) and runs its check; an interpreter of another version says
/// so instead of failing to load it.
const BOOTSTRAP: &str = r#"import sys
want = tuple(int(p) for p in sys.argv[1].split("."))
if sys.version_info[:2] != want:
    sys.stderr.write(f"error: {sys.executable} is Python {sys.version_info[0]}.{sys.version_info[1]}; oxwsgi runs Python {sys.argv[1]}\n")
    sys.exit(1)
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_loader
path, target, callable, paths = sys.argv[2], sys.argv[3], sys.argv[4] or None, sys.argv[5:]
sys.argv[:] = [""]
loader = ExtensionFileLoader("oxwsgi_daemon", path)
ext = module_from_spec(spec_from_loader("oxwsgi_daemon", loader))
loader.exec_module(ext)
sys.exit(ext.check(target, callable, paths))
"#;

/// What the check said.
pub struct Report {
    pub loaded: bool,
    /// Its messages, one a line (`error: ...`, `info: ...`).
    pub lines: Vec<String>,
}

impl Report {
    /// The message that says why the app did not load: the last error (a
    /// traceback's exception line comes last).
    pub fn reason(&self) -> String {
        self.lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .map_or_else(
                || "the app did not load (no message)".to_string(),
                |l| l.strip_prefix("app ").map_or(l, |rest| rest).to_string(),
            )
    }
}

/// Runs the check in the app's Python, in the app's working directory,
/// with what the server's environment would have.
pub fn run(plan: &Plan) -> Result<Report, String> {
    if !plan.install.extension.is_file() {
        return Err(format!(
            "{}: oxwsgi's daemon extension is missing (reinstall the module's package)",
            plan.install.extension.display()
        ));
    }
    let callable = match &plan.target.source {
        crate::target::Source::Script(_) => plan.target.callable.clone(),
        crate::target::Source::Module(_) => String::new(),
    };
    let mut cmd = Command::new(&plan.python.executable);
    if let Some(user) = &plan.user {
        // Started as root: the app is imported as the user it will run as
        // (what that user cannot read shows here, not at the first request).
        let (uid, gid) =
            crate::sys::ids_of(user).ok_or_else(|| format!("--user {user}: no such user"))?;
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    let out = cmd
        .args(["-I", "-X", "utf8", "-c", BOOTSTRAP, BUILT])
        .arg(&plan.install.extension)
        .arg(plan.target.spec())
        .arg(callable)
        .args(&plan.python_path)
        .current_dir(&plan.working_directory)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", plan.python.executable.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    Ok(Report {
        loaded: out.status.success(),
        lines: text.lines().map(str::to_string).collect(),
    })
}

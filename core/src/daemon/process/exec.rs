//! A daemon that becomes its group's Python: forked from the server (see
//! `group`), with its identity, limits and directory, it executes the
//! virtualenv's own interpreter (`python-executable`; by default where the
//! server ships oxwsgi's daemon extension module), which loads the
//! extension and carries on where the fork left off (`handoff`). That is
//! the interpreter `python -m venv` gave the project, linked statically on
//! Debian; without the extension, or with `python-executable=off`, the
//! daemon starts the server's embedded Python instead.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::daemon::options::{Lifecycle, PythonExecutable};
use crate::daemon::process::handoff::Handoff;
use crate::daemon::spec::{EXTENSION_FILE, ExecSpec, GroupSpec, file_stamp};
use crate::daemon::sys::{self, Pid};

/// The interpreter a daemon of `spec` becomes, and how; `None`: it starts
/// the server's embedded Python, which only a group of the server's own
/// user may do.
pub(in crate::daemon) fn python_to_become(
    spec: &GroupSpec,
) -> Result<Option<(PathBuf, ExecSpec)>, String> {
    let why = match find_python(spec)? {
        Found::Exec(program, exec) => return Ok(Some((program, exec))),
        Found::Embedded(why) => why,
    };
    let workers = spec.socket_owner.map(|(uid, _)| uid);
    match spec.options.own_user(workers) {
        Some(user) => Err(format!(
            "it runs as {user}, not as the server's user, so its daemons run a freshly executed \
             interpreter, never a copy of the server (which holds the server's secrets, its TLS \
             keys among them): {why}"
        )),
        None => Ok(None),
    }
}

/// What a daemon of `spec` can run.
enum Found {
    /// This interpreter, with the extension.
    Exec(PathBuf, ExecSpec),
    /// The server's embedded Python, for this reason.
    Embedded(String),
}

/// The interpreter a daemon of `spec` can become, or why it cannot.
fn find_python(spec: &GroupSpec) -> Result<Found, String> {
    let o = &spec.options;
    // A virtualenv's (or a prefix's) bin/python3.X; the build's own
    // Python's without one.
    let Some(program) = o.interpreter() else {
        return Ok(Found::Embedded(
            "python-executable=off asks for the embedded one".into(),
        ));
    };
    let explicit = matches!(o.python_executable, PythonExecutable::Path(_));
    let Some(exec) = spec.exec.clone() else {
        if explicit {
            return Err(format!(
                "python-executable={}: the server has no {EXTENSION_FILE} (oxwsgi's daemon \
                 extension module) to load into it",
                program.display()
            ));
        }
        return Ok(Found::Embedded(format!(
            "the server has no {EXTENSION_FILE} (oxwsgi's daemon extension)"
        )));
    };
    if file_stamp(&exec.extension) != exec.stamp {
        // The handoff is the module's and the extension's private
        // protocol: both must be of one build.
        log::warn!(
            target: "oxwsgi",
            "group {}: {} changed since the server read its configuration (an upgrade?): \
             this daemon runs the server's embedded Python; reload the server to run {}",
            spec.name,
            exec.extension.display(),
            program.display()
        );
        return Ok(Found::Embedded(format!(
            "{} changed since the server read its configuration (an upgrade?): reload the server",
            exec.extension.display()
        )));
    }
    if !program.is_file() {
        if explicit {
            return Err(format!(
                "python-executable={}: no such file",
                program.display()
            ));
        }
        // A prefix or virtualenv without it: the embedded Python checks
        // the home and says what is wrong with it.
        return Ok(Found::Embedded(format!(
            "{} does not exist",
            program.display()
        )));
    }
    Ok(Found::Exec(program, exec))
}

/// The script the interpreter runs: it checks its version, loads the
/// extension by path (nothing of it is importable from the app's path)
/// and hands over to it; a failure before that waits as `fail_slowly`.
const BOOTSTRAP: &str = r#"import sys, time
try:
    if sys.version_info[:2] != (MAJOR, MINOR):
        raise RuntimeError(f"{sys.executable} is Python {sys.version_info[0]}.{sys.version_info[1]}, oxwsgi was built for Python MAJOR.MINOR (python-executable)")
    from importlib.machinery import ExtensionFileLoader
    from importlib.util import module_from_spec, spec_from_loader
    path, handoff = sys.argv[1], int(sys.argv[2])
    # As the embedded Python's: the app is not a script run from a command line.
    sys.argv[:] = [""]
    loader = ExtensionFileLoader("oxwsgi_daemon", path)
    daemon = module_from_spec(spec_from_loader("oxwsgi_daemon", loader))
    loader.exec_module(daemon)
except BaseException as e:
    sys.stderr.write(f"oxwsgi: a process group's daemon cannot start: {e!r}; it exits in 5 s and another is started\n")
    sys.stderr.flush()
    time.sleep(5)
    sys.exit(1)
sys.exit(daemon.serve(handoff))
"#;

/// Executes `program` with the daemon extension; returns only why that
/// failed.
pub(in crate::daemon) fn become_python(
    spec: &GroupSpec,
    program: &std::path::Path,
    exec: &ExecSpec,
    lifecycle: &Lifecycle,
    listener: &UnixListener,
    parent: Pid,
    metrics: Option<(std::fs::File, usize, usize)>,
) -> String {
    let handoff = Handoff {
        name: spec.name.clone(),
        words: spec.options.words.clone(),
        apps: spec.apps.clone(),
        maximum_requests: lifecycle.maximum_requests,
        parent,
        listener: listener.as_raw_fd(),
        metrics: metrics
            .as_ref()
            .map(|(f, len, offset)| (f.as_raw_fd(), *len, *offset)),
        log: exec.log,
        admission: spec.admission.clone(),
        mounts: spec.mounts.clone(),
        mod_wsgi: spec.mod_wsgi,
        restrict: crate::python::interpreter::python_settings().restrict,
    };
    let (major, minor) = crate::python::interpreter::embedded_version();
    let bootstrap = BOOTSTRAP
        .replace("MAJOR", &major.to_string())
        .replace("MINOR", &minor.to_string());
    let run = || -> io::Result<io::Error> {
        let memfd = sys::memfd_with(&handoff.encode())?;
        sys::keep_on_exec(listener.as_raw_fd())?;
        if let Some((f, ..)) = &metrics {
            sys::keep_on_exec(f.as_raw_fd())?;
        }
        let fd = memfd.as_raw_fd().to_string();
        // The server's interpreter settings (WSGIPython*), as options.
        let settings = crate::python::interpreter::python_settings();
        // -I: neither PYTHON* variables nor the user's site-packages (as
        // the embedded Python); with a hash seed, which only the
        // environment can give, the same by hand: every other PYTHON*
        // variable gone, -s (no user site), -P (no script directory).
        let isolation: &[&str] = match settings.hash_seed {
            None => &["-I"],
            Some(seed) => {
                for (name, _) in std::env::vars_os() {
                    if name.as_encoded_bytes().starts_with(b"PYTHON") {
                        sys::unset_env(&name);
                    }
                }
                sys::set_env("PYTHONHASHSEED", &seed.to_string());
                &["-s", "-P"]
            }
        };
        let flags = settings.flags();
        let mut args: Vec<&std::ffi::OsStr> = vec![program.as_os_str()];
        args.extend(isolation.iter().map(std::ffi::OsStr::new));
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        // -X utf8: UTF-8 mode, as embedded.
        args.extend::<[&std::ffi::OsStr; 6]>([
            "-X".as_ref(),
            "utf8".as_ref(),
            "-c".as_ref(),
            bootstrap.as_ref(),
            exec.extension.as_os_str(),
            fd.as_ref(),
        ]);
        Ok(sys::exec(program, &args))
    };
    let e = run().unwrap_or_else(|e| e);
    format!("cannot run {}: {e}", program.display())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::daemon::options::GroupOptions;
    use crate::daemon::process::stderr_log::LogStyle;

    #[test]
    fn a_replaced_extension_keeps_the_daemons_on_the_embedded_python() {
        let dir = std::env::temp_dir().join(format!("oxwsgi-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ext = dir.join(EXTENSION_FILE);
        std::fs::write(&ext, b"one build").unwrap();
        let options = GroupOptions::parse("g", &["python-executable=/bin/sh"]).unwrap();
        let mut spec = GroupSpec::new("g", options, dir.join("g.sock"), None, vec![]).unwrap();
        assert!(python_to_become(&spec).is_err(), "named, with no extension");
        spec.exec = Some(ExecSpec {
            stamp: file_stamp(&ext),
            extension: ext.clone(),
            log: LogStyle::Nginx,
        });
        let (program, _) = python_to_become(&spec).unwrap().unwrap();
        assert_eq!(program, std::path::Path::new("/bin/sh"));
        // An upgrade puts another build in its place.
        std::fs::write(dir.join("next"), b"another build").unwrap();
        std::fs::rename(dir.join("next"), &ext).unwrap();
        assert!(python_to_become(&spec).unwrap().is_none());
        // A group with a user of its own never runs a copy of the server.
        spec.options.user = Some("nobody".into());
        spec.socket_owner = Some((0, 0));
        let e = python_to_become(&spec).unwrap_err();
        assert!(
            e.contains("runs as nobody") && e.contains("changed since"),
            "{e}"
        );
        spec.socket_owner = Some((sys::user_id("nobody").unwrap(), 0));
        assert!(
            python_to_become(&spec).unwrap().is_none(),
            "the server's own user"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The Python an app runs on: a virtualenv (`--python-home`, else the
//! active one, `$VIRTUAL_ENV`) of the version oxwsgi's modules embed, or
//! the system's Python of that version.

use std::path::{Path, PathBuf};

/// The Python version the modules of this build embed.
pub const BUILT: &str = env!("OXWSGI_PYTHON_VERSION");

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Python {
    /// The virtualenv or prefix the servers are given (`None`: the
    /// system's Python).
    pub home: Option<PathBuf>,
    /// Its interpreter, which `check` runs.
    pub executable: PathBuf,
}

/// `explicit` is `--python-home`; `active` the environment's
/// `VIRTUAL_ENV`.
pub fn resolve(explicit: Option<&Path>, active: Option<PathBuf>) -> Result<Python, String> {
    let (home, how) = match (explicit, active) {
        (Some(h), _) => (h.to_path_buf(), "--python-home"),
        (None, Some(v)) if !v.as_os_str().is_empty() => (v, "the active virtualenv ($VIRTUAL_ENV)"),
        _ => {
            return Ok(Python {
                home: None,
                executable: PathBuf::from(format!("/usr/bin/python{BUILT}")),
            });
        }
    };
    let home = std::fs::canonicalize(&home)
        .map_err(|e| format!("{how} {}: {}", home.display(), reason(&e)))?;
    if !home.is_dir() {
        return Err(format!("{how} {}: not a directory", home.display()));
    }
    let cfg = home.join("pyvenv.cfg");
    if let Ok(text) = std::fs::read_to_string(&cfg) {
        let version = venv_version(&text)
            .ok_or_else(|| format!("{}: names no Python version", cfg.display()))?;
        if version != BUILT {
            return Err(format!(
                "{how} {} is a Python {version} virtualenv; oxwsgi runs Python {BUILT}: \
                 make one with python{BUILT} -m venv",
                home.display()
            ));
        }
        let executable = ["python3", "python"]
            .iter()
            .map(|n| home.join("bin").join(n))
            .find(|p| p.exists())
            .ok_or_else(|| format!("{how} {}: no bin/python3 in it", home.display()))?;
        return Ok(Python {
            home: Some(home),
            executable,
        });
    }
    // A prefix, as Python's own installations are.
    let executable = home.join("bin").join(format!("python{BUILT}"));
    if !executable.exists() {
        return Err(format!(
            "{how} {}: neither a virtualenv (no pyvenv.cfg) nor a Python {BUILT} prefix",
            home.display()
        ));
    }
    Ok(Python {
        home: Some(home),
        executable,
    })
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such directory".into(),
        _ => e.to_string(),
    }
}

/// `major.minor` of a `pyvenv.cfg`: its `version_info` (uv) or `version`
/// (venv, virtualenv).
fn venv_version(cfg: &str) -> Option<String> {
    let field = |name: &str| {
        cfg.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let full = field("version_info").or_else(|| field("version"))?;
    let mut parts = full.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
    (!minor.is_empty() && major.chars().all(|c| c.is_ascii_digit()))
        .then(|| format!("{major}.{minor}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_virtualenv_of_another_version_is_refused() {
        let d = std::env::temp_dir().join(format!("oxwsgi-cli-venv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/python3"), "").unwrap();
        std::fs::write(d.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.0.1\n").unwrap();
        let e = resolve(Some(&d), None).unwrap_err();
        assert!(
            e.contains("is a Python 3.0 virtualenv; oxwsgi runs Python"),
            "{e}"
        );
        std::fs::write(d.join("pyvenv.cfg"), format!("version = {BUILT}.4\n")).unwrap();
        let p = resolve(None, Some(d.clone())).unwrap();
        assert_eq!(p.home, Some(d.canonicalize().unwrap()));
        assert!(p.executable.ends_with("bin/python3"));
        let e = resolve(Some(&d.join("nope")), None).unwrap_err();
        assert!(e.contains("no such directory"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(resolve(None, None).unwrap().home, None);
    }

    #[test]
    fn versions_of_pyvenv_cfg() {
        assert_eq!(venv_version("version = 3.11.2"), Some("3.11".into()));
        assert_eq!(
            venv_version("version_info = 3.13.5.final.0\nversion = x"),
            Some("3.13".into())
        );
        assert_eq!(venv_version("home = /usr"), None);
    }
}

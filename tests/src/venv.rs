//! Virtualenvs for the tests, made with the system's python3 and pip,
//! cached under build/out by their requirements' contents and Python
//! version, and shared by
//! the tests (a file lock serialises their creation between test
//! processes).

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

use crate::repo;

/// The interpreter venvs are made with: the one the modules are built
/// against (`PYO3_PYTHON`, set per Debian release), else the system's.
pub fn python() -> PathBuf {
    std::env::var_os("PYO3_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// `python()`'s version, `3.11` style (what the modules embed).
pub fn python_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = Command::new(python())
                .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
                .output()
                .expect("run python3");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// The path of a ready virtualenv with examples/requirements.txt installed
/// (the example sites: Flask, Django).
pub fn sites_venv() -> PathBuf {
    let reqs = repo().join("examples/requirements.txt");
    let text = std::fs::read_to_string(&reqs).expect("examples/requirements.txt");
    with_requirements("sites", &text)
}

/// The path of a ready virtualenv named `tag` with `requirements` (the
/// text of a requirements file) installed.
pub fn with_requirements(tag: &str, requirements: &str) -> PathBuf {
    let python = python();
    // The version too: /usr/bin/python3 is 3.11 on one release and 3.13 on
    // the other, and both releases' tests share build/out.
    let key = requirements
        .bytes()
        .chain(python.to_string_lossy().bytes())
        .chain(python_version().into_bytes())
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    let base = repo().join("build/out");
    std::fs::create_dir_all(&base).unwrap();
    let venv = base.join(format!("venv-{tag}-{key:016x}"));
    let lock = std::fs::File::create(base.join(format!("venv-{tag}.lock"))).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !venv.join(".ready").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let ok = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv")
            .success();
        assert!(ok, "creating the venv failed");
        let reqs = venv.join("requirements.txt");
        std::fs::write(&reqs, requirements).unwrap();
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&reqs)
            .status()
            .expect("pip install")
            .success();
        assert!(ok, "pip install of {requirements:?} failed");
        std::fs::write(venv.join(".ready"), "").unwrap();
    }
    drop(lock);
    venv
}

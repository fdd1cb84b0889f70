//! A virtualenv with the example sites' requirements (Flask, Django), made
//! with Debian's python3.11 and pip, cached under build/out by the
//! requirements' contents, and shared by the tests (a file lock serialises
//! its creation between test processes).

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

use crate::repo;

/// The path of a ready virtualenv with examples/requirements.txt installed.
pub fn sites_venv() -> PathBuf {
    let reqs = repo().join("examples/requirements.txt");
    let text = std::fs::read_to_string(&reqs).expect("examples/requirements.txt");
    let key = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let base = repo().join("build/out");
    std::fs::create_dir_all(&base).unwrap();
    let venv = base.join(format!("venv-sites-{key:016x}"));
    let lock = std::fs::File::create(base.join("venv-sites.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    if !venv.join(".ready").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let ok = Command::new("/usr/bin/python3.11")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3.11 -m venv")
            .success();
        assert!(ok, "creating the venv failed");
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&reqs)
            .status()
            .expect("pip install")
            .success();
        assert!(ok, "pip install -r examples/requirements.txt failed");
        std::fs::write(venv.join(".ready"), "").unwrap();
    }
    drop(lock);
    venv
}

//! Records the Python version the modules of this build embed: the
//! interpreter pyo3 is configured with (`PYO3_PYTHON`, set per Debian
//! release by the build), else the system's python3. A virtualenv of
//! another version cannot be served.

use std::process::Command;

fn main() {
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let version = Command::new(&python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| panic!("cannot run {python} to learn its version"));
    println!("cargo:rustc-env=OXWSGI_PYTHON_VERSION={version}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}

//! Records which Python the core embeds (the interpreter pyo3 was configured
//! with through PYO3_PYTHON), so the worker starts that very interpreter and
//! can tell a virtualenv built for another version.

fn main() {
    let cfg = pyo3_build_config::get();
    let version = format!("{}.{}", cfg.version().major, cfg.version().minor);
    let exe = cfg
        .executable()
        .map(str::to_string)
        .unwrap_or_else(|| format!("/usr/bin/python{version}"));
    println!("cargo:rustc-env=OXWSGI_BUILD_PYTHON_VERSION={version}");
    println!("cargo:rustc-env=OXWSGI_BUILD_PYTHON={exe}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}

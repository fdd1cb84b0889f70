//! Generates the httpd/APR bindings (bindgen) and compiles the C shim for the
//! macro-built parts (the directive table, logging with the module index).

use std::path::PathBuf;
use std::process::Command;

fn apxs(query: &str) -> String {
    let out = Command::new("apxs")
        .args(["-q", query])
        .output()
        .expect("apxs (apache2-dev) is needed to build mod_oxwsgi");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn main() {
    let inc = apxs("INCLUDEDIR");
    let apr = apxs("APR_INCLUDEDIR");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    bindgen::Builder::default()
        .header("src/wrapper.h")
        .clang_arg(format!("-I{inc}"))
        .clang_arg(format!("-I{apr}"))
        .allowlist_function("ap_.*|apr_.*")
        .allowlist_type("request_rec|module_struct|cmd_parms|server_rec|command_rec|conn_rec|unixd_config_rec|apr_.*")
        .allowlist_var("MODULE_MAGIC_.*|OK|DECLINED|DONE|HTTP_.*|APR_HOOK_.*|REQUEST_CHUNKED_.*|APLOG_.*|AP_CONN_CLOSE|AP_MPMQ_.*|APR_FOPEN_.*|M_GET|AP_SQ_.*|APR_OC_REASON_.*|ap_unixd_config|OPT_EXECCGI|OR_FILEINFO|ap_server_conf")
        .derive_default(true)
        .layout_tests(false)
        .generate()
        .expect("bindgen over the httpd headers")
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings");
    cc::Build::new()
        .file("src/shim.c")
        .include(&inc)
        .include(&apr)
        .warnings(false)
        .compile("oxwsgi_shim");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/wrapper.h");
}

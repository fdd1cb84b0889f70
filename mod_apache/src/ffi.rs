//! httpd and APR, as bindgen sees them (see build.rs), plus the C shim.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::unwrap_used,
    unsafe_op_in_unsafe_fn,
    improper_ctypes,
    unnecessary_transmutes
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

unsafe extern "C" {
    /// The directive table (shim.c).
    pub static oxwsgi_cmds: command_rec;
    /// Registers the auth providers `wsgi` and `wsgi-group` (shim.c).
    pub fn oxwsgi_register_auth_providers(p: *mut apr_pool_t);
    /// The module's per-directory configuration in `cv` (shim.c).
    pub fn oxwsgi_dir_config(cv: *const ap_conf_vector_t) -> *mut ::core::ffi::c_void;
    /// Whether `s` logs the module's debug lines (shim.c).
    pub fn oxwsgi_logs_debug(s: *const server_rec) -> ::core::ffi::c_int;
    /// ap_log_error with the module's index (shim.c).
    pub fn oxwsgi_log(level: ::core::ffi::c_int, msg: *const ::core::ffi::c_char);
    /// ap_log_rerror with the module's index: the request's context (client,
    /// log id) goes with the line (shim.c).
    pub fn oxwsgi_log_r(
        r: *const request_rec,
        level: ::core::ffi::c_int,
        msg: *const ::core::ffi::c_char,
    );
}

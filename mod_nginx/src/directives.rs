//! The directive table: each `wsgi_*` directive, where it may appear, and
//! the part that parses it (`conf`, `health`, `status`). `wsgi_app` also
//! makes the location's content handler ours.

use std::ffi::{c_char, c_void};
use std::ptr;

use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{
    NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF, ngx_command_t, ngx_conf_t,
    ngx_http_core_loc_conf_t, ngx_str_t, ngx_uint_t,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_string;
use oxwsgi_core::guard;

use crate::{conf, handler, health, status};

type SetFn = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const fn command(name: ngx_str_t, where_: u32, offset: usize, set: SetFn) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: (where_ | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set),
        conf: offset,
        offset: 0,
        post: ptr::null_mut(),
    }
}

const ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
const MAIN: usize = NGX_HTTP_MAIN_CONF_OFFSET;
const LOC: usize = NGX_HTTP_LOC_CONF_OFFSET;

pub static mut COMMANDS: [ngx_command_t; 22] = [
    command(ngx_string!("wsgi_app"), NGX_HTTP_LOC_CONF, LOC, set_app),
    command(ngx_string!("wsgi_callable"), ANY, LOC, conf::set_callable),
    command(
        ngx_string!("wsgi_application_group"),
        ANY,
        LOC,
        conf::set_application_group,
    ),
    command(
        ngx_string!("wsgi_script_name"),
        NGX_HTTP_LOC_CONF,
        LOC,
        conf::set_script_name,
    ),
    command(ngx_string!("wsgi_gzip"), ANY, LOC, conf::set_gzip),
    command(
        ngx_string!("wsgi_inflate_request"),
        ANY,
        LOC,
        conf::set_inflate,
    ),
    command(
        ngx_string!("wsgi_inflate_max"),
        ANY,
        LOC,
        conf::set_inflate_max,
    ),
    command(
        ngx_string!("wsgi_body_buffer_size"),
        ANY,
        LOC,
        conf::set_body_buffer,
    ),
    command(
        ngx_string!("wsgi_request_timeout"),
        ANY,
        LOC,
        conf::set_request_timeout,
    ),
    command(
        ngx_string!("wsgi_queue_timeout"),
        ANY,
        LOC,
        conf::set_queue_timeout,
    ),
    command(ngx_string!("wsgi_group"), ANY, LOC, conf::set_group),
    ngx_command_t {
        type_: (ANY | ngx::ffi::NGX_CONF_1MORE) as ngx_uint_t,
        ..command(
            ngx_string!("wsgi_process_group"),
            0,
            LOC,
            conf::set_process_group,
        )
    },
    command(
        ngx_string!("wsgi_health"),
        NGX_HTTP_LOC_CONF,
        LOC,
        health::set_health,
    ),
    command(
        ngx_string!("wsgi_drain_time"),
        NGX_HTTP_MAIN_CONF,
        MAIN,
        conf::set_drain_time,
    ),
    ngx_command_t {
        type_: status::STATUS_TYPE,
        ..command(ngx_string!("wsgi_status"), 0, MAIN, status::set_status)
    },
    command(
        ngx_string!("wsgi_python_home"),
        NGX_HTTP_MAIN_CONF,
        MAIN,
        conf::set_python_home,
    ),
    command(
        ngx_string!("wsgi_python_path"),
        NGX_HTTP_MAIN_CONF,
        MAIN,
        conf::set_python_path,
    ),
    ngx_command_t {
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12) as ngx_uint_t,
        ..command(
            ngx_string!("wsgi_max_requests"),
            0,
            MAIN,
            conf::set_max_requests,
        )
    },
    command(
        ngx_string!("wsgi_max_rss"),
        NGX_HTTP_MAIN_CONF,
        MAIN,
        conf::set_max_rss,
    ),
    command(
        ngx_string!("wsgi_threads"),
        NGX_HTTP_MAIN_CONF,
        MAIN,
        conf::set_threads,
    ),
    ngx_command_t {
        type_: (NGX_HTTP_MAIN_CONF | ngx::ffi::NGX_CONF_1MORE) as ngx_uint_t,
        ..command(
            ngx_string!("wsgi_daemon_process"),
            0,
            MAIN,
            conf::set_daemon_process,
        )
    },
    ngx_command_t::empty(),
];

/// `wsgi_app`: `conf` takes the app; the location's requests then come to
/// the module's content handler.
unsafe extern "C" fn set_app(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    loc: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's arguments for this directive, passed on.
    let rv = unsafe { conf::set_app(cf, cmd, loc) };
    if rv == NGX_CONF_ERROR {
        return rv;
    }
    guard::entry("the wsgi_app directive", crate::DIRECTIVE_PANICKED, || {
        // SAFETY: called by nginx for wsgi_app inside a location block: cf's
        // context is that location's, where the core module's location
        // conf exists.
        match unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) } {
            Some(clcf) => {
                let clcf: &mut ngx_http_core_loc_conf_t = clcf;
                clcf.handler = Some(handler::content_handler);
                rv
            }
            None => NGX_CONF_ERROR,
        }
    })
}

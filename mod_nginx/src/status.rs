//! Metrics across all workers, and the `wsgi_status` handler that shows
//! them. The core's metrics region lives in a shared memory zone that the
//! master creates with the configuration (so workers inherit it, and a
//! reload with the same layout keeps the counters); each worker attaches to
//! it when its Python starts.

use std::ffi::{c_char, c_void};
use std::ptr::{self, NonNull};

use ngx::ffi::{
    NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE, NGX_OK, ngx_command_t,
    ngx_conf_t, ngx_http_request_t, ngx_int_t, ngx_shared_memory_add, ngx_shm_zone_t,
    ngx_slab_calloc, ngx_slab_pool_t, ngx_str_t, ngx_uint_t,
};
use ngx::http::HttpModuleMainConf;
use oxwsgi_core::guard;
use oxwsgi_core::ops::metrics::Region;
use oxwsgi_core::ops::status::{self, Format};

use crate::Module;
use crate::conf::MainConf;

/// The zone's size: the region and the slab allocator's own pages.
const ZONE_SIZE: usize = (Region::SIZE + (128 << 10)).next_multiple_of(4096);

/// Adds the metrics zone to the configuration being read (postconfiguration:
/// once per configuration, whether or not a status location exists: the
/// metrics are always kept).
///
/// # Safety
/// `cf` is the configuration being read, inside its http block.
pub unsafe fn add_zone(cf: *mut ngx_conf_t, main: &mut MainConf) -> Result<(), ()> {
    let mut name = ngx_str_t {
        len: b"oxwsgi_metrics".len(),
        data: b"oxwsgi_metrics".as_ptr().cast_mut(),
    };
    // SAFETY: cf is the configuration being read (add_zone's contract); the
    // name is copied by nginx; the tag is this module's record.
    let zone = unsafe {
        ngx_shared_memory_add(
            cf,
            &mut name,
            ZONE_SIZE,
            ptr::addr_of_mut!(crate::ngx_http_oxwsgi_module).cast(),
        )
    };
    let zone = NonNull::new(zone).ok_or(())?;
    // SAFETY: nginx returned a live zone record of this configuration.
    unsafe { (*zone.as_ptr()).init = Some(init_zone) };
    main.metrics_zone = Some(zone);
    Ok(())
}

/// Gives a new zone its region, or keeps the previous configuration's
/// (a reload: the counters go on).
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    guard::entry("the metrics zone", NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx passes the zone it mapped (in the master, before
        // the workers fork) and the old zone's data on a reload.
        unsafe {
            if !data.is_null() {
                (*zone).data = data;
                return NGX_OK as ngx_int_t;
            }
            let pool = (*zone).shm.addr.cast::<ngx_slab_pool_t>();
            let region = ngx_slab_calloc(pool, Region::SIZE);
            if region.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*pool).data = region;
            (*zone).data = region;
        }
        NGX_OK as ngx_int_t
    })
}

/// The metrics region of this configuration.
pub fn region(main: &MainConf) -> Option<&'static Region> {
    let zone = main.metrics_zone?;
    // SAFETY: the zone was mapped (shared) by the master before the workers
    // forked and stays mapped for the process's life; init_zone put a
    // zeroed allocation of Region::SIZE bytes (slab-aligned) in `data`, and
    // a Region is nothing but atomics, for which zero is a valid value.
    unsafe {
        let data = (*zone.as_ptr()).data;
        (!data.is_null()).then(|| &*data.cast::<Region>())
    }
}

/// `wsgi_status;`: this location answers with the status page.
pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry(
        "the wsgi_status directive",
        crate::DIRECTIVE_PANICKED,
        || {
            // SAFETY: the command's conf offset is the main conf's, so nginx
            // passes this http block's MainConf.
            unsafe { (*conf.cast::<MainConf>()).status = true };
            // SAFETY: called by nginx for wsgi_status inside a location: cf's
            // context is that location's, where the core module's conf exists.
            unsafe { crate::conf::answer_location_with(cf, handler) }
        },
    )
}

unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard::entry(
        "the status handler",
        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        || {
            // SAFETY: nginx calls the content handler with a live request on
            // the event loop thread.
            unsafe { respond(r) }
        },
    )
}

/// # Safety
/// `r` is a live request on the event loop thread.
unsafe fn respond(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: r is live on the event loop (respond's contract); what is
    // read from it lives in its pool, and the buffer built here is filled
    // before it is passed on.
    unsafe {
        if let Err(rc) = crate::output::page_request(r) {
            return rc;
        }
        let req = ngx::http::Request::from_ngx_http_request(r);
        let Some(region) = Module::main_conf(req).and_then(region) else {
            return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
        };
        let query = crate::request::bytes(&(*r).args);
        let mut accept = None;
        crate::request::for_each_header_in(&*r, |n, v| {
            if accept.is_none() && n.eq_ignore_ascii_case(b"accept") {
                accept = Some(v);
            }
        });
        let page = status::render(
            Format::choose(query, accept),
            &oxwsgi_core::ops::group_metrics::snapshot(region),
        );
        let mut headers = vec![("Content-Type".to_string(), page.content_type.to_string())];
        headers.extend(
            status::HEADERS
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string())),
        );
        crate::output::send_page(r, 200, headers, &page.body)
    }
}

/// For the command table: `wsgi_status` takes no argument.
pub const STATUS_TYPE: ngx_uint_t =
    (ngx::ffi::NGX_HTTP_LOC_CONF | ngx::ffi::NGX_CONF_NOARGS) as ngx_uint_t;

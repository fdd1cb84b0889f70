//! Metrics across all children, and the `wsgi-status` handler that shows
//! them. The core's metrics region lives in APR shared memory that the
//! parent creates once, in its process pool: children inherit it when they
//! fork, and a graceful restart keeps it (and the counters).

use std::ffi::{CStr, CString, c_int, c_void};
use std::ptr;

use oxwsgi_core::ops::metrics::Region;
use oxwsgi_core::ops::status::{self, Format};

use crate::ffi::{self, request_rec, server_rec};

/// The handler name (`SetHandler wsgi-status`).
pub const HANDLER_NAME: &CStr = c"wsgi-status";

/// The health handlers (`SetHandler wsgi-health-ready`, `wsgi-health-live`).
pub const HEALTH_READY: &CStr = c"wsgi-health-ready";
pub const HEALTH_LIVE: &CStr = c"wsgi-health-live";

/// The process pool's key for the region, with its size: a graceful
/// restart into an upgraded module whose region differs makes a new one
/// instead of reading past the old.
static KEY: std::sync::LazyLock<CString> = std::sync::LazyLock::new(|| {
    CString::new(format!("oxwsgi-metrics-{}", Region::SIZE)).unwrap_or_default()
});

/// The region, made in the parent on the first configuration pass and
/// found again (process pool user data) on later ones.
///
/// # Safety
/// `s` is the main server, in the parent's post_config.
pub unsafe fn create(s: *mut server_rec) -> Result<(), String> {
    // SAFETY: s is the live main server and its process record (create's
    // contract); the process pool lives as long as the parent.
    unsafe {
        let pool = (*(*s).process).pool;
        let mut found: *mut c_void = ptr::null_mut();
        ffi::apr_pool_userdata_get(&mut found, KEY.as_ptr(), pool);
        if !found.is_null() {
            return Ok(());
        }
        let mut shm: *mut ffi::apr_shm_t = ptr::null_mut();
        let rc = ffi::apr_shm_create(&mut shm, Region::SIZE, ptr::null(), pool);
        if rc != 0 {
            return Err(format!(
                "cannot create the shared memory for the metrics ({} bytes): APR error {rc}",
                Region::SIZE
            ));
        }
        let base = ffi::apr_shm_baseaddr_get(shm);
        ffi::apr_pool_userdata_set(base, KEY.as_ptr(), None, pool);
    }
    Ok(())
}

/// The region this server's children share.
///
/// # Safety
/// `s` is the main server.
pub unsafe fn region(s: *mut server_rec) -> Option<&'static Region> {
    // SAFETY: s and its process pool are live (region's contract). The
    // user data, when set, is the base of an anonymous shared mapping of
    // Region::SIZE bytes made by `create` in the parent: zero-filled by the
    // kernel, inherited by every child, mapped until the process exits;
    // a Region is atomics only, for which zero is a valid value.
    unsafe {
        let mut found: *mut c_void = ptr::null_mut();
        ffi::apr_pool_userdata_get(&mut found, KEY.as_ptr(), (*(*s).process).pool);
        (!found.is_null()).then(|| &*found.cast::<Region>())
    }
}

/// Answers a `wsgi-status` request.
///
/// # Safety
/// `r` is the live request of the calling handler.
pub unsafe fn respond(r: *mut request_rec) -> c_int {
    // SAFETY: r is live on this thread (respond's contract); the strings
    // handed to Apache are copied into its pool or tables.
    unsafe {
        // The page shows every group's requests in flight: only the
        // server's configuration may put it somewhere, never a tenant's
        // .htaccess (which may set handlers where FileInfo is allowed).
        if ffi::ap_allow_overrides(r) & ffi::OR_FILEINFO as c_int != 0 {
            log::error!(
                target: "oxwsgi",
                "wsgi-status is not served where .htaccess files may set handlers \
                 (AllowOverride FileInfo): put it in a <Location> whose directory has \
                 AllowOverride None"
            );
            return ffi::HTTP_FORBIDDEN as c_int;
        }
        if let Err(rc) = page_request(r) {
            return rc;
        }
        let Some(region) = region((*r).server) else {
            return ffi::HTTP_SERVICE_UNAVAILABLE as c_int;
        };
        let query = crate::cstr::cstr_bytes((*r).args);
        let accept = ffi::apr_table_get((*r).headers_in, c"Accept".as_ptr());
        let accept = (!accept.is_null()).then(|| crate::cstr::cstr_bytes(accept));
        let page = status::render(
            Format::choose(query, accept),
            &oxwsgi_core::ops::group_metrics::snapshot(region),
        );
        let headers = status::HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        send_page(r, 200, page.content_type, headers, &page.body)
    }
}

/// Answers a health check: `probe` for this child, whose apps that failed
/// to load are `failed`.
///
/// # Safety
/// `r` is the live request of the calling handler.
pub unsafe fn respond_health(
    r: *mut request_rec,
    probe: oxwsgi_core::ops::health::Probe,
    failed: &[String],
) -> c_int {
    use oxwsgi_core::ops::health;
    // SAFETY: r is live on this thread (respond_health's contract).
    unsafe {
        if let Err(rc) = page_request(r) {
            return rc;
        }
        let region = region((*r).server);
        let down = match region {
            Some(region) => health::groups_down(&oxwsgi_core::ops::group_metrics::snapshot(region)),
            None => Vec::new(),
        };
        if region.is_some_and(Region::draining) {
            // The parent began a graceful stop (WSGIDrainTime).
            health::start_draining();
        }
        let blocked = health::not_ready(failed, &down);
        let (status, body) = health::answer(probe, blocked.as_deref());
        let headers = vec![("Cache-Control".to_string(), "no-store".to_string())];
        send_page(
            r,
            status,
            "text/plain; charset=utf-8",
            headers,
            body.as_bytes(),
        )
    }
}

/// A request for a page the module makes itself: a GET (HEAD too), its
/// body discarded; Apache's status to answer otherwise.
///
/// # Safety
/// `r` is the live request of the calling handler.
unsafe fn page_request(r: *mut request_rec) -> Result<(), c_int> {
    // SAFETY: r is live on this thread (page_request's contract).
    unsafe {
        if (*r).method_number != ffi::M_GET as c_int {
            (*r).allowed = 1 << ffi::M_GET;
            return Err(ffi::HTTP_METHOD_NOT_ALLOWED as c_int);
        }
        let rc = ffi::ap_discard_request_body(r);
        if rc != ffi::OK as c_int {
            return Err(rc);
        }
    }
    Ok(())
}

/// Answers `r` with a page the module makes itself: `status`, its type,
/// `headers`, its length and `body`.
///
/// # Safety
/// `r` is the live request of the calling handler, its body discarded.
unsafe fn send_page(
    r: *mut request_rec,
    status: u16,
    content_type: &str,
    headers: Vec<(String, String)>,
    body: &[u8],
) -> c_int {
    // SAFETY: r is live on this thread; the strings handed to Apache are
    // copied into its pool or tables.
    unsafe {
        let Ok(content_type) = CString::new(content_type) else {
            return ffi::HTTP_INTERNAL_SERVER_ERROR as c_int;
        };
        (*r).status = c_int::from(status);
        ffi::ap_set_content_type(r, ffi::apr_pstrdup((*r).pool, content_type.as_ptr()));
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (CString::new(name), CString::new(value)) {
                ffi::apr_table_set((*r).headers_out, n.as_ptr(), v.as_ptr());
            }
        }
        ffi::ap_set_content_length(r, body.len() as ffi::apr_off_t);
        if (*r).header_only == 0 {
            ffi::ap_rwrite(body.as_ptr().cast(), body.len() as c_int, r);
        }
        ffi::OK as c_int
    }
}

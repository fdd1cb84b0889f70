//! The auth providers, with mod_wsgi's names: `AuthBasicProvider wsgi`
//! asks the `check_password(environ, user, password)` of the directory's
//! `WSGIAuthUserScript`, and `Require wsgi-group NAME...` the
//! `groups_for_user(environ, user)` of its `WSGIAuthGroupScript`, in the
//! Python of Apache's child, as mod_wsgi does (the core's `auth_script`
//! runs them). The shim registers the providers; these are their answers.

use std::ffi::{CStr, c_char, c_int};
use std::path::Path;

use oxwsgi_core::auth_script::{self, Verdict};
use oxwsgi_core::guard;

use crate::ffi::{self, request_rec};

// mod_auth.h's authn_status and authz_status.
const AUTH_DENIED: c_int = 0;
const AUTH_GRANTED: c_int = 1;
const AUTH_USER_NOT_FOUND: c_int = 3;
const AUTH_GENERAL_ERROR: c_int = 4;
const AUTHZ_DENIED: c_int = 0;
const AUTHZ_GRANTED: c_int = 1;
const AUTHZ_GENERAL_ERROR: c_int = 3;
const AUTHZ_DENIED_NO_USER: c_int = 4;

/// The script for `r` (`group`: the group script), when Python runs in
/// this child; why not, otherwise (logged by the caller).
///
/// # Safety
/// `r` is a live request.
unsafe fn script<'r>(r: *mut request_rec, group: bool) -> Result<&'r str, String> {
    let directive = if group {
        "WSGIAuthGroupScript"
    } else {
        "WSGIAuthUserScript"
    };
    if !crate::python_running() {
        return Err(format!(
            "{directive}: Python does not run in Apache's children (WSGIRestrictEmbedded On?)"
        ));
    }
    // SAFETY: r is live (the contract).
    unsafe { crate::conf::auth_script(r, group) }
        .ok_or_else(|| format!("no {directive} for this location"))
}

/// The request's variables as a CGI script would see them, for the
/// script's environ.
///
/// # Safety
/// `r` is a live request, on its thread.
unsafe fn vars(r: *mut request_rec) -> Vec<(Vec<u8>, Vec<u8>)> {
    // SAFETY: r is live (the contract); Apache fills its subprocess_env
    // table, whose strings live in the request pool while they are copied.
    unsafe {
        ffi::ap_add_common_vars(r);
        ffi::ap_add_cgi_vars(r);
        crate::request::table((*r).subprocess_env)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }
}

/// `AuthBasicProvider wsgi`: the user's password checked by the script.
///
/// # Safety
/// Called by mod_auth_basic (through the shim) with a live request and
/// two C strings.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn oxwsgi_check_password(
    r: *mut request_rec,
    user: *const c_char,
    password: *const c_char,
) -> c_int {
    guard::entry("an auth script", AUTH_GENERAL_ERROR, || {
        // SAFETY: r is live, user and password C strings (the contract).
        unsafe {
            let script = match script(r, false) {
                Ok(s) => s,
                Err(e) => {
                    log::error!(target: "oxwsgi", "{e}");
                    return AUTH_GENERAL_ERROR;
                }
            };
            let (user, password) = (CStr::from_ptr(user), CStr::from_ptr(password));
            match auth_script::check_password(
                Path::new(script),
                &vars(r),
                user.to_bytes(),
                password.to_bytes(),
            ) {
                Verdict::Granted => AUTH_GRANTED,
                Verdict::Denied => AUTH_DENIED,
                Verdict::NoUser => AUTH_USER_NOT_FOUND,
                Verdict::Error => AUTH_GENERAL_ERROR,
            }
        }
    })
}

/// `Require wsgi-group NAME...`: granted when the script puts the
/// authenticated user in one of the groups named.
///
/// # Safety
/// Called by mod_authz_core (through the shim) with a live request and the
/// requirement's arguments as a C string.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn oxwsgi_check_group(r: *mut request_rec, require: *const c_char) -> c_int {
    guard::entry("an auth script", AUTHZ_GENERAL_ERROR, || {
        // SAFETY: r is live, require a C string (the contract).
        unsafe {
            if (*r).user.is_null() {
                return AUTHZ_DENIED_NO_USER;
            }
            let script = match script(r, true) {
                Ok(s) => s,
                Err(e) => {
                    log::error!(target: "oxwsgi", "{e}");
                    return AUTHZ_GENERAL_ERROR;
                }
            };
            let wanted = CStr::from_ptr(require).to_string_lossy().into_owned();
            let user = CStr::from_ptr((*r).user).to_bytes();
            match auth_script::groups_for_user(Path::new(script), &vars(r), user) {
                Some(groups)
                    if wanted
                        .split_whitespace()
                        .any(|w| groups.iter().any(|g| g == w)) =>
                {
                    AUTHZ_GRANTED
                }
                Some(_) => AUTHZ_DENIED,
                None => AUTHZ_GENERAL_ERROR,
            }
        }
    })
}

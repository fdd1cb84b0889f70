//! The auth providers, with mod_wsgi's names: `AuthBasicProvider wsgi`
//! (and `AuthDigestProvider wsgi`, its `get_realm_hash`)
//! asks the `check_password(environ, user, password)` of the directory's
//! `WSGIAuthUserScript`, and `Require wsgi-group NAME...` the
//! `groups_for_user(environ, user)` of its `WSGIAuthGroupScript`, and
//! Apache's access check the `allow_access(environ, host)` of its
//! `WSGIAccessScript`, in the
//! Python of Apache's child, as mod_wsgi does (the core's `auth_script`
//! runs them). The shim registers the providers; these are their answers.

use std::ffi::{CStr, c_char, c_int};
use std::path::Path;
use std::ptr;

use oxwsgi_core::auth_script::{self, Verdict};
use oxwsgi_core::guard;

use crate::conf::AuthScript;
use crate::ffi::{self, request_rec};

// mod_auth.h's authn_status and authz_status.
const AUTH_DENIED: c_int = 0;
const AUTH_GRANTED: c_int = 1;
const AUTH_USER_FOUND: c_int = 2;
const AUTH_USER_NOT_FOUND: c_int = 3;
const AUTH_GENERAL_ERROR: c_int = 4;
const AUTHZ_DENIED: c_int = 0;
const AUTHZ_GRANTED: c_int = 1;
const AUTHZ_GENERAL_ERROR: c_int = 3;
const AUTHZ_DENIED_NO_USER: c_int = 4;

/// The script of `kind` for `r`, when Python runs in this child; why not,
/// otherwise (logged by the caller).
///
/// # Safety
/// `r` is a live request.
unsafe fn script<'r>(r: *mut request_rec, kind: AuthScript) -> Result<(&'r str, String), String> {
    let directive = kind.directive();
    if !crate::child::python_running() {
        return Err(format!(
            "{directive}: Python does not run in Apache's children (WSGIRestrictEmbedded On?)"
        ));
    }
    // SAFETY: r is live (the contract).
    unsafe { crate::conf::auth_script(r, kind) }
        .ok_or_else(|| format!("no {directive} for this location"))
}

/// The request's variables as a CGI script would see them, for the
/// script's environ.
///
/// # Safety
/// `r` is a live request, on its thread.
pub(crate) unsafe fn vars(r: *mut request_rec) -> Vars {
    // SAFETY: r is live (the contract); Apache fills a copy of its
    // subprocess_env table (the app's environ must not get the CGI
    // variables of the script's moment, such as its SCRIPT_NAME), whose
    // strings live in the request pool while they are copied.
    unsafe {
        let own = (*r).subprocess_env;
        (*r).subprocess_env = ffi::apr_table_copy((*r).pool, own);
        ffi::ap_add_common_vars(r);
        ffi::ap_add_cgi_vars(r);
        let vars = crate::request::table((*r).subprocess_env)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        (*r).subprocess_env = own;
        vars
    }
}

/// A request's variables, as a CGI script sees them.
pub(crate) type Vars = Vec<(Vec<u8>, Vec<u8>)>;

/// The directory's script of `kind`: its path, group and the request's
/// variables, or why not (logged).
///
/// # Safety
/// `r` is a live request, on its thread.
unsafe fn asked<'r>(r: *mut request_rec, kind: AuthScript) -> Result<Ask<'r>, ()> {
    // SAFETY: r is live (the contract).
    unsafe {
        match script(r, kind) {
            Ok((s, group)) => Ok(Ask {
                script: Path::new(s),
                group,
                vars: vars(r),
            }),
            Err(e) => {
                log::error!(target: "oxwsgi", "{e}");
                Err(())
            }
        }
    }
}

/// What `auth_script::Asked` borrows.
struct Ask<'r> {
    script: &'r Path,
    group: String,
    vars: Vars,
}

impl Ask<'_> {
    fn asked(&self) -> auth_script::Asked<'_> {
        auth_script::Asked {
            script: self.script,
            group: &self.group,
            vars: &self.vars,
        }
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
            let Ok(ask) = asked(r, AuthScript::User) else {
                return AUTH_GENERAL_ERROR;
            };
            let (user, password) = (CStr::from_ptr(user), CStr::from_ptr(password));
            match auth_script::check_password(&ask.asked(), user.to_bytes(), password.to_bytes()) {
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
            let Ok(ask) = asked(r, AuthScript::Group) else {
                return AUTHZ_DENIED;
            };
            let wanted = CStr::from_ptr(require).to_string_lossy().into_owned();
            let user = CStr::from_ptr((*r).user).to_bytes();
            match auth_script::groups_for_user(&ask.asked(), user) {
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

/// The access check (an access_checker hook): a directory with a
/// WSGIAccessScript lets the client in when its `allow_access(environ,
/// host)` says True, refuses it (403) when False or when the script fails,
/// and leaves it to the other rules when None.
///
/// # Safety
/// Called by Apache with a live request, on its thread.
pub unsafe extern "C" fn access_checker(r: *mut request_rec) -> c_int {
    guard::entry("an access script", ffi::HTTP_FORBIDDEN as c_int, || {
        // SAFETY: Apache passes a live request on its thread.
        unsafe {
            if crate::conf::auth_script(r, AuthScript::Access).is_none() {
                return ffi::DECLINED as c_int;
            }
            let Ok(ask) = asked(r, AuthScript::Access) else {
                return ffi::HTTP_FORBIDDEN as c_int;
            };
            // The client's name where Apache looks it up (HostnameLookups),
            // else its address; 0 is REMOTE_HOST.
            let host = ffi::ap_get_remote_host(
                (*r).connection,
                (*r).per_dir_config.cast(),
                0,
                ptr::null_mut(),
            );
            let host = if host.is_null() {
                (*r).useragent_ip.cast_const()
            } else {
                host
            };
            let host = if host.is_null() {
                &b""[..]
            } else {
                CStr::from_ptr(host).to_bytes()
            };
            match auth_script::allow_access(&ask.asked(), host) {
                Some(None) => ffi::DECLINED as c_int,
                Some(Some(true)) => ffi::OK as c_int,
                _ => {
                    log::error!(
                        target: "oxwsgi",
                        "Client denied by server configuration: '{}'.",
                        crate::cstr::cstr_str((*r).filename)
                    );
                    ffi::HTTP_FORBIDDEN as c_int
                }
            }
        }
    })
}

/// `AuthDigestProvider wsgi`: the user's realm hash from the script.
///
/// # Safety
/// Called by mod_auth_digest (through the shim) with a live request, two C
/// strings and where to put the hash.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn oxwsgi_get_realm_hash(
    r: *mut request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
) -> c_int {
    guard::entry("an auth script", AUTH_GENERAL_ERROR, || {
        // SAFETY: r is live, user and realm C strings, rethash writable
        // (the contract); the hash is copied into the request pool.
        unsafe {
            let Ok(ask) = asked(r, AuthScript::User) else {
                return AUTH_GENERAL_ERROR;
            };
            let (user, realm) = (CStr::from_ptr(user), CStr::from_ptr(realm));
            match auth_script::get_realm_hash(&ask.asked(), user.to_bytes(), realm.to_bytes()) {
                Some(Some(hash)) => {
                    let Ok(hash) = std::ffi::CString::new(hash) else {
                        return AUTH_GENERAL_ERROR;
                    };
                    *rethash = ffi::apr_pstrdup((*r).pool, hash.as_ptr());
                    AUTH_USER_FOUND
                }
                Some(None) => AUTH_USER_NOT_FOUND,
                None => AUTH_GENERAL_ERROR,
            }
        }
    })
}

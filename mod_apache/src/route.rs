//! Where a request goes: translate_name maps WSGIScriptAlias and
//! WSGIScriptAliasMatch URLs, and a request's app is found (an alias's, a
//! handler script's, or a script's made on first use and kept).

use std::ffi::{CStr, CString, c_int};

use oxwsgi_core::guard;
use oxwsgi_core::sync::Recover;

use crate::conf;
use crate::cstr::cstr_bytes;
use crate::ffi::{self, request_rec};

/// The handler name of WSGI scripts (`SetHandler wsgi-script`), which
/// translate_name gives the requests it maps.
pub const HANDLER_NAME: &CStr = c"wsgi-script";

/// Maps a WSGIScriptAlias'ed URL to its app.
pub unsafe extern "C" fn translate_name(r: *mut request_rec) -> c_int {
    guard::entry("translate_name", ffi::DECLINED as c_int, || {
        // SAFETY: Apache passes a live request; r->uri is a C string.
        let uri = unsafe { cstr_bytes((*r).uri) };
        let c = conf::get();
        // SAFETY: r is the live request Apache passed; r->server is its
        // (virtual) server.
        let scope = c.scope(unsafe { conf::server_key((*r).server) });
        let Some(index) = c.alias_for(scope, uri) else {
            // SAFETY: r is the live request of this translate_name call.
            return unsafe { translate_match(r, &c, scope) };
        };
        // SAFETY: r is the live request of this hook, used by this thread
        // only; the handler name is static and the alias index is
        // kept in the request's notes for the handler.
        unsafe {
            (*r).handler = HANDLER_NAME.as_ptr();
            let key = c"oxwsgi-alias";
            let value = CString::new(index.to_string()).expect("digits");
            ffi::apr_table_setn(
                (*r).notes,
                key.as_ptr(),
                ffi::apr_pstrdup((*r).pool, value.as_ptr()),
            );
            let script =
                CString::new(conf::get().aliases[index].script.as_str()).unwrap_or_default();
            (*r).filename = ffi::apr_pstrdup((*r).pool, script.as_ptr());
        }
        ffi::OK as c_int
    })
}

/// WSGIScriptAliasMatch: the script path comes from the regex's groups and
/// SCRIPT_NAME is the part of the URL the regex matched.
///
/// # Safety
/// `r` is the live request of translate_name.
unsafe fn translate_match(r: *mut request_rec, c: &conf::Config, scope: usize) -> c_int {
    for (index, m) in c
        .matches
        .iter()
        .enumerate()
        .filter(|(_, m)| m.server == scope)
    {
        let mut groups = [ffi::ap_regmatch_t {
            rm_so: -1,
            rm_eo: -1,
        }; 10];
        // SAFETY: r->uri is a C string; groups has room for 10 matches; the
        // substitution is allocated in the request pool.
        unsafe {
            if ffi::ap_regexec(m.regex.0, (*r).uri, groups.len(), groups.as_mut_ptr(), 0) != 0 {
                continue;
            }
            let script = ffi::ap_pregsub(
                (*r).pool,
                m.replacement.as_ptr(),
                (*r).uri,
                groups.len(),
                groups.as_mut_ptr(),
            );
            if script.is_null() {
                continue;
            }
            let end = groups[0].rm_eo.max(0) as usize;
            let mount = ffi::apr_pstrmemdup((*r).pool, (*r).uri, end);
            ffi::apr_table_setn((*r).notes, c"oxwsgi-mount".as_ptr(), mount);
            let value = CString::new(index.to_string()).expect("digits");
            ffi::apr_table_setn(
                (*r).notes,
                c"oxwsgi-match".as_ptr(),
                ffi::apr_pstrdup((*r).pool, value.as_ptr()),
            );
            (*r).filename = script;
            (*r).handler = HANDLER_NAME.as_ptr();
        }
        return ffi::OK as c_int;
    }
    ffi::DECLINED as c_int
}

/// An app made on first use: a script reached without a WSGIScriptAlias
/// (SetHandler wsgi-script, WSGIScriptAliasMatch), or an alias whose
/// directory names another WSGICallableObject.
struct ScriptApp {
    script: String,
    mount: String,
    callable: Option<String>,
    group: String,
    app: std::sync::Arc<oxwsgi_core::App>,
}

static SCRIPT_APPS: std::sync::Mutex<Vec<ScriptApp>> = std::sync::Mutex::new(Vec::new());

/// The apps of this child whose last load failed (readiness).
pub fn failed_apps(c: &conf::Config) -> Vec<String> {
    let aliases = c.aliases.iter().filter_map(|a| a.app.clone());
    let made = SCRIPT_APPS
        .lock()
        .recover()
        .iter()
        .map(|a| a.app.clone())
        .collect::<Vec<_>>();
    aliases
        .chain(made)
        .filter(|a| a.load_failed())
        .map(|a| a.name().to_string())
        .collect()
}

fn script_app(
    c: &conf::Config,
    script: &str,
    mount: &str,
    callable: Option<&str>,
    group: &str,
) -> Option<std::sync::Arc<oxwsgi_core::App>> {
    let mut apps = SCRIPT_APPS.lock().recover();
    if let Some(known) = apps.iter().find(|a| {
        a.script == script
            && a.mount == mount
            && a.callable.as_deref() == callable
            && a.group == group
    }) {
        return Some(known.app.clone());
    }
    let app = match c.defaults.as_ref()?.app(script, mount, callable, group) {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            log::error!(target: "oxwsgi", "{script}: {e}");
            return None;
        }
    };
    apps.push(ScriptApp {
        script: script.to_string(),
        mount: mount.to_string(),
        callable: callable.map(str::to_string),
        group: group.to_string(),
        app: app.clone(),
    });
    Some(app)
}

/// A WSGIImportScript's script as an app to preload: loaded for what its
/// import does (it needs no callable).
pub fn import_app(
    c: &conf::Config,
    import: &conf::Import,
) -> Option<std::sync::Arc<oxwsgi_core::App>> {
    let script = &import.script;
    let group = &import.application_group;
    let mut options = match c.defaults.as_ref()?.app(script, "", None, group) {
        Ok(a) => a.options().clone(),
        Err(e) => {
            log::error!(target: "oxwsgi", "{script}: {e}");
            return None;
        }
    };
    options.import_only = true;
    Some(std::sync::Arc::new(oxwsgi_core::App::new(options)))
}

/// How a request reaches its app: the options of its alias or handler
/// script, and what a dispatch script chose over them.
#[derive(Default)]
pub struct Route<'c> {
    /// The alias's (or alias match's) options, or the handler script's.
    pub inline: Option<&'c conf::Inline>,
    /// The WSGIHandlerScript serving the request (`None`: a WSGI script).
    pub handler: Option<&'c conf::HandlerScript>,
    /// The WSGIDispatchScript's answers.
    pub dispatched: oxwsgi_core::auth_script::Dispatch,
}

/// The callable handler scripts are called by (mod_wsgi's).
const HANDLER_CALLABLE: &str = "handle_request";

/// The app of a request: its WSGIScriptAlias, the handler script serving
/// it, or the script Apache mapped the URL to (SCRIPT_NAME is the URL up
/// to the script).
///
/// # Safety
/// `r` is the live request of the handler.
pub unsafe fn app_of(
    r: *mut request_rec,
    c: &conf::Config,
    route: &Route<'_>,
) -> Option<std::sync::Arc<oxwsgi_core::App>> {
    // SAFETY: r is the live request of the handler (app_of's contract);
    // notes, filename, uri and path_info
    // are C strings (or null).
    unsafe {
        let inline = route.inline;
        // A dispatch script's choice, then a handler script's callable, then
        // an alias's own callable-object=, then the directory's.
        let callable = match (&route.dispatched.callable_object, route.handler) {
            (Some(chosen), _) => Some(chosen.as_str()),
            (None, Some(_)) => Some(HANDLER_CALLABLE),
            (None, None) => match inline.and_then(|i| i.callable.as_deref()) {
                Some(own) => Some(own),
                None => conf::callable_of(r),
            },
        };
        let raw_group = match &route.dispatched.application_group {
            Some(chosen) => Some(chosen.as_str()),
            None => conf::configured_application_group(r, inline),
        };
        if let Some(index) = note_index(r, c"oxwsgi-alias").filter(|_| route.handler.is_none()) {
            let alias = c.aliases.get(index)?;
            let app = alias.app.clone()?;
            let own = app.options();
            let group =
                conf::application_group_of(r, raw_group, own.mount.as_str(), c.case_insensitive);
            return if callable.is_some_and(|name| name != own.spec.callable)
                || group != own.application_group
            {
                script_app(c, &alias.script, &alias.prefix, callable, &group)
            } else {
                Some(app)
            };
        }
        let script = match route.handler {
            Some(h) => h.script.as_str(),
            None => CStr::from_ptr((*r).filename.cast_const().as_ref()?)
                .to_str()
                .ok()?,
        };
        let note = ffi::apr_table_get((*r).notes, c"oxwsgi-mount".as_ptr());
        let mount = if !note.is_null() && route.handler.is_none() {
            String::from_utf8_lossy(cstr_bytes(note)).into_owned()
        } else {
            let uri = cstr_bytes((*r).uri);
            let extra = cstr_bytes((*r).path_info);
            String::from_utf8_lossy(&uri[..uri.len() - extra.len().min(uri.len())]).into_owned()
        };
        let group = conf::application_group_of(r, raw_group, &mount, c.case_insensitive);
        script_app(c, script, &mount, callable, &group)
    }
}

/// A number translate_name left in the request's notes.
///
/// # Safety
/// `r` is a live request.
unsafe fn note_index(r: *mut request_rec, key: &CStr) -> Option<usize> {
    // SAFETY: r is live (the contract); the note is a C string or null.
    unsafe {
        let note = ffi::apr_table_get((*r).notes, key.as_ptr());
        if note.is_null() {
            return None;
        }
        CStr::from_ptr(note).to_str().ok()?.parse().ok()
    }
}

/// The inline options of the alias (or alias match) serving `r`.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn inline_of(r: *mut request_rec, c: &conf::Config) -> Option<&conf::Inline> {
    // SAFETY: r is live (the contract).
    unsafe {
        if let Some(i) = note_index(r, c"oxwsgi-alias") {
            return c.aliases.get(i).map(|a| &a.inline);
        }
        note_index(r, c"oxwsgi-match").and_then(|i| c.matches.get(i).map(|m| &m.inline))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    fn config() -> conf::Config {
        let mut c = conf::Config::default();
        c.defaults = Some(conf::AppDefaults::default());
        c
    }

    /// The script cache: an app made on first use is made once per
    /// script, mount, callable and application group, and found again by
    /// them; any of them differing is another app.
    #[test]
    fn a_script_app_is_made_once_per_script_mount_callable_and_group() {
        let c = config();
        let first = script_app(&c, "/srv/cache/a.wsgi", "/a", None, "").unwrap();
        let again = script_app(&c, "/srv/cache/a.wsgi", "/a", None, "").unwrap();
        assert!(Arc::ptr_eq(&first, &again), "found again");
        assert_eq!(first.options().mount, "/a");
        assert_eq!(first.options().spec.callable, "application");
        let others = [
            ("/srv/cache/b.wsgi", "/a", None, ""),
            ("/srv/cache/a.wsgi", "/b", None, ""),
            ("/srv/cache/a.wsgi", "/a", Some("app"), ""),
            ("/srv/cache/a.wsgi", "/a", None, "site"),
        ];
        for (script, mount, callable, group) in others {
            let other = script_app(&c, script, mount, callable, group).unwrap();
            assert!(
                !Arc::ptr_eq(&first, &other),
                "{script} {mount} {callable:?} {group:?}"
            );
            assert_eq!(other.options().application_group, group);
        }
        // A callable that is no identifier is refused, and nothing is kept.
        assert!(script_app(&c, "/srv/cache/a.wsgi", "/a", Some("not one"), "").is_none());
        // Without the server's defaults (no configuration read) there is
        // nothing to make an app with.
        let bare = conf::Config::default();
        assert!(script_app(&bare, "/srv/cache/c.wsgi", "/", None, "").is_none());
    }

    /// WSGIImportScript: the script is loaded for what its import does,
    /// in its application group, with no callable to find.
    #[test]
    fn an_import_script_is_loaded_only_for_its_import() {
        let c = config();
        let import = conf::Import {
            script: "/srv/cache/startup.py".into(),
            group: None,
            application_group: "site".into(),
            after_aliases: 0,
            server: 0,
        };
        let app = import_app(&c, &import).unwrap();
        assert!(app.options().import_only);
        assert_eq!(app.options().application_group, "site");
    }
}

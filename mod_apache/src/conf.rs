//! The mod_wsgi directives and the configuration they build. Apache parses
//! its configuration in the parent (twice at start); children inherit the
//! result, frozen.

use oxwsgi_core::guard;
use std::ffi::{CStr, CString, c_char, c_void};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use oxwsgi_core::sync::Recover;
use oxwsgi_core::{App, AppOptions, AppSpec, conf as values};

use crate::ffi::{self, cmd_parms};

#[derive(Clone)]
pub struct Alias {
    /// The server (virtual host) it was configured in, or 0 for the main
    /// server, whose aliases every virtual host without its own inherits.
    pub server: usize,
    /// The URL path, without a trailing slash ("" for "/").
    pub prefix: String,
    pub script: String,
    pub inline: Inline,
    /// Built once the whole configuration is read (`build_apps`).
    pub app: Option<Arc<App>>,
}

/// A WSGIImportScript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub script: String,
    /// The process group whose daemons load it (`None`: Apache's children).
    pub group: Option<String>,
    /// The application group it is loaded into (`""`: the main
    /// interpreter).
    pub application_group: String,
    /// How many WSGIScriptAliases came before it in the configuration: a
    /// group preloads imports and aliases in the order they were written,
    /// as mod_wsgi.
    pub after_aliases: usize,
    /// The server it was configured in (`server_key`).
    pub server: usize,
}

/// A compiled WSGIScriptAliasMatch.
#[derive(Clone)]
pub struct AliasMatch {
    pub server: usize,
    pub regex: Regex,
    pub replacement: CString,
    pub inline: Inline,
}

/// The options mod_wsgi takes after a WSGIScriptAlias's script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inline {
    /// `process-group=`: over the WSGIProcessGroup in force.
    pub process_group: Option<String>,
    /// `application-group=`: with `process-group=`, the script is loaded
    /// when the group's daemons start (as mod_wsgi).
    pub application_group: Option<String>,
    /// `callable-object=`.
    pub callable: Option<String>,
    /// `pass-authorization=`: over WSGIPassAuthorization for this script.
    pub pass_authorization: Option<bool>,
}

impl Inline {
    fn parse(words: &[String]) -> Result<Inline, String> {
        let mut o = Inline::default();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("{w:?} is not an option=value"))?;
            if v.is_empty() {
                return Err(format!("{k}= needs a value"));
            }
            match k {
                "process-group" => o.process_group = Some(check_group(v)?),
                "application-group" => o.application_group = Some(v.to_string()),
                "callable-object" => o.callable = Some(values::parse_callable(v)?),
                "pass-authorization" => {
                    o.pass_authorization =
                        Some(values::parse_flag(v).map_err(|e| format!("{k}={v}: {e}"))?);
                }
                _ => return Err(format!("unknown option {k}")),
            }
        }
        Ok(o)
    }

    /// The group the script runs in: `Some(None)` embedded (`%{GLOBAL}`),
    /// `None` when the alias does not say. A `%{ENV:VAR}` comes back as
    /// it is (`resolve_group` reads it for a request).
    pub fn group(&self) -> Option<Option<&str>> {
        self.process_group
            .as_deref()
            .map(|g| (g != "%{GLOBAL}").then_some(g))
    }
}

/// A WSGIProcessGroup name: a group, `%{GLOBAL}` (embedded) or
/// `%{ENV:VAR}` (the group the request's environment variable names).
fn check_group(name: &str) -> Result<String, String> {
    let env_ok = env_var(name).is_some_and(|v| !v.is_empty());
    if name.is_empty() || (name.starts_with("%{") && name != "%{GLOBAL}" && !env_ok) {
        return Err(format!(
            "{name:?}: a group name, %{{GLOBAL}} or %{{ENV:VARIABLE}} (other %{{...}} forms are not supported by oxwsgi yet)"
        ));
    }
    Ok(name.to_string())
}

/// `VAR` of `%{ENV:VAR}`.
fn env_var(name: &str) -> Option<&str> {
    name.strip_prefix("%{ENV:")?.strip_suffix('}')
}

/// The group a WSGIProcessGroup value names for request `r`: `None` for
/// embedded (`%{GLOBAL}`, or `%{ENV:VAR}` with VAR unset or empty).
///
/// # Safety
/// `r` is a live request, and the result is used only while it lives (a
/// `%{ENV:VAR}` value is in the request's pool).
pub unsafe fn resolve_group(r: *const ffi::request_rec, name: &str) -> Option<&str> {
    if name == "%{GLOBAL}" {
        return None;
    }
    let Some(var) = env_var(name) else {
        return Some(name);
    };
    let var = CString::new(var).ok()?;
    // SAFETY: r is live (the contract); its subprocess_env table and the
    // value (a C string in the request pool) outlive the returned slice.
    unsafe {
        let v = ffi::apr_table_get((*r).subprocess_env, var.as_ptr());
        if v.is_null() {
            return None;
        }
        CStr::from_ptr(v)
            .to_str()
            .ok()
            .filter(|g| !g.is_empty() && *g != "%{GLOBAL}")
    }
}

/// An Apache regex, compiled in the configuration pool.
#[derive(Clone, Copy)]
pub struct Regex(pub *mut ffi::ap_regex_t);

// SAFETY: compiled once while the configuration is read and only matched
// afterwards; ap_regexec does not modify the compiled pattern.
unsafe impl Send for Regex {}
// SAFETY: after configuration the pattern is only read (ap_regexec takes
// it as const), so shared use from request threads is sound.
unsafe impl Sync for Regex {}

/// What a request is served by, when it is not a WSGIScriptAlias.
#[derive(Clone, Default)]
pub struct AppDefaults {
    callable: Option<String>,
    reloading: bool,
    request_timeout: Option<std::time::Duration>,
    multithread: bool,
    multiprocess: bool,
}

impl AppDefaults {
    /// An app for `script`, mounted at `mount`, calling `callable` (or the
    /// server's WSGICallableObject), in application group `group` (`""`:
    /// the main interpreter).
    pub fn app(
        &self,
        script: &str,
        mount: &str,
        callable: Option<&str>,
        group: &str,
    ) -> Result<App, String> {
        let spec = AppSpec::parse(script, callable.or(self.callable.as_deref()))?;
        let mut options = AppOptions::new(spec);
        options.mount = mount.to_string();
        options.application_group = group.to_string();
        options.multithread = self.multithread;
        options.multiprocess = self.multiprocess;
        options.reload_on_change = self.reloading;
        options.request_timeout = self.request_timeout;
        Ok(App::new(options))
    }
}

#[derive(Clone)]
pub struct Config {
    pub aliases: Vec<Alias>,
    pub matches: Vec<AliasMatch>,
    /// WSGIImportScript: scripts loaded when a child (group `None`) or a
    /// group's daemon starts.
    pub imports: Vec<Import>,
    pub defaults: Option<AppDefaults>,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    /// WSGICallableObject at server level, by server key (see `server_key`):
    /// the aliases of a server are built with it, so they can be preloaded.
    callables: Vec<(usize, String)>,
    /// WSGIScriptReloading (default On).
    script_reloading: bool,
    /// WSGIPythonOptimize, WSGIDontWriteBytecode, WSGIPythonHashSeed,
    /// WSGIPythonWarnings: every Python of the server (children, daemons).
    pub python: oxwsgi_core::python::interpreter::PythonSettings,
    /// WSGIRequestTimeout (default off).
    pub request_timeout: Option<std::time::Duration>,
    /// WSGIDrainTime (default off): readiness 503 this long before a
    /// graceful stop.
    pub drain_time: Option<std::time::Duration>,
    /// WSGIDaemonProcess, in order.
    pub daemons: Vec<(String, oxwsgi_core::daemon::options::GroupOptions)>,
    /// The server each group was defined in (`server_key`): a group of a
    /// virtual host serves only that host (and hosts of its name).
    pub daemon_servers: Vec<(String, usize)>,
    /// WSGISocketPrefix.
    pub socket_prefix: Option<String>,
    /// WSGIRestrictEmbedded.
    pub restrict_embedded: bool,
    /// WSGICaseSensitivity Off: `%{RESOURCE}` names use the script's mount
    /// in lower case (one group for `/App` and `/app`), as mod_wsgi.
    pub case_insensitive: bool,
    /// Where each group listens (set by the parent before its children
    /// fork, so they know).
    pub sockets: Vec<(String, std::path::PathBuf)>,
    /// WSGIHandlerScript, in order (directories name them by index).
    pub handler_scripts: Vec<HandlerScript>,
}

/// WSGIHandlerScript NAME SCRIPT [options]: requests Apache gives the
/// handler NAME (`AddHandler NAME .ext`, `SetHandler NAME`) are served by
/// SCRIPT's `handle_request`, with SCRIPT_FILENAME the file asked for.
#[derive(Clone, Debug)]
pub struct HandlerScript {
    pub name: String,
    pub script: String,
    /// `process-group=`, `application-group=`, `pass-authorization=`.
    pub inline: Inline,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            aliases: Vec::new(),
            matches: Vec::new(),
            imports: Vec::new(),
            defaults: None,
            python_home: None,
            python_path: Vec::new(),
            callables: Vec::new(),
            script_reloading: true,
            python: Default::default(),
            request_timeout: None,
            drain_time: None,
            daemons: Vec::new(),
            daemon_servers: Vec::new(),
            socket_prefix: None,
            restrict_embedded: false,
            case_insensitive: false,
            sockets: Vec::new(),
            handler_scripts: Vec::new(),
        }
    }
}

impl Config {
    /// What needs the whole configuration: every group an alias names is
    /// defined.
    ///
    /// # Safety
    /// `main` is the main server of the configuration (or null).
    pub unsafe fn check(&self, main: *const ffi::server_rec) -> Result<(), String> {
        let named = self
            .aliases
            .iter()
            .map(|a| (a.prefix.as_str(), &a.inline))
            .chain(self.matches.iter().map(|m| ("(match)", &m.inline)));
        for (prefix, inline) in named {
            if let Some(Some(g)) = inline.group() {
                if env_var(g).is_none() && !self.daemons.iter().any(|(n, _)| n == g) {
                    return Err(format!(
                        "WSGIScriptAlias {}: process-group={g}: no WSGIDaemonProcess of that name",
                        if prefix.is_empty() { "/" } else { prefix }
                    ));
                }
            }
        }
        for i in &self.imports {
            let Some(g) = &i.group else { continue };
            // SAFETY: as for the aliases below.
            if !unsafe { self.group_serves(g, i.server, main) } {
                return Err(format!(
                    "WSGIImportScript {}: process-group={g}: WSGI process group not accessible.",
                    i.script
                ));
            }
        }
        for a in &self.aliases {
            let Some(Some(g)) = a.inline.group() else {
                continue;
            };
            // SAFETY: the keys are the live server_recs of the configuration
            // being checked (or 0), and `main` is its main server.
            if env_var(g).is_none() && !unsafe { self.group_serves(g, a.server, main) } {
                return Err(format!(
                    "WSGIScriptAlias {}: process-group={g}: WSGI process group not accessible \
                     (it is defined in another virtual host)",
                    if a.prefix.is_empty() { "/" } else { &a.prefix }
                ));
            }
        }
        Ok(())
    }

    /// Whether group `group` may serve requests of server `server` (a
    /// `server_key`), as mod_wsgi decides: a group defined at the top
    /// level serves every host; one defined in a virtual host serves that
    /// host, and hosts of the same ServerName (its other ports). `main`:
    /// the main server, whose key is 0.
    ///
    /// # Safety
    /// `server` and the groups' keys are 0 or live server_recs of this
    /// configuration; `main` is its main server.
    pub unsafe fn group_serves(
        &self,
        group: &str,
        server: usize,
        main: *const ffi::server_rec,
    ) -> bool {
        let Some(&(_, home)) = self.daemon_servers.iter().find(|(n, _)| n == group) else {
            return true;
        };
        let host = |key: usize| {
            let s = if key == 0 {
                main
            } else {
                key as *const ffi::server_rec
            };
            // SAFETY: a live server_rec (the contract); its hostname is a C
            // string of the configuration, or null.
            unsafe {
                (!s.is_null() && !(*s).server_hostname.is_null())
                    .then(|| CStr::from_ptr((*s).server_hostname).to_bytes().to_vec())
            }
        };
        reachable(home, server, || (host(home), host(server)))
    }

    /// The script files the configuration names for process group `name`
    /// (aliases and handler scripts with `process-group=NAME`, its import
    /// scripts): what its daemons must be able to read.
    pub fn scripts_of_group(&self, name: &str) -> Vec<&std::path::Path> {
        let aliases = self
            .aliases
            .iter()
            .filter(|a| a.inline.group() == Some(Some(name)))
            .map(|a| a.script.as_str());
        let handlers = self
            .handler_scripts
            .iter()
            .filter(|h| h.inline.group() == Some(Some(name)))
            .map(|h| h.script.as_str());
        let imports = self
            .imports
            .iter()
            .filter(|i| i.group.as_deref() == Some(name))
            .map(|i| i.script.as_str());
        aliases
            .chain(handlers)
            .chain(imports)
            .filter(|s| s.starts_with('/'))
            .map(std::path::Path::new)
            .collect()
    }

    /// A warning when WSGISocketPrefix puts the groups' sockets where users
    /// other than the server's may write.
    pub fn socket_place_warning(&self) -> Option<String> {
        let prefix = self
            .socket_prefix
            .as_ref()
            .filter(|_| !self.daemons.is_empty())?;
        let dir = std::path::Path::new(prefix).parent()?;
        let w = oxwsgi_core::daemon::server::listen::others_may_write(dir)?;
        Some(format!("WSGISocketPrefix {prefix}: {w}"))
    }

    /// The server-level WSGICallableObject of `server`, else the main
    /// server's (a virtual host's directory defaults inherit it).
    fn callable_of(&self, server: usize) -> Option<&str> {
        let of = |key| self.callables.iter().find(|(s, _)| *s == key);
        of(server).or_else(|| of(0)).map(|(_, name)| name.as_str())
    }

    /// The server whose aliases apply to requests of `server`: its own when
    /// it has any, else the main server's (0), as with mod_wsgi.
    pub fn scope(&self, server: usize) -> usize {
        let own = self.aliases.iter().any(|a| a.server == server)
            || self.matches.iter().any(|m| m.server == server);
        if own { server } else { 0 }
    }

    /// The alias serving `uri` in `scope`: the longest prefix that ends at a
    /// path segment boundary.
    pub fn alias_for(&self, scope: usize, uri: &[u8]) -> Option<usize> {
        self.aliases
            .iter()
            .enumerate()
            .filter(|(_, a)| a.server == scope)
            .filter(|(_, a)| {
                let p = a.prefix.as_bytes();
                uri.starts_with(p) && (uri.len() == p.len() || uri[p.len()] == b'/' || p.is_empty())
            })
            .max_by_key(|(_, a)| a.prefix.len())
            .map(|(i, _)| i)
    }
}

static CONFIG: RwLock<Option<Arc<Config>>> = RwLock::new(None);

/// Builds every alias's app from the complete configuration (post_config,
/// in the parent: no Python yet). `multithread`/`multiprocess` describe the MPM.
pub fn build_apps(multithread: bool, multiprocess: bool) -> Result<(), String> {
    update(|c| {
        let defaults = AppDefaults {
            callable: c.callable_of(0).map(str::to_string),
            reloading: c.script_reloading,
            request_timeout: c.request_timeout,
            multithread,
            multiprocess,
        };
        let names: Vec<Option<String>> = c
            .aliases
            .iter()
            .map(|a| {
                a.inline
                    .callable
                    .clone()
                    .or_else(|| c.callable_of(a.server).map(str::to_string))
            })
            .collect();

        for (a, name) in c.aliases.iter_mut().zip(names) {
            // An alias's app is made ahead for the group its options name
            // when that does not depend on the request (a literal, or
            // %{GLOBAL}); others are made on first use (`app_of`).
            let group = a
                .inline
                .application_group
                .as_deref()
                .and_then(fixed_application_group)
                .unwrap_or_default();
            a.app = Some(Arc::new(defaults.app(
                &a.script,
                &a.prefix,
                name.as_deref(),
                &group,
            )?));
        }
        c.defaults = Some(defaults);
        Ok(())
    })
}

/// Where the process groups listen (the parent, before children fork).
pub fn set_sockets(sockets: Vec<(String, std::path::PathBuf)>) {
    let _ = update(|c| {
        c.sockets = sockets;
        Ok(())
    });
}

pub fn reset() {
    *CONFIG.write().recover() = Some(Arc::new(Config::default()));
}

pub fn get() -> Arc<Config> {
    CONFIG.read().recover().clone().unwrap_or_default()
}

/// Applies `f` to a copy of the configuration (parsing is rare; reads are
/// per request and lock-free after a clone of the Arc).
fn update(f: impl FnOnce(&mut Config) -> Result<(), String>) -> Result<(), String> {
    let mut slot = CONFIG.write().recover();
    let current = slot.take().unwrap_or_default();
    let mut next = Arc::unwrap_or_clone(current);
    let r = f(&mut next);
    *slot = Some(Arc::new(next));
    r
}

/// mod_wsgi's rule for a group defined in server `home` (a `server_key`)
/// and a request (or alias) of server `server`: `names` gives both
/// servers' ServerNames, looked at only when the two differ.
fn reachable(
    home: usize,
    server: usize,
    names: impl FnOnce() -> (Option<Vec<u8>>, Option<Vec<u8>>),
) -> bool {
    if home == 0 || home == server {
        return true;
    }
    let (a, b) = names();
    a.is_some() && a == b
}

/// The configuration key of a server: 0 for the main server, else the
/// virtual host's server_rec address (stable for the configuration's life).
/// Directives are filed under it and requests look their aliases up by it.
///
/// # Safety
/// `s` is null or a live server_rec.
pub unsafe fn server_key(s: *const ffi::server_rec) -> usize {
    // SAFETY: s is a live server_rec (server_key's contract; null is
    // checked first).
    if s.is_null() || unsafe { (*s).is_virtual } == 0 {
        0
    } else {
        s as usize
    }
}

/// Defines the `extern "C"` handler (the symbol shim.c's table names) of a
/// one-argument directive: `$body` gets the value as `$v` (a UTF-8
/// `String`), through `take1` (errors name the directive, panics stop
/// there); `$cmd`, `$dir` and `$raw` are Apache's arguments.
macro_rules! directive1 {
    ($(#[$attr:meta])* $name:ident($cmd:ident, $dir:ident, $raw:ident, $v:ident) $body:block) => {
        $(#[$attr])*
        #[cfg_attr(not(test), unsafe(no_mangle))]
        pub unsafe extern "C" fn $name(
            $cmd: *mut cmd_parms,
            $dir: *mut c_void,
            $raw: *const c_char,
        ) -> *const c_char {
            let _ = $dir;
            // SAFETY: these are what Apache passed to this directive's
            // handler: a live cmd_parms, our directory configuration for the
            // context being parsed (made by create_dir_config), and the
            // argument as a C string.
            unsafe { take1($cmd, $raw, |$v| $body) }
        }
    };
}

/// What a directive handler returns after a panic; Apache prints it as the
/// configuration error (the panic's message goes to stderr).
const DIRECTIVE_PANICKED: *const c_char = c"internal error (panic) in oxwsgi".as_ptr();

/// Runs a one-argument directive: `f` gets the argument as a string; its
/// error becomes Apache's configuration error, naming the directive.
///
/// # Safety
/// `cmd` and `v` are what Apache passed to the directive's handler.
unsafe fn take1(
    cmd: *mut cmd_parms,
    v: *const c_char,
    f: impl FnOnce(String) -> Result<(), String>,
) -> *const c_char {
    guard::entry("a directive", DIRECTIVE_PANICKED, || {
        // SAFETY: v is the directive's argument, a C string Apache passed.
        let r = unsafe { arg(v) }.and_then(f);
        // SAFETY: cmd is the live cmd_parms Apache passed with it.
        unsafe { answer(cmd, r) }
    })
}

/// Turns a result into what a directive handler returns: NULL, or an error
/// message in the configuration pool naming the directive.
///
/// # Safety
/// `cmd` is the live cmd_parms of the directive being parsed.
unsafe fn answer(cmd: *mut cmd_parms, r: Result<(), String>) -> *const c_char {
    match r {
        Ok(()) => std::ptr::null(),
        Err(e) => {
            // SAFETY: cmd is the live cmd_parms of this directive; its command
            // record's name is a static C string.
            let name = unsafe { CStr::from_ptr((*(*cmd).cmd).name) }.to_string_lossy();
            let msg = CString::new(format!("{name}: {e}").replace('\0', " ")).expect("no NUL");
            // SAFETY: copying into the live configuration pool.
            unsafe { ffi::apr_pstrdup((*cmd).pool, msg.as_ptr()) }
        }
    }
}

/// # Safety
/// `p` is a NUL-terminated string from Apache.
unsafe fn arg(p: *const c_char) -> Result<String, String> {
    // SAFETY: p is a NUL-terminated string from Apache (arg's contract),
    // alive for this call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(str::to_string)
        .map_err(|_| "the value is not valid UTF-8".into())
}

directive1!(
    /// WSGIScriptAlias URL SCRIPT [process-group=G] [application-group=A]
    /// [callable-object=C].
    oxwsgi_cmd_script_alias(cmd, _dir, raw, line) {
        guard::failpoint("WSGIScriptAlias");
        let words = values::split_words(&line)?;
        let [url, script, options @ ..] = words.as_slice() else {
            return Err("a URL path and a WSGI script are needed".into());
        };
        if !url.starts_with('/') {
            return Err(format!("URL path \"{url}\" must start with \"/\""));
        }
        let inline = Inline::parse(options)?;
        AppSpec::parse(script, inline.callable.as_deref())?;
        let server = server_key((*cmd).server);
        update(|c| {
            c.aliases.push(Alias {
                server,
                prefix: oxwsgi_core::request::environ::normalize_mount(url),
                script: script.clone(),
                inline,
                app: None,
            });
            Ok(())
        })
    }
);

directive1!(
    oxwsgi_cmd_python_home(cmd, _dir, raw, v) {
        let dir = values::parse_python_home(&v)?;
        update(|c| {
            c.python_home = Some(dir);
            Ok(())
        })
    }
);

directive1!(
    /// WSGIAuthUserScript, WSGIAuthGroupScript, WSGIAccessScript SCRIPT
    /// [application-group=]: the script Apache's `wsgi` providers (or its
    /// access check) ask, for this directory.
    oxwsgi_cmd_auth_script(cmd, dir, raw, line) {
        let (script, group) = script_and_group(&line, "auth script")?;
        let copy = pool_string(cmd, Some(&script))?;
        let group = pool_string(cmd, group.as_deref())?;
        let name = CStr::from_ptr((*(*cmd).cmd).name).to_bytes();
        let conf = &mut *dir.cast::<DirConf>();
        match name {
            b"WSGIAuthGroupScript" => (conf.auth_group_script, conf.auth_group_group) = (copy, group),
            b"WSGIAccessScript" => (conf.access_script, conf.access_group) = (copy, group),
            _ => (conf.auth_user_script, conf.auth_user_group) = (copy, group),
        }
        Ok(())
    }
);

/// An auth or dispatch script's line: its absolute path, and its
/// `application-group=`, the only option mod_wsgi takes there.
fn script_and_group(line: &str, what: &str) -> Result<(String, Option<String>), String> {
    let words = values::split_words(line)?;
    let (script, options) = words
        .split_first()
        .ok_or_else(|| format!("Location of WSGI {what} not supplied."))?;
    if !script.starts_with('/') {
        return Err(format!("{script}: the {what}'s absolute path is needed"));
    }
    let mut group = None;
    for o in options {
        match o.split_once('=') {
            Some(("application-group", v)) if !v.is_empty() => group = Some(v.to_string()),
            Some(("application-group", _)) => {
                return Err("Invalid name for WSGI application group.".into());
            }
            _ => return Err(format!("Invalid option to WSGI {what} definition.")),
        }
    }
    Ok((script.clone(), group))
}

/// `text` copied into the configuration pool (null for `None`).
///
/// # Safety
/// `cmd` is the live cmd_parms of the directive being read.
unsafe fn pool_string(cmd: *mut cmd_parms, text: Option<&str>) -> Result<*const c_char, String> {
    let Some(text) = text else {
        return Ok(std::ptr::null());
    };
    let c = CString::new(text).map_err(|_| "a NUL in the value")?;
    // SAFETY: copying into the live configuration pool (the contract).
    Ok(unsafe { ffi::apr_pstrdup((*cmd).pool, c.as_ptr()) })
}

directive1!(
    /// WSGIDispatchScript SCRIPT [application-group=NAME]: a script whose
    /// `process_group(environ)`, `application_group(environ)` and
    /// `callable_object(environ)` choose, per request, where it runs.
    oxwsgi_cmd_dispatch_script(cmd, dir, raw, line) {
        let (script, group) = script_and_group(&line, "dispatch script")?;
        let conf = &mut *dir.cast::<DirConf>();
        conf.dispatch_script = pool_string(cmd, Some(&script))?;
        conf.dispatch_group = pool_string(cmd, group.as_deref())?;
        Ok(())
    }
);

directive1!(
    /// WSGIRestrictProcess GROUP...: the only process groups (`%{GLOBAL}`:
    /// Apache's children) that may serve here, whoever chooses them
    /// (WSGIProcessGroup, an alias, a dispatch script).
    oxwsgi_cmd_restrict_process(cmd, dir, raw, line) {
        let words = values::split_words(&line)?;
        (*dir.cast::<DirConf>()).restrict_process = pool_string(cmd, Some(&words.join(" ")))?;
        Ok(())
    }
);

directive1!(
    /// WSGIMapHEADToGET Off|On|Auto.
    oxwsgi_cmd_map_head_to_get(cmd, dir, raw, v) {
        (*dir.cast::<DirConf>()).map_head_to_get = match v.to_ascii_lowercase().as_str() {
            "off" => 0,
            "on" => 1,
            "auto" => 2,
            _ => return Err("WSGIMapHEADToGET must be one of: Off | On | Auto".into()),
        };
        Ok(())
    }
);

directive1!(
    /// WSGIHandlerScript NAME SCRIPT [process-group=G]
    /// [application-group=A] [pass-authorization=On|Off].
    oxwsgi_cmd_handler_script(cmd, dir, raw, line) {
        let words = values::split_words(&line)?;
        let [name, script, options @ ..] = words.as_slice() else {
            return Err("a handler name and a script path are needed".into());
        };
        if name == HANDLER_OF_SCRIPTS {
            return Err(format!("{name} is the handler of WSGI scripts themselves"));
        }
        AppSpec::parse(script, Some("handle_request"))?;
        let inline = Inline::parse(options)?;
        if inline.callable.is_some() {
            return Err("Invalid option to WSGI handler script definition.".into());
        }
        let index = {
            let mut at = 0;
            update(|c| {
                at = c.handler_scripts.len();
                c.handler_scripts.push(HandlerScript {
                    name: name.clone(),
                    script: script.clone(),
                    inline,
                });
                Ok(())
            })?;
            at
        };
        let conf = &mut *dir.cast::<DirConf>();
        let mut list = index.to_string();
        if let Some(old) = dir_text(conf.handler_scripts) {
            list = format!("{list} {old}");
        }
        conf.handler_scripts = pool_string(cmd, Some(&list))?;
        Ok(())
    }
);

/// The handler name of WSGI scripts (`SetHandler wsgi-script`).
pub const HANDLER_OF_SCRIPTS: &str = "wsgi-script";

/// A DirConf string, when set.
///
/// # Safety
/// `p` is null or a C string of the configuration pool.
unsafe fn dir_text<'a>(p: *const c_char) -> Option<&'a str> {
    // SAFETY: p is null or a live C string (the contract).
    (!p.is_null())
        .then(|| unsafe { CStr::from_ptr(p) }.to_str().ok())
        .flatten()
}

directive1!(
    /// The WSGIPython* interpreter settings and the WSGIRestrict* switches,
    /// told apart by name; at the top level only, as mod_wsgi takes them.
    oxwsgi_cmd_python_setting(cmd, _dir, raw, v) {
        let name = CStr::from_ptr((*(*cmd).cmd).name).to_string_lossy().into_owned();
        if (*(*cmd).server).is_virtual != 0 {
            return Err(format!("{name} cannot occur within <VirtualHost> section"));
        }
        update(|c| python_setting(&mut c.python, &name, &v))
    }
);

/// Applies one WSGIPython* setting, with mod_wsgi's messages.
fn python_setting(
    s: &mut oxwsgi_core::python::interpreter::PythonSettings,
    name: &str,
    v: &str,
) -> Result<(), String> {
    match name {
        "WSGIPythonOptimize" => {
            s.optimize = v
                .parse()
                .ok()
                .filter(|n| *n <= 2)
                .ok_or("WSGIPythonOptimize must be 0, 1 or 2")?;
        }
        "WSGIDontWriteBytecode" => {
            s.write_bytecode = match v.to_ascii_lowercase().as_str() {
                "off" => true,
                "on" => false,
                _ => return Err("WSGIDontWriteBytecode must be one of: Off | On".into()),
            };
        }
        "WSGIPythonHashSeed" => {
            s.hash_seed = match v {
                "random" => None,
                n => Some(n.parse().map_err(|_| {
                    "WSGIPythonHashSeed must be either 'random' or integer in range [0; 4294967295]"
                })?),
            };
        }
        "WSGIRestrictStdin" | "WSGIRestrictStdout" | "WSGIRestrictSignal" => {
            let on = match v.to_ascii_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(format!("{name} must be one of: Off | On")),
            };
            match name {
                "WSGIRestrictStdin" => s.restrict.stdin = on,
                "WSGIRestrictStdout" => s.restrict.stdout = on,
                _ => s.restrict.signal = on,
            }
        }
        "WSGISwitchInterval" => {
            s.switch_interval = Some(oxwsgi_core::daemon::options::parse_switch_interval(v)?);
        }
        _ => s.warnings.push(v.to_string()),
    }
    Ok(())
}

directive1!(
    /// mod_wsgi's directives that oxwsgi takes without a value to use
    /// (WSGIAcceptMutex: its daemons need no accept mutex) or refuses with
    /// the reason (WSGIPythonEggs, WSGINewRelic*), told apart by name.
    oxwsgi_cmd_other(cmd, _dir, raw, v) {
        let name = CStr::from_ptr((*(*cmd).cmd).name).to_string_lossy().into_owned();
        let _ = v;
        match name.as_str() {
            "WSGIAcceptMutex" => Ok(()),
            "WSGIPythonEggs" => Err(
                "oxwsgi does not set Python's egg cache: eggs are gone from Python 3's \
                 packaging; an old zipped egg that needs one gets PYTHON_EGG_CACHE from \
                 /etc/apache2/envvars"
                    .into(),
            ),
            "WSGIFreeThreading" if v.eq_ignore_ascii_case("off") => Ok(()),
            "WSGIFreeThreading" => Err(
                "refused: Debian's Python is built with the GIL (free-threading needs a \
                 python3.13t build, which oxwsgi does not target)"
                    .into(),
            ),
            "WSGIPerInterpreterGIL" if v.eq_ignore_ascii_case("off") => Ok(()),
            "WSGIPerInterpreterGIL" | "<WSGIInterpreterOptions" => Err(
                "refused: oxwsgi's application groups share the GIL, as mod_wsgi's do by \
                 default: every group uses objects the core keeps once per process, which an \
                 interpreter with a GIL of its own must not touch. For parallel projects, give \
                 each a process group (WSGIDaemonProcess)"
                    .into(),
            ),
            "WSGITelemetryService" | "WSGITelemetryOptions" | "WSGISlowRequests" => Err(
                "refused: mod_wsgi 6's telemetry ingester is not supported; oxwsgi reports on \
                 its status page (SetHandler wsgi-status) and as Prometheus metrics, and logs \
                 the stack of a request past its request-timeout"
                    .into(),
            ),
            _ => Err(oxwsgi_core::daemon::options::NEW_RELIC_REFUSED.into()),
        }
    }
);

directive1!(
    oxwsgi_cmd_python_path(cmd, _dir, raw, v) {
        let dirs = values::parse_path_list(&v)?;
        update(|c| {
            c.python_path.extend(dirs);
            Ok(())
        })
    }
);

directive1!(
    /// WSGICallableObject, anywhere mod_wsgi takes it (server, virtual host,
    /// <Directory>, <Location>, .htaccess with FileInfo): it goes to the
    /// directory configuration, and at server level also into the apps built
    /// at start for that server's aliases.
    oxwsgi_cmd_callable(cmd, dir, raw, name) {
        let name = values::parse_callable(&name)?;
        (*dir.cast::<DirConf>()).callable = ffi::apr_pstrdup((*cmd).pool, raw);
        if (*cmd).path.is_null() {
            let server = server_key((*cmd).server);
            update(|c| {
                c.callables.retain(|(s, _)| *s != server);
                c.callables.push((server, name));
                Ok(())
            })?;
        }
        Ok(())
    }
);

/// What can differ per directory: Apache merges it from the server's
/// defaults inwards to the request's <Directory>/<Location>.
#[repr(C)]
pub struct DirConf {
    /// WSGICallableObject, or null when not set at this level.
    callable: *const c_char,
    /// WSGIProcessGroup, or null when not set at this level.
    process_group: *const c_char,
    /// WSGIApplicationGroup, or null when not set at this level.
    application_group: *const c_char,
    /// WSGITrustedProxyHeaders (environ keys) and WSGITrustedProxies,
    /// space-separated, or null when not set at this level (the innermost
    /// level that sets one wins, as mod_wsgi).
    trusted_proxy_headers: *const c_char,
    trusted_proxies: *const c_char,
    /// WSGIPassAuthorization, WSGIChunkedRequest: -1 when not set at this
    /// level, else 0 or 1.
    pass_authorization: i8,
    chunked_request: i8,
    /// WSGIErrorOverride, WSGIIgnoreActivity: -1, 0 or 1.
    error_override: i8,
    ignore_activity: i8,
    /// WSGIAuthUserScript, WSGIAuthGroupScript, or null when not set here.
    auth_user_script: *const c_char,
    auth_group_script: *const c_char,
    /// WSGIAccessScript, or null.
    access_script: *const c_char,
    /// Their `application-group=` (null: the main interpreter).
    auth_user_group: *const c_char,
    auth_group_group: *const c_char,
    access_group: *const c_char,
    /// WSGIDispatchScript and its `application-group=`, or null.
    dispatch_script: *const c_char,
    dispatch_group: *const c_char,
    /// WSGIRestrictProcess: the process groups that may serve here,
    /// space-separated (`%{GLOBAL}` for Apache's children), or null.
    restrict_process: *const c_char,
    /// WSGIMapHEADToGET: -1 when not set at this level, 0 Off, 1 On, 2 Auto.
    map_head_to_get: i8,
    /// WSGIHandlerScript: indices into `Config::handler_scripts`, the
    /// innermost level's first, space-separated, or null.
    handler_scripts: *const c_char,
}

/// # Safety
/// Called by Apache with a live configuration pool.
pub unsafe extern "C" fn create_dir_config(p: *mut ffi::apr_pool_t, _: *mut c_char) -> *mut c_void {
    guard::entry("create_dir_config", std::ptr::null_mut(), || {
        // SAFETY: the pool outlives the configuration; the memory is written
        // whole before Apache sees it.
        unsafe {
            new_dir_conf(
                p,
                DirConf {
                    callable: std::ptr::null(),
                    process_group: std::ptr::null(),
                    application_group: std::ptr::null(),
                    trusted_proxy_headers: std::ptr::null(),
                    trusted_proxies: std::ptr::null(),
                    pass_authorization: -1,
                    chunked_request: -1,
                    error_override: -1,
                    ignore_activity: -1,
                    auth_user_script: std::ptr::null(),
                    auth_group_script: std::ptr::null(),
                    access_script: std::ptr::null(),
                    auth_user_group: std::ptr::null(),
                    auth_group_group: std::ptr::null(),
                    access_group: std::ptr::null(),
                    dispatch_script: std::ptr::null(),
                    dispatch_group: std::ptr::null(),
                    restrict_process: std::ptr::null(),
                    map_head_to_get: -1,
                    handler_scripts: std::ptr::null(),
                },
            )
        }
    })
}

/// # Safety
/// Called by Apache with two configurations made by `create_dir_config`.
pub unsafe extern "C" fn merge_dir_config(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    guard::entry("merge_dir_config", std::ptr::null_mut(), || {
        // SAFETY: both are DirConf (ours); the result lives in Apache's pool.
        unsafe {
            let (base, add) = (&*base.cast::<DirConf>(), &*add.cast::<DirConf>());
            let inner = |a: *const c_char, b: *const c_char| if a.is_null() { b } else { a };
            let flag = |a: i8, b: i8| if a < 0 { b } else { a };
            // A script's option: the inner level's when it names the script.
            let with_script = |script: *const c_char, own: *const c_char, outer: *const c_char| {
                if script.is_null() { outer } else { own }
            };
            new_dir_conf(
                p,
                DirConf {
                    callable: inner(add.callable, base.callable),
                    process_group: inner(add.process_group, base.process_group),
                    application_group: inner(add.application_group, base.application_group),
                    trusted_proxy_headers: inner(
                        add.trusted_proxy_headers,
                        base.trusted_proxy_headers,
                    ),
                    trusted_proxies: inner(add.trusted_proxies, base.trusted_proxies),
                    pass_authorization: flag(add.pass_authorization, base.pass_authorization),
                    chunked_request: flag(add.chunked_request, base.chunked_request),
                    error_override: flag(add.error_override, base.error_override),
                    ignore_activity: flag(add.ignore_activity, base.ignore_activity),
                    auth_user_script: inner(add.auth_user_script, base.auth_user_script),
                    auth_group_script: inner(add.auth_group_script, base.auth_group_script),
                    access_script: inner(add.access_script, base.access_script),
                    // A script and its group go together.
                    auth_user_group: with_script(
                        add.auth_user_script,
                        add.auth_user_group,
                        base.auth_user_group,
                    ),
                    auth_group_group: with_script(
                        add.auth_group_script,
                        add.auth_group_group,
                        base.auth_group_group,
                    ),
                    access_group: with_script(
                        add.access_script,
                        add.access_group,
                        base.access_group,
                    ),
                    dispatch_script: inner(add.dispatch_script, base.dispatch_script),
                    dispatch_group: with_script(
                        add.dispatch_script,
                        add.dispatch_group,
                        base.dispatch_group,
                    ),
                    restrict_process: inner(add.restrict_process, base.restrict_process),
                    map_head_to_get: flag(add.map_head_to_get, base.map_head_to_get),
                    // mod_wsgi overlays the names: the inner level's win.
                    handler_scripts: match (
                        add.handler_scripts.is_null(),
                        base.handler_scripts.is_null(),
                    ) {
                        (true, _) => base.handler_scripts,
                        (false, true) => add.handler_scripts,
                        (false, false) => ffi::apr_pstrcat(
                            p,
                            add.handler_scripts,
                            c" ".as_ptr(),
                            base.handler_scripts,
                            std::ptr::null::<c_char>(),
                        ),
                    },
                },
            )
        }
    })
}

/// # Safety
/// `p` is a live pool; the strings of `conf` are null or in a pool that
/// lives at least as long.
unsafe fn new_dir_conf(p: *mut ffi::apr_pool_t, conf: DirConf) -> *mut c_void {
    // SAFETY: p is a live pool (new_dir_conf's contract); apr_palloc returns memory aligned
    // for any type, written here before use.
    unsafe {
        let c = ffi::apr_palloc(p, std::mem::size_of::<DirConf>()).cast::<DirConf>();
        c.write(conf);
        c.cast()
    }
}

/// The request's merged DirConf.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
unsafe fn dir_conf<'r>(r: *const ffi::request_rec) -> Option<&'r DirConf> {
    // SAFETY: r is a live request of a server that loaded this module, so
    // the request's merged directory configuration holds our DirConf at our
    // module's index, in a pool that outlives the request.
    unsafe {
        ffi::oxwsgi_dir_config((*r).per_dir_config)
            .cast::<DirConf>()
            .as_ref()
    }
}

/// WSGIPassAuthorization in force for a request (mod_wsgi's default: Off).
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn pass_authorization(r: *const ffi::request_rec) -> bool {
    // SAFETY: dir_conf's contract is this function's.
    unsafe { dir_conf(r) }.is_some_and(|c| c.pass_authorization == 1)
}

/// The auth script of `kind` in force for a request, and the application
/// group it runs in there.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn auth_script<'r>(
    r: *const ffi::request_rec,
    kind: AuthScript,
) -> Option<(&'r str, String)> {
    // SAFETY: as dir_string's contract, which is this function's.
    unsafe {
        let (script, group) = match kind {
            AuthScript::User => (
                dir_string(r, |c| c.auth_user_script),
                dir_string(r, |c| c.auth_user_group),
            ),
            AuthScript::Group => (
                dir_string(r, |c| c.auth_group_script),
                dir_string(r, |c| c.auth_group_group),
            ),
            AuthScript::Access => (
                dir_string(r, |c| c.access_script),
                dir_string(r, |c| c.access_group),
            ),
        };
        Some((script?, script_group_of(r, group)))
    }
}

/// The WSGIDispatchScript in force for a request, and the application
/// group it runs in there.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn dispatch_script<'r>(r: *const ffi::request_rec) -> Option<(&'r str, String)> {
    // SAFETY: as dir_string's contract, which is this function's.
    unsafe {
        let script = dir_string(r, |c| c.dispatch_script)?;
        Some((
            script,
            script_group_of(r, dir_string(r, |c| c.dispatch_group)),
        ))
    }
}

/// Whether WSGIRestrictProcess lets process group `group` (`None`:
/// Apache's children) serve request `r`.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn process_allowed(r: *const ffi::request_rec, group: Option<&str>) -> bool {
    // SAFETY: as dir_string's contract, which is this function's.
    let Some(allowed) = (unsafe { dir_string(r, |c| c.restrict_process) }) else {
        return true;
    };
    let group = group.unwrap_or("%{GLOBAL}");
    allowed.split_whitespace().any(|g| g == group)
}

/// Whether request `r`'s app sees `GET` for its `HEAD` (WSGIMapHEADToGET:
/// On, or Auto when an output filter that may change the body is in the
/// way, as mod_wsgi decides it). Unset, it is Off: mod_wsgi documents Auto
/// as its default, but its server configuration starts zeroed, so without
/// the directive its apps see HEAD (Debian's 4.9.4 and 5.0.2, side by side
/// in the tests); apps moved from it keep seeing what they saw.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn head_as_get(r: *const ffi::request_rec) -> bool {
    // SAFETY: r is live (the contract); its output filter chain is
    // Apache's, its first filter's record static.
    unsafe {
        if (*r).header_only == 0 || (*r).method_number != ffi::M_GET as std::ffi::c_int {
            return false;
        }
        match dir_conf(r).map_or(0, |c| c.map_head_to_get) {
            1 => true,
            2 => {
                let first = (*r).output_filters;
                !first.is_null()
                    && !(*first).frec.is_null()
                    && (*(*first).frec).ftype < ffi::ap_filter_type_AP_FTYPE_PROTOCOL
            }
            _ => false,
        }
    }
}

/// The WSGIHandlerScript named `handler` in force for request `r`.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn handler_script<'c>(
    r: *const ffi::request_rec,
    c: &'c Config,
    handler: &str,
) -> Option<&'c HandlerScript> {
    // SAFETY: as dir_string's contract, which is this function's.
    let indices = unsafe { dir_string(r, |c| c.handler_scripts) }?;
    indices
        .split_whitespace()
        .filter_map(|i| c.handler_scripts.get(i.parse::<usize>().ok()?))
        .find(|h| h.name == handler)
}

/// Which of a directory's auth scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScript {
    User,
    Group,
    Access,
}

impl AuthScript {
    pub fn directive(self) -> &'static str {
        match self {
            AuthScript::User => "WSGIAuthUserScript",
            AuthScript::Group => "WSGIAuthGroupScript",
            AuthScript::Access => "WSGIAccessScript",
        }
    }
}

/// How a request to a daemon is relayed there: WSGIErrorOverride and
/// WSGIIgnoreActivity in force (both default Off).
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn relay(r: *const ffi::request_rec) -> oxwsgi_core::daemon::server::proxy::Relay {
    // SAFETY: dir_conf's contract is this function's.
    let c = unsafe { dir_conf(r) };
    oxwsgi_core::daemon::server::proxy::Relay {
        error_override: c.is_some_and(|c| c.error_override == 1),
        ignore_activity: c.is_some_and(|c| c.ignore_activity == 1),
    }
}

/// WSGIChunkedRequest in force for a request (default Off: 411).
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn chunked_request(r: *const ffi::request_rec) -> bool {
    // SAFETY: dir_conf's contract is this function's.
    unsafe { dir_conf(r) }.is_some_and(|c| c.chunked_request == 1)
}

/// A string of the request's merged DirConf, when set.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
unsafe fn dir_string<'r>(
    r: *const ffi::request_rec,
    field: fn(&DirConf) -> *const c_char,
) -> Option<&'r str> {
    // SAFETY: r is live (the contract); the DirConf's strings are null or
    // live in the configuration pool.
    unsafe { dir_text(field(dir_conf(r)?)) }
}

/// The WSGICallableObject in force for a request, when one is set.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn callable_of<'r>(r: *const ffi::request_rec) -> Option<&'r str> {
    // SAFETY: as dir_string's contract, which is this function's.
    unsafe { dir_string(r, |c| c.callable) }
}

/// The WSGIProcessGroup in force for a request (`None`, or `%{GLOBAL}`:
/// embedded).
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn process_group_of<'r>(r: *const ffi::request_rec) -> Option<&'r str> {
    // SAFETY: as dir_string's and resolve_group's contract, which is this
    // function's.
    unsafe { dir_string(r, |c| c.process_group).and_then(|g| resolve_group(r, g)) }
}

/// The front proxies trusted for request `r` (WSGITrustedProxyHeaders,
/// WSGITrustedProxies in force), when headers are.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn trusted_proxies_of(
    r: *const ffi::request_rec,
) -> Option<oxwsgi_core::request::proxy_headers::TrustedProxies> {
    use oxwsgi_core::request::proxy_headers::{Subnet, TrustedProxies};
    // SAFETY: as dir_string's contract, which is this function's.
    let headers = unsafe { dir_string(r, |c| c.trusted_proxy_headers) }?;
    // SAFETY: as above.
    let proxies = unsafe { dir_string(r, |c| c.trusted_proxies) };
    Some(TrustedProxies {
        headers: headers.split_whitespace().map(str::to_string).collect(),
        // Checked when the directive was read.
        proxies: proxies.map(|p| {
            p.split_whitespace()
                .filter_map(|s| Subnet::parse(s).ok())
                .collect()
        }),
    })
}

directive1!(
    /// WSGITrustedProxyHeaders HEADER...: the headers a front proxy sets
    /// that environ takes as the client's (as mod_wsgi, where `.htaccess`
    /// with FileInfo may too); repeated at one level, they add up.
    oxwsgi_cmd_trusted_proxy_headers(cmd, dir, raw, line) {
        let keys = values::split_words(&line)?
            .iter()
            .map(|h| oxwsgi_core::request::proxy_headers::environ_key(h))
            .collect::<Result<Vec<_>, _>>()?;
        append_words(cmd, &mut (*dir.cast::<DirConf>()).trusted_proxy_headers, &keys)
    }
);

directive1!(
    /// WSGITrustedProxies ADDRESS[/BITS]...: the only clients whose
    /// trusted proxy headers count.
    oxwsgi_cmd_trusted_proxies(cmd, dir, raw, line) {
        let words = values::split_words(&line)?;
        for w in &words {
            oxwsgi_core::request::proxy_headers::Subnet::parse(w)?;
        }
        append_words(cmd, &mut (*dir.cast::<DirConf>()).trusted_proxies, &words)
    }
);

/// Adds `words` to a space-separated list in the configuration pool.
///
/// # Safety
/// `cmd` is the live cmd_parms of the directive being read; `slot` is
/// null or a C string in a pool that lives as long as its pool.
unsafe fn append_words(
    cmd: *mut cmd_parms,
    slot: &mut *const c_char,
    words: &[String],
) -> Result<(), String> {
    let mut all = if slot.is_null() {
        String::new()
    } else {
        // SAFETY: slot is a C string here (the contract).
        unsafe { CStr::from_ptr(*slot) }
            .to_string_lossy()
            .into_owned()
    };
    for w in words {
        if !all.is_empty() {
            all.push(' ');
        }
        all.push_str(w);
    }
    let all = CString::new(all).map_err(|_| "a NUL byte in the directive".to_string())?;
    // SAFETY: the pool is the live configuration pool of `cmd`; apr_pstrdup
    // copies the string into it.
    *slot = unsafe { ffi::apr_pstrdup((*cmd).pool, all.as_ptr()) };
    Ok(())
}

/// An application group that does not depend on the request: `""` for
/// `%{GLOBAL}`, the name for a name, `None` for the other `%{...}` forms.
pub fn fixed_application_group(raw: &str) -> Option<String> {
    match raw {
        "%{GLOBAL}" => Some(String::new()),
        r if r.starts_with("%{") => None,
        r => Some(r.to_string()),
    }
}

/// What an application group's name expands to for a request (mod_wsgi's
/// rules): the request's facts, and its variables for `%{ENV:VAR}`.
pub struct GroupFacts<'a> {
    /// ServerName of the virtual host ...
    pub server_name: &'a str,
    /// ... the port the request came to (left out when 80 or 443) ...
    pub port: u16,
    /// ... the Host the client sent (`%{HOST}`) ...
    pub host: &'a str,
    /// ... and SCRIPT_NAME.
    pub script_name: &'a str,
}

/// The application group `raw` (`None`: not configured, `%{RESOURCE}`)
/// names for a request.
pub fn expand_application_group(
    raw: Option<&str>,
    facts: &GroupFacts<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let with_port = |h: &str| {
        if facts.port == 80 || facts.port == 443 {
            h.to_string()
        } else {
            format!("{h}:{}", facts.port)
        }
    };
    let raw = raw.unwrap_or("%{RESOURCE}");
    match raw {
        "%{GLOBAL}" => String::new(),
        "%{RESOURCE}" => format!("{}|{}", with_port(facts.server_name), facts.script_name),
        "%{SERVER}" => with_port(facts.server_name),
        "%{HOST}" => with_port(if facts.host.is_empty() {
            facts.server_name
        } else {
            facts.host
        }),
        r => match r.strip_prefix("%{ENV:").and_then(|v| v.strip_suffix('}')) {
            Some(var) => match env(var) {
                // A variable may name a %{...} form, but not another variable.
                Some(v) if v.starts_with('%') && !v.starts_with("%{ENV:") => {
                    expand_application_group(Some(&v), facts, env)
                }
                Some(v) => v,
                None => r.to_string(),
            },
            None => r.to_string(),
        },
    }
}

/// The application group an auth or dispatch script runs in (mod_wsgi's
/// rules for them): the main interpreter unless named; `%{SERVER}` and
/// `%{HOST}` expand, other names are taken as written.
pub fn expand_script_group(raw: Option<&str>, facts: &GroupFacts<'_>) -> String {
    match raw {
        None | Some("%{GLOBAL}") => String::new(),
        Some(r @ ("%{SERVER}" | "%{HOST}")) => expand_application_group(Some(r), facts, &|_| None),
        Some(r) => r.to_string(),
    }
}

/// The application group configured for request `r`: the alias's
/// `application-group=`, else the WSGIApplicationGroup in force (`None`:
/// `%{RESOURCE}`).
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn configured_application_group(
    r: *const ffi::request_rec,
    inline: Option<&Inline>,
) -> Option<&str> {
    match inline.and_then(|i| i.application_group.as_deref()) {
        Some(own) => Some(own),
        // SAFETY: as dir_string's contract, which is this function's.
        None => unsafe { dir_string(r, |c| c.application_group) },
    }
}

/// The application group `raw` (`None`: `%{RESOURCE}`) names for request
/// `r`; `mount` is its SCRIPT_NAME.
///
/// # Safety
/// `r` is a live request of a server that loaded this module.
pub unsafe fn application_group_of(
    r: *const ffi::request_rec,
    raw: Option<&str>,
    mount: &str,
    lower_case: bool,
) -> String {
    if let Some(fixed) = raw.and_then(fixed_application_group) {
        return fixed;
    }
    let lowered;
    let script_name = if lower_case {
        lowered = mount.to_lowercase();
        &lowered
    } else {
        mount
    };
    // SAFETY: r is live (the contract); its tables are Apache's for the
    // request's life, and every string read is copied before returning.
    unsafe {
        with_facts(r, script_name, |facts| {
            let env = |var: &str| -> Option<String> {
                let name = CString::new(var).ok()?;
                for table in [(*r).notes, (*r).subprocess_env] {
                    let v = ffi::apr_table_get(table, name.as_ptr());
                    if !v.is_null() {
                        return Some(CStr::from_ptr(v).to_string_lossy().into_owned());
                    }
                }
                std::env::var(var).ok()
            };
            expand_application_group(raw, facts, &env)
        })
    }
}

/// The application group an auth or dispatch script configured as `raw`
/// runs in for request `r`.
///
/// # Safety
/// `r` is a live request.
pub unsafe fn script_group_of(r: *const ffi::request_rec, raw: Option<&str>) -> String {
    match raw {
        None => String::new(),
        // SAFETY: r is live (the contract).
        Some(_) => unsafe { with_facts(r, "", |facts| expand_script_group(raw, facts)) },
    }
}

/// Calls `f` with request `r`'s facts for group names.
///
/// # Safety
/// `r` is a live request.
unsafe fn with_facts<T>(
    r: *const ffi::request_rec,
    script_name: &str,
    f: impl FnOnce(&GroupFacts<'_>) -> T,
) -> T {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null string of the live request (the contract).
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    // SAFETY: r and its server are live (the contract).
    let (server_name, host, port) = unsafe {
        (
            text((*(*r).server).server_hostname),
            text((*r).hostname),
            ffi::ap_get_server_port(r),
        )
    };
    f(&GroupFacts {
        server_name: &server_name,
        port,
        host: &host,
        script_name,
    })
}

directive1!(
    /// WSGIScriptAliasMatch REGEX SCRIPT [options as WSGIScriptAlias].
    oxwsgi_cmd_script_alias_match(cmd, _dir, raw, line) {
        let words = values::split_words(&line)?;
        let [pattern, script, options @ ..] = words.as_slice() else {
            return Err("a URL regex and a WSGI script path are needed".into());
        };
        let inline = Inline::parse(options)?;
        let pattern = CString::new(pattern.as_str()).map_err(|_| "a NUL in the regex")?;
        let replacement = CString::new(script.as_str()).map_err(|_| "a NUL in the script")?;
        // The regex is compiled into the configuration pool, which
        // outlives it.
        let re = ffi::ap_pregcomp((*cmd).pool, pattern.as_ptr(), 0);
        if re.is_null() {
            return Err("the regular expression does not compile".to_string());
        }
        let server = server_key((*cmd).server);
        update(|c| {
            c.matches.push(AliasMatch {
                server,
                regex: Regex(re),
                replacement,
                inline,
            });
            Ok(())
        })
    }
);

directive1!(
    oxwsgi_cmd_import_script(cmd, _dir, raw, line) {
        let words = values::split_words(&line)?;
        let (script, options) = words
            .split_first()
            .ok_or("Location of import script not supplied.")?;
        AppSpec::parse(script, None)?;
        let (group, application_group) = import_options(options)?;
        let application_group = fixed_application_group(&application_group).ok_or_else(|| {
            format!(
                "application-group={application_group}: an import script is loaded before any \
                 request, so its group is a name or %{{GLOBAL}}"
            )
        })?;
        let server = server_key((*cmd).server);
        update(|c| {
            if let Some(g) = &group {
                if !c.daemons.iter().any(|(n, _)| n == g) {
                    return Err("WSGI process group not yet configured.".into());
                }
            }
            c.imports.push(Import {
                script: script.clone(),
                group,
                application_group,
                after_aliases: c.aliases.len(),
                server,
            });
            Ok(())
        })
    }
);

/// WSGIImportScript's options, as mod_wsgi takes them: both groups named,
/// nothing else. The process group (`None`: `%{GLOBAL}`, Apache's
/// children) and the application group.
fn import_options(options: &[String]) -> Result<(Option<String>, String), String> {
    let (mut process, mut application) = (None, None);
    for o in options {
        match o.split_once('=') {
            Some(("process-group", v)) if !v.is_empty() => process = Some(v.to_string()),
            Some(("process-group", _)) => return Err("Invalid name for WSGI process group.".into()),
            Some(("application-group", v)) if !v.is_empty() => application = Some(v.to_string()),
            Some(("application-group", _)) => {
                return Err("Invalid name for WSGI application group.".into());
            }
            _ => return Err("Invalid option to WSGI import script definition.".into()),
        }
    }
    let application = application.ok_or("Name of WSGI application group required.")?;
    let process = process.ok_or("Name of WSGI process group required.")?;
    Ok(((process != "%{GLOBAL}").then_some(process), application))
}

/// The on/off directives, told apart by name.
#[cfg_attr(not(test), unsafe(no_mangle))]
pub unsafe extern "C" fn oxwsgi_cmd_flag(
    cmd: *mut cmd_parms,
    dir: *mut c_void,
    on: std::ffi::c_int,
) -> *const c_char {
    guard::entry("an on/off directive", DIRECTIVE_PANICKED, || {
        // SAFETY: Apache passes the live cmd_parms; the name is a C string.
        let name = unsafe { CStr::from_ptr((*(*cmd).cmd).name) }
            .to_bytes()
            .to_vec();
        let on = on != 0;
        // Per directory (a tenant's .htaccess may set them, as mod_wsgi's):
        // never the server-wide configuration.
        // SAFETY: dir is our DirConf for the context being parsed (made by
        // create_dir_config), as Apache passes it to the handler.
        let dir = unsafe { &mut *dir.cast::<DirConf>() };
        match name.as_slice() {
            b"WSGIPassAuthorization" => {
                dir.pass_authorization = i8::from(on);
                return std::ptr::null();
            }
            b"WSGIChunkedRequest" => {
                dir.chunked_request = i8::from(on);
                return std::ptr::null();
            }
            b"WSGIErrorOverride" => {
                dir.error_override = i8::from(on);
                return std::ptr::null();
            }
            // Apache 2.4's Require decides; mod_wsgi accepts and ignores it (and
            // has no WSGIUserAuthoritative there).
            b"WSGIGroupAuthoritative" => return std::ptr::null(),
            b"WSGIIgnoreActivity" => {
                dir.ignore_activity = i8::from(on);
                return std::ptr::null();
            }
            // oxwsgi sends files as Apache's EnableSendfile says (see the
            // README).
            b"WSGIEnableSendfile" => return std::ptr::null(),
            b"WSGIPassApacheRequest" if on => {
                // SAFETY: cmd is live.
                return unsafe {
                    answer(
                        cmd,
                        Err("oxwsgi has no Apache request object to pass to apps \
                             (mod_wsgi's apache.request_rec): WSGIPassApacheRequest On \
                             cannot apply"
                            .into()),
                    )
                };
            }
            b"WSGIPassApacheRequest" => return std::ptr::null(),
            _ => {}
        }
        let r = update(|c| {
            match name.as_slice() {
                b"WSGIScriptReloading" => c.script_reloading = on,
                b"WSGIRestrictEmbedded" => c.restrict_embedded = on,
                b"WSGICaseSensitivity" => c.case_insensitive = !on,
                // What these choose in mod_wsgi is how oxwsgi always works:
                // Python starts in the children, interpreters end with the
                // process, sockets are per generation, debug lines come
                // with `LogLevel wsgi:debug`, metrics on the status page.
                b"WSGILazyInitialization"
                | b"WSGIDestroyInterpreter"
                | b"WSGISocketRotation"
                | b"WSGIVerboseDebugging"
                | b"WSGIServerMetrics" => {}
                _ => return Err("unknown flag".into()),
            }
            Ok(())
        });
        // SAFETY: cmd is live.
        unsafe { answer(cmd, r) }
    })
}

directive1!(
    /// WSGIApplicationGroup NAME: the interpreter the apps of this server or
    /// directory run in: `%{GLOBAL}` (the main one), `%{RESOURCE}` (the
    /// default: one per virtual host and script), `%{SERVER}`, `%{HOST}`,
    /// `%{ENV:VAR}`, or a name.
    oxwsgi_cmd_application_group(cmd, dir, raw, v) {
        if v.is_empty() {
            return Err("an application group name is needed (e.g. %{GLOBAL})".into());
        }
        (*dir.cast::<DirConf>()).application_group = ffi::apr_pstrdup((*cmd).pool, raw);
        Ok(())
    }
);

directive1!(
    /// WSGIRequestTimeout (server-wide): `oxwsgi.RequestTimeout` in the
    /// app's thread at the deadline and 504, once the thread is back (an
    /// Apache request thread runs the app itself: nothing else may answer
    /// on its connection meanwhile).
    oxwsgi_cmd_request_timeout(cmd, _dir, raw, v) {
        let limit = values::parse_timeout(&v)?;
        update(|c| {
            c.request_timeout = limit;
            Ok(())
        })
    }
);

directive1!(
    /// WSGIDrainTime TIME: on a graceful stop, readiness answers 503 this
    /// long before Apache stops (see `drain`).
    oxwsgi_cmd_drain_time(cmd, _dir, raw, v) {
        if (*(*cmd).server).is_virtual != 0 {
            return Err("WSGIDrainTime belongs to the main server: a stop is the whole server's".into());
        }
        let time = values::parse_timeout(&v)?;
        update(|c| {
            c.drain_time = time;
            Ok(())
        })
    }
);

directive1!(
    /// WSGIDaemonProcess NAME option=value ...: a process group, started by
    /// the parent once the configuration is read.
    oxwsgi_cmd_daemon_process(cmd, _dir, raw, line) {
        let words = values::split_words(&line)?;
        let (name, words) = words.split_first().ok_or("a group name is needed")?;
        let name = name.clone();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let options = oxwsgi_core::daemon::options::GroupOptions::parse(&name, &words)?;
        let server = server_key((*cmd).server);
        update(|c| {
            if c.daemons.iter().any(|(n, _)| *n == name) {
                return Err(format!("process group {name} is defined twice"));
            }
            c.daemon_servers.push((name.clone(), server));
            c.daemons.push((name, options));
            Ok(())
        })
    }
);

directive1!(
    /// WSGIProcessGroup NAME: the group that runs the apps of this server or
    /// directory; `%{GLOBAL}` runs them embedded.
    oxwsgi_cmd_process_group(cmd, dir, raw, name) {
        check_group(&name)?;
        (*dir.cast::<DirConf>()).process_group = ffi::apr_pstrdup((*cmd).pool, raw);
        Ok(())
    }
);

directive1!(
    /// WSGISocketPrefix PATH: the groups' sockets are PATH.<pid>.<n>.sock;
    /// a relative PATH is under the ServerRoot, as in mod_wsgi.
    oxwsgi_cmd_socket_prefix(cmd, _dir, raw, prefix) {
        let prefix = if prefix.starts_with('/') {
            prefix
        } else {
            // (In take1's unsafe block:) cmd is live while its directive is
            // parsed and raw is its NUL-terminated argument; the result is a
            // C string in the configuration pool, NULL for a path Apache
            // refuses.
            let p = ffi::ap_server_root_relative((*cmd).pool, raw);
            if p.is_null() {
                return Err(format!("socket prefix {prefix:?} is not a valid path"));
            }
            crate::cstr::cstr_str(p)
        };
        update(|c| {
            c.socket_prefix = Some(prefix);
            Ok(())
        })
    }
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_readme_table_names_every_directive() {
        let shim = include_str!("shim.c");
        let readme = include_str!("../../README.md");
        let table: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| directive | mod_wsgi's meaning | oxwsgi |"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        let mut names = shim
            .split('"')
            .filter(|w| {
                (w.starts_with("WSGI") || w.starts_with("<WSGI"))
                    && w.chars().skip(1).all(|c| c.is_ascii_alphanumeric())
            })
            .peekable();
        assert!(names.peek().is_some());
        for name in names {
            let name = name.trim_start_matches('<');
            assert!(
                table.iter().any(|row| row
                    .replace("\\|", "")
                    .split('|')
                    .nth(1)
                    .is_some_and(|c| c.contains(name))),
                "{name} is missing from the README's table of directives"
            );
        }
    }

    #[test]
    fn script_groups_expand_as_mod_wsgi_expands_them() {
        let facts = GroupFacts {
            server_name: "www.example.com",
            port: 443,
            host: "alias.example.com",
            script_name: "/app",
        };
        let x = |raw: Option<&str>| expand_script_group(raw, &facts);
        // Auth and dispatch scripts run in the main interpreter unless
        // told; only %{SERVER} and %{HOST} expand, as in mod_wsgi.
        assert_eq!(x(None), "");
        assert_eq!(x(Some("%{GLOBAL}")), "");
        assert_eq!(x(Some("%{SERVER}")), "www.example.com");
        assert_eq!(x(Some("%{HOST}")), "alias.example.com");
        assert_eq!(x(Some("%{RESOURCE}")), "%{RESOURCE}");
        assert_eq!(x(Some("auth")), "auth");
    }

    #[test]
    fn application_groups_expand_as_mod_wsgi() {
        let facts = GroupFacts {
            server_name: "www.example.com",
            port: 8080,
            host: "alias.example.com",
            script_name: "/app",
        };
        let env = |v: &str| match v {
            "SITE" => Some("site-a".to_string()),
            "INDIRECT" => Some("%{SERVER}".to_string()),
            "LOOP" => Some("%{ENV:LOOP}".to_string()),
            _ => None,
        };
        let x = |raw: Option<&str>| expand_application_group(raw, &facts, &env);
        assert_eq!(x(None), "www.example.com:8080|/app");
        assert_eq!(x(Some("%{RESOURCE}")), "www.example.com:8080|/app");
        assert_eq!(x(Some("%{GLOBAL}")), "");
        assert_eq!(x(Some("%{SERVER}")), "www.example.com:8080");
        assert_eq!(x(Some("%{HOST}")), "alias.example.com:8080");
        assert_eq!(x(Some("%{ENV:SITE}")), "site-a");
        assert_eq!(x(Some("%{ENV:INDIRECT}")), "www.example.com:8080");
        // A variable naming a variable is taken as it is (no loops).
        assert_eq!(x(Some("%{ENV:LOOP}")), "%{ENV:LOOP}");
        assert_eq!(x(Some("%{ENV:UNSET}")), "%{ENV:UNSET}");
        assert_eq!(x(Some("shared")), "shared");
        let on_80 = GroupFacts {
            port: 80,
            host: "",
            script_name: "",
            ..facts
        };
        assert_eq!(
            expand_application_group(None, &on_80, &env),
            "www.example.com|"
        );
        assert_eq!(
            expand_application_group(Some("%{HOST}"), &on_80, &env),
            "www.example.com"
        );
        assert_eq!(fixed_application_group("%{GLOBAL}").as_deref(), Some(""));
        assert_eq!(fixed_application_group("x").as_deref(), Some("x"));
        assert_eq!(fixed_application_group("%{RESOURCE}"), None);
    }

    fn alias(server: usize, prefix: &str) -> Alias {
        Alias {
            server,
            prefix: prefix.into(),
            script: format!("/srv{prefix}/wsgi.py"),
            inline: Inline::default(),
            app: None,
        }
    }

    #[test]
    fn inline_options_parse_and_name_their_group() {
        let words = |s: &str| values::split_words(s).unwrap();
        let o = Inline::parse(&words(
            "process-group=site application-group=%{GLOBAL} callable-object=app",
        ))
        .unwrap();
        assert_eq!(o.group(), Some(Some("site")));
        assert_eq!(o.callable.as_deref(), Some("app"));
        let embedded = Inline::parse(&words("process-group=%{GLOBAL}")).unwrap();
        assert_eq!(embedded.group(), Some(None));
        assert_eq!(Inline::default().group(), None);
        for (bad, message) in [
            ("process-group=%{HTTP_HOST}", "not supported by oxwsgi yet"),
            ("pass-authorization=maybe", "maybe"),
            ("callable-object=", "needs a value"),
            ("shape=round", "unknown option shape"),
            ("process-group", "not an option=value"),
        ] {
            let e = Inline::parse(&words(bad)).unwrap_err();
            assert!(e.contains(message), "{bad}: {e}");
        }
        let mut c = config(&[(0, "/a")]);
        c.aliases[0].inline.process_group = Some("site".into());
        assert!(
            // SAFETY: no server_recs: every key is 0.
            unsafe { c.check(std::ptr::null()) }
                .unwrap_err()
                .contains("process-group=site: no WSGIDaemonProcess")
        );
        c.daemons.push(("site".into(), Default::default()));
        // SAFETY: no server_recs: every key is 0.
        assert!(unsafe { c.check(std::ptr::null()) }.is_ok());
    }

    fn config(aliases: &[(usize, &str)]) -> Config {
        Config {
            aliases: aliases.iter().map(|&(s, p)| alias(s, p)).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn the_longest_alias_on_a_segment_boundary_wins() {
        let c = config(&[(0, ""), (0, "/app"), (0, "/app/admin")]);
        let prefix = |uri: &str| {
            c.alias_for(0, uri.as_bytes())
                .map(|i| c.aliases[i].prefix.as_str())
        };
        assert_eq!(prefix("/app/admin/users"), Some("/app/admin"));
        assert_eq!(prefix("/app/admin"), Some("/app/admin"));
        assert_eq!(prefix("/app/x"), Some("/app"));
        assert_eq!(prefix("/application"), Some(""), "not inside /app");
        assert_eq!(prefix("/"), Some(""));
        let c = config(&[(0, "/app")]);
        assert_eq!(c.alias_for(0, b"/apple"), None);
        assert_eq!(c.alias_for(0, b"/"), None);
    }

    #[test]
    fn a_virtual_host_without_aliases_uses_the_main_servers() {
        let c = config(&[(0, "/main"), (7, "/own")]);
        assert_eq!(c.scope(7), 7);
        assert_eq!(c.scope(9), 0);
        assert_eq!(
            c.alias_for(7, b"/main"),
            None,
            "a host with its own does not inherit"
        );
        assert!(c.alias_for(c.scope(9), b"/main").is_some());
    }

    #[test]
    fn a_virtual_host_inherits_the_main_servers_callable() {
        let mut c = Config::default();
        c.callables.push((0, "app".into()));
        c.callables.push((7, "other".into()));
        assert_eq!(c.callable_of(7), Some("other"));
        assert_eq!(c.callable_of(9), Some("app"));
        assert_eq!(Config::default().callable_of(9), None);
    }

    #[test]
    fn apps_get_the_mpm_and_reloading_settings() {
        let defaults = AppDefaults {
            callable: Some("app".into()),
            reloading: true,
            request_timeout: Some(std::time::Duration::from_secs(3)),
            multithread: false,
            multiprocess: true,
        };
        let app = defaults
            .app("/srv/site/wsgi.py", "/site", None, "")
            .unwrap();
        let o = app.options();
        assert_eq!(
            (o.mount.as_str(), o.spec.callable.as_str()),
            ("/site", "app")
        );
        assert!(!o.multithread && o.multiprocess && o.reload_on_change);
        assert_eq!(o.request_timeout, Some(std::time::Duration::from_secs(3)));
        let app = defaults
            .app("/srv/site/wsgi.py", "", Some("own"), "")
            .unwrap();
        assert_eq!(
            app.options().spec.callable,
            "own",
            "a directory's own callable wins"
        );
        let e = defaults.app("site/wsgi.py", "", None, "").err().unwrap();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn a_virtual_hosts_group_serves_that_host_only() {
        let names = |a: &str, b: &str| {
            let (a, b) = (a.as_bytes().to_vec(), b.as_bytes().to_vec());
            move || (Some(a), Some(b))
        };
        assert!(
            reachable(0, 7, names("a", "b")),
            "a top-level group serves all"
        );
        assert!(reachable(7, 7, names("a", "b")), "its own host");
        assert!(
            !reachable(7, 9, names("a.example", "b.example")),
            "another host"
        );
        assert!(
            !reachable(7, 0, names("a.example", "main")),
            "the main server"
        );
        assert!(
            reachable(7, 9, names("a.example", "a.example")),
            "its name on another port"
        );
        assert!(!reachable(7, 9, || (None, None)), "no names to match");
    }
}

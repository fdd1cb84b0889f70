//! The `wsgi_*` directives: the command table, their parsing (values are
//! parsed by oxwsgi-core's `conf`, so both servers agree), and merging.
//! Every bad value fails `nginx -t` with a message naming the directive.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    NGX_HTTP_MAIN_CONF, NGX_LOG_EMERG, NGX_LOG_WARN, ngx_command_t, ngx_conf_t,
    ngx_http_core_loc_conf_t, ngx_str_t,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::ngx_conf_log_error;
use oxwsgi_core::guard;
use oxwsgi_core::{App, AppOptions, AppSpec, conf as values};

use crate::Module;

/// `http`-level settings, shared by the worker.
#[derive(Default)]
pub struct MainConf {
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub threads: Option<usize>,
    /// `wsgi_max_requests N [jitter=M]`.
    pub max_requests: Option<(u64, u64)>,
    /// `wsgi_max_rss SIZE`.
    pub max_rss: Option<u64>,
    /// A location has `wsgi_status`.
    pub status: bool,
    /// `wsgi_drain_time` (the inner `None` is `off`).
    pub drain_time: Option<Option<Duration>>,
    /// The shared memory of the metrics (`status`).
    pub metrics_zone: Option<std::ptr::NonNull<ngx::ffi::ngx_shm_zone_t>>,
    /// Every app of this configuration, preloaded when a worker starts.
    pub apps: Vec<Arc<App>>,
    /// The process groups `wsgi_daemon_process` defines, in order.
    pub groups: Vec<(String, oxwsgi_core::daemon::options::GroupOptions)>,
    /// `wsgi_process_group NAME;` in the http block: the group every
    /// location chooses, once a `wsgi_daemon_process` defines it; otherwise
    /// the definition this spelling was before (see `init_main_conf`).
    pub http_choice: Option<String>,
    /// The apps the locations mount in each group (by its number in
    /// `groups`): all its daemons will run.
    pub group_mounts: Vec<(usize, oxwsgi_core::daemon::spec::Mount)>,
}

impl MainConf {
    /// Adds a process group; a name defined twice is refused.
    fn define(
        &mut self,
        name: String,
        options: oxwsgi_core::daemon::options::GroupOptions,
    ) -> Result<(), String> {
        if self.groups.iter().any(|(n, _)| *n == name) {
            return Err(format!("group {name} is defined twice"));
        }
        self.groups.push((name, options));
        Ok(())
    }

    pub fn threads(&self) -> usize {
        self.threads.unwrap_or(DEFAULT_THREADS)
    }

    /// When a worker's Python is recycled.
    pub fn recycle_limits(&self) -> oxwsgi_core::ops::recycle::Limits {
        oxwsgi_core::ops::recycle::Limits {
            max_requests: self.max_requests.map(|(n, _)| n),
            jitter: self.max_requests.map_or(0, |(_, j)| j),
            max_rss: self.max_rss,
        }
    }
}

/// Python threads per worker process unless `wsgi_threads` says otherwise.
pub const DEFAULT_THREADS: usize = 8;

/// Per-location settings; `app` is built at merge time from the rest.
#[derive(Default)]
pub struct LocConf {
    target: Option<String>,
    /// The location's prefix, recorded by `wsgi_app`.
    location_prefix: Option<String>,
    script_name: Option<String>,
    callable: Option<String>,
    gzip: Option<bool>,
    inflate: Option<bool>,
    inflate_max: Option<u64>,
    body_buffer: Option<u64>,
    /// `wsgi_request_timeout` (the inner `None` is `off`).
    request_timeout: Option<Option<Duration>>,
    /// `wsgi_queue_timeout`.
    queue_timeout: Option<Option<Duration>>,
    /// `wsgi_group` (the inner `None` is `off`).
    group_name: Option<Option<String>>,
    /// `wsgi_application_group` (`""`: the main interpreter).
    application_group: Option<String>,
    pub app: Option<Arc<App>>,
    /// `wsgi_health`: this location answers health checks.
    pub health: Option<oxwsgi_core::ops::health::Probe>,
    /// The process group that serves the app (its number in
    /// `MainConf::groups`); none: the app runs in the nginx workers.
    pub group: Option<usize>,
}

impl LocConf {
    /// The buffer this location's request bodies are read through:
    /// `wsgi_body_buffer_size`, whatever `client_body_buffer_size` says (a
    /// site that raises that to keep other handlers' bodies in memory would
    /// otherwise have a buffer of up to the whole body allocated, and given
    /// back to the system, for every upload).
    pub fn body_buffer(&self) -> usize {
        let ours = self
            .body_buffer
            .unwrap_or(crate::request::body::DEFAULT_BODY_BUFFER);
        usize::try_from(ours).unwrap_or(usize::MAX)
    }

    /// Takes from the enclosing block what a location inherits: the
    /// settings, never the app (`wsgi_app` and `wsgi_script_name` belong to
    /// the location that names them).
    fn inherit(&mut self, prev: &LocConf) {
        if self.callable.is_none() {
            self.callable = prev.callable.clone();
        }
        self.gzip = self.gzip.or(prev.gzip);
        self.inflate = self.inflate.or(prev.inflate);
        self.inflate_max = self.inflate_max.or(prev.inflate_max);
        self.body_buffer = self.body_buffer.or(prev.body_buffer);
        self.request_timeout = self.request_timeout.or(prev.request_timeout);
        self.queue_timeout = self.queue_timeout.or(prev.queue_timeout);
        if self.group_name.is_none() {
            self.group_name = prev.group_name.clone();
        }
        if self.application_group.is_none() {
            self.application_group = prev.application_group.clone();
        }
    }

    /// The group this location's app runs in, checked against the groups
    /// defined (`names`, in order); an error names what does not fit.
    fn group_of(&self, names: &[&str]) -> Result<Option<usize>, String> {
        let Some(Some(name)) = &self.group_name else {
            return Ok(None);
        };
        let index = names.iter().position(|n| n == name).ok_or_else(|| {
            format!("\"wsgi_process_group\": no wsgi_daemon_process defines \"{name}\"")
        })?;
        // The worker's own settings for its Python do not reach a group's
        // daemons: say so rather than ignore them.
        let embedded_only = [
            (
                "wsgi_request_timeout",
                self.request_timeout.flatten().is_some(),
                "its request_timeout= option",
            ),
            (
                "wsgi_queue_timeout",
                self.queue_timeout.flatten().is_some(),
                "its queue_timeout= option",
            ),
            ("wsgi_gzip", self.gzip == Some(true), "nginx's gzip"),
            (
                "wsgi_inflate_request",
                self.inflate == Some(true),
                "nothing yet",
            ),
        ];
        if let Some((directive, _, instead)) = embedded_only.iter().find(|(_, set, _)| *set) {
            return Err(format!(
                "\"{directive}\" applies to apps in nginx's workers, not to those of group \"{name}\" (for the group: {instead})"
            ));
        }
        Ok(Some(index))
    }

    /// How this location's app is served, when it has one; an error says
    /// what is wrong with its `wsgi_app` (with the callable inherited).
    fn app_options(&self, threads: usize) -> Option<Result<AppOptions, String>> {
        let target = self.target.as_deref()?;
        let spec = match AppSpec::parse(target, self.callable.as_deref()) {
            Ok(spec) => spec,
            Err(e) => return Some(Err(e)),
        };
        let mut options = AppOptions::new(spec);
        options.mount = self
            .script_name
            .clone()
            .or_else(|| self.location_prefix.clone())
            .unwrap_or_default();
        options.gzip = self.gzip.unwrap_or(false);
        options.inflate_request = self.inflate.unwrap_or(false);
        options.inflate_max = self
            .inflate_max
            .unwrap_or(oxwsgi_core::app::DEFAULT_INFLATE_MAX);
        options.request_timeout = self.request_timeout.flatten();
        options.queue_timeout = self.queue_timeout.flatten();
        options.multithread = threads > 1;
        options.multiprocess = true;
        options.application_group = self.application_group.clone().unwrap_or_default();
        Some(Ok(options))
    }
}

/// A `wsgi_process_group` option as nginx spells it (`python_home=`,
/// `max_requests=`) in mod_wsgi's spelling, which the core parses.
fn mod_wsgi_spelling(word: &str) -> String {
    let (key, value) = word.split_once('=').unwrap_or((word, ""));
    let key = match key {
        "max_requests" => "maximum-requests".to_string(),
        k => k.replace('_', "-"),
    };
    if word.contains('=') {
        format!("{key}={value}")
    } else {
        key
    }
}

/// An error of the core's in nginx's spelling of the options.
fn nginx_spelling(error: &str) -> String {
    let mut e = error.replace("maximum-requests", "max_requests");
    for (mod_wsgi, nginx) in oxwsgi_core::daemon::options::SUPPORTED
        .iter()
        .chain(oxwsgi_core::daemon::options::NOT_YET)
        .map(|o| (*o, o.replace('-', "_")))
    {
        e = e.replace(mod_wsgi, &nginx);
    }
    e
}

/// `wsgi_daemon_process NAME option=value ...;`: a process group, with the
/// options of mod_wsgi's WSGIDaemonProcess spelled with `_` for `-` (and
/// `max_requests`), checked now.
pub(crate) unsafe extern "C" fn set_daemon_process(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry(
        "the wsgi_daemon_process directive",
        crate::DIRECTIVE_PANICKED,
        || {
            // SAFETY: nginx hands this module's main configuration (the
            // directive's offset) and the arguments in cf->args.
            unsafe { define_group(cf, &mut *conf.cast::<MainConf>(), "wsgi_daemon_process") }
        },
    )
}

/// Defines the group that `cf`'s arguments describe (`directive` names
/// the spelling used, for errors).
///
/// # Safety
/// `cf` is the configuration being parsed, with the directive's arguments
/// in cf->args.
unsafe fn define_group(cf: *mut ngx_conf_t, main: &mut MainConf, directive: &str) -> *mut c_char {
    // SAFETY: nginx has put the name and the arguments in cf->args, which
    // lives as long as the configuration pass.
    let args: &[ngx_str_t] = unsafe { (*(*cf).args).as_slice() };
    let words: Result<Vec<&str>, _> = args[1..].iter().map(|a| a.to_str()).collect();
    let parsed = words
        .map_err(|_| "a value is not valid UTF-8".to_string())
        .and_then(|words| {
            let (name, rest) = words.split_first().ok_or("a group name is needed")?;
            let rest: Vec<String> = rest.iter().map(|w| mod_wsgi_spelling(w)).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            let options = oxwsgi_core::daemon::options::GroupOptions::parse(name, &rest)
                .map_err(|e| format!("group {name}: {}", nginx_spelling(&e)))?;
            Ok((name.to_string(), options))
        });
    match parsed.and_then(|(name, o)| main.define(name, o)) {
        Ok(()) => NGX_CONF_OK,
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{directive}\": {e}");
            NGX_CONF_ERROR
        }
    }
}

/// `wsgi_process_group NAME|off;`: the group a location's app runs in
/// (Apache's WSGIProcessGroup), inherited from the server and http blocks.
/// Before, `wsgi_process_group` defined a group (now `wsgi_daemon_process`):
/// with options it still does, with a warning; a lone name in the http
/// block is a choice if a `wsgi_daemon_process` defines it, the old
/// definition otherwise (`init_main_conf`).
pub(crate) unsafe extern "C" fn set_process_group(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry(
        "the wsgi_process_group directive",
        crate::DIRECTIVE_PANICKED,
        || {
            // SAFETY: cf is the configuration being parsed (the directive's
            // arguments in cf->args); its main conf is this module's.
            unsafe {
                let in_http = (*cf).cmd_type == NGX_HTTP_MAIN_CONF as ngx::ffi::ngx_uint_t;
                let words = (*(*cf).args).nelts;
                let Some(main) = Module::main_conf_mut(&*cf) else {
                    return NGX_CONF_ERROR;
                };
                if words > 2 {
                    if !in_http {
                        ngx_conf_log_error!(
                            NGX_LOG_EMERG,
                            cf,
                            "\"wsgi_process_group\" takes one group name here; \"wsgi_daemon_process\" defines a group (in the http block)"
                        );
                        return NGX_CONF_ERROR;
                    }
                    ngx_conf_log_error!(NGX_LOG_WARN, cf, "{}", OLD_DEFINITION);
                    return define_group(cf, main, "wsgi_process_group");
                }
                if in_http {
                    let (_, name) = args(cf);
                    let Ok(name) = name else {
                        ngx_conf_log_error!(
                            NGX_LOG_EMERG,
                            cf,
                            "\"wsgi_process_group\": the value is not valid UTF-8"
                        );
                        return NGX_CONF_ERROR;
                    };
                    if name != "off" {
                        if main.http_choice.replace(name).is_some() {
                            ngx_conf_log_error!(
                                NGX_LOG_EMERG,
                                cf,
                                "\"wsgi_process_group\" directive is duplicate"
                            );
                            return NGX_CONF_ERROR;
                        }
                        return NGX_CONF_OK;
                    }
                }
                choose_group(cf, cmd, conf)
            }
        },
    )
}

/// What `nginx -t` says about `wsgi_process_group` used as a definition.
const OLD_DEFINITION: &str = "\"wsgi_process_group NAME OPTIONS\" defining a process group is deprecated: \
     write \"wsgi_daemon_process NAME OPTIONS\"; \"wsgi_process_group NAME\" chooses a group, \
     as Apache's WSGIProcessGroup";

/// `wsgi_group NAME|off;`: `wsgi_process_group`'s former name, still
/// taken, with a warning.
pub(crate) unsafe extern "C" fn set_group(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    ngx_conf_log_error!(
        NGX_LOG_WARN,
        cf,
        "\"wsgi_group\" is deprecated: write \"wsgi_process_group\" (the group an app runs in, as Apache's WSGIProcessGroup)"
    );
    // SAFETY: nginx's arguments for this TAKE1 location-offset directive.
    unsafe { choose_group(cf, cmd, conf) }
}

/// Makes the location being parsed answer with `handler` (a page of the
/// module's own: the status page, a health answer).
///
/// # Safety
/// `cf` is the configuration being parsed, inside a location.
pub(crate) unsafe fn answer_location_with(
    cf: *mut ngx_conf_t,
    handler: unsafe extern "C" fn(*mut ngx::ffi::ngx_http_request_t) -> ngx::ffi::ngx_int_t,
) -> *mut c_char {
    // SAFETY: cf's context is a location's (the contract), where the core
    // module's conf exists.
    match unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) } {
        Some(clcf) => {
            clcf.handler = Some(handler);
            NGX_CONF_OK
        }
        None => NGX_CONF_ERROR,
    }
}

/// The directive's name and its arguments, joined by spaces.
///
/// # Safety
/// `cf` is the configuration being parsed, with the directive's arguments.
pub(crate) unsafe fn args<'a>(cf: *mut ngx_conf_t) -> (&'a str, Result<String, ()>) {
    // SAFETY: nginx has put the name and the arguments (as many as the
    // directive's type allows, at least one) in cf->args, which lives as long
    // as the configuration pass.
    let args: &[ngx_str_t] = unsafe { (*(*cf).args).as_slice() };
    let name = args[0].to_str().unwrap_or("wsgi_*");
    let values: Result<Vec<&str>, _> = args[1..].iter().map(|a| a.to_str()).collect();
    (name, values.map(|v| v.join(" ")).map_err(|_| ()))
}

/// Parses the argument with `parse`, stores it with `store`, or fails with a
/// message naming the directive.
///
/// # Safety
/// `cf` and `conf` are what nginx passed to the directive's handler, and `T`
/// is the configuration type of the directive's `conf` offset.
unsafe fn directive<T, V>(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    parse: impl FnOnce(&str) -> Result<V, String>,
    store: impl FnOnce(&mut T, V) -> bool,
) -> *mut c_char {
    // SAFETY: cf is the configuration being parsed, with this TAKE1
    // directive's arguments in cf->args (directive's contract).
    let (name, value) = unsafe { args(cf) };
    let parsed = value
        .map_err(|()| "the value is not valid UTF-8".to_string())
        .and_then(|v| parse(&v));
    match parsed {
        Ok(v) => {
            // SAFETY: nginx hands the configuration struct of this module at the
            // directive's offset, which the caller says is a `T`.
            let conf = unsafe { &mut *conf.cast::<T>() };
            if store(conf, v) {
                NGX_CONF_OK
            } else {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{name}\" directive is duplicate");
                NGX_CONF_ERROR
            }
        }
        Err(e) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{name}\": {e}");
            NGX_CONF_ERROR
        }
    }
}

fn set_once<V>(slot: &mut Option<V>, v: V) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(v);
    true
}

pub(crate) unsafe extern "C" fn set_app(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry("the wsgi_app directive", crate::DIRECTIVE_PANICKED, || {
        guard::failpoint("wsgi_app");
        // SAFETY: called by nginx for wsgi_app inside a location block: cf's context
        // is that location's, where the core module's location conf exists.
        let clcf: &mut ngx_http_core_loc_conf_t =
            match unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) } {
                Some(c) => c,
                None => return NGX_CONF_ERROR,
            };
        let prefix = if clcf.regex.is_null() {
            clcf.name.to_str().unwrap_or("").to_string()
        } else {
            String::new()
        };
        // SAFETY: nginx passes the parsed configuration and, for a
        // NGX_HTTP_LOC_CONF_OFFSET directive, this location's LocConf.
        unsafe {
            directive::<LocConf, _>(
                cf,
                conf,
                |v| AppSpec::parse(v, None).map(|_| v.to_string()),
                |c, v| {
                    c.location_prefix = Some(prefix);
                    set_once(&mut c.target, v)
                },
            )
        }
    })
}

/// Defines a directive handler that parses its value with `$parse` and
/// stores it, once, in `$conf`'s `$field`.
macro_rules! setter {
    ($name:ident, $conf:ty, $parse:expr, $field:ident) => {
        pub(crate) unsafe extern "C" fn $name(
            cf: *mut ngx_conf_t,
            _: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            guard::entry(stringify!($name), crate::DIRECTIVE_PANICKED, || {
                // SAFETY: nginx passes the parsed configuration and the conf
                // struct at the offset the command table gives this
                // directive, which is a `$conf`.
                unsafe {
                    directive::<$conf, _>(cf, conf, $parse, |c, v| set_once(&mut c.$field, v))
                }
            })
        }
    };
}

setter!(set_callable, LocConf, values::parse_callable, callable);
setter!(
    set_application_group,
    LocConf,
    parse_application_group,
    application_group
);

/// `wsgi_application_group`: a name, or `off` (also `"%{GLOBAL}"`, quoted
/// as nginx wants braces): the main interpreter, the default. mod_wsgi's
/// other `%{...}` forms name a group from Apache's request; a location
/// names its own.
fn parse_application_group(v: &str) -> Result<String, String> {
    match v {
        "off" | "%{GLOBAL}" => Ok(String::new()),
        "" => Err("an application group name is needed (or off)".into()),
        v if v.starts_with("%{") => Err(format!(
            "{v}: on nginx an application group is a name or off (the main interpreter): \
             name one per location where mod_wsgi would derive it"
        )),
        v => Ok(v.to_string()),
    }
}
setter!(set_script_name, LocConf, parse_script_name, script_name);
setter!(choose_group, LocConf, parse_group, group_name);
setter!(set_gzip, LocConf, values::parse_flag, gzip);
setter!(set_inflate, LocConf, values::parse_flag, inflate);
setter!(set_inflate_max, LocConf, values::parse_size, inflate_max);
setter!(set_body_buffer, LocConf, values::parse_size, body_buffer);
setter!(
    set_request_timeout,
    LocConf,
    values::parse_timeout,
    request_timeout
);
setter!(
    set_queue_timeout,
    LocConf,
    values::parse_timeout,
    queue_timeout
);
setter!(
    set_python_home,
    MainConf,
    values::parse_python_home,
    python_home
);
setter!(set_threads, MainConf, values::parse_threads, threads);
setter!(
    set_max_requests,
    MainConf,
    values::parse_max_requests,
    max_requests
);
setter!(set_max_rss, MainConf, values::parse_size, max_rss);
setter!(set_drain_time, MainConf, values::parse_timeout, drain_time);

/// `wsgi_group NAME|off`.
fn parse_group(v: &str) -> Result<Option<String>, String> {
    match v {
        "off" => Ok(None),
        "" => Err("a group name is needed".into()),
        name => Ok(Some(name.to_string())),
    }
}

fn parse_script_name(v: &str) -> Result<String, String> {
    if v.is_empty() || v.starts_with('/') {
        Ok(oxwsgi_core::request::environ::normalize_mount(v))
    } else {
        Err(format!("\"{v}\" must be empty or start with \"/\""))
    }
}

pub(crate) unsafe extern "C" fn set_python_path(
    cf: *mut ngx_conf_t,
    _: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry(
        "the wsgi_python_path directive",
        crate::DIRECTIVE_PANICKED,
        || {
            // SAFETY: nginx passes the parsed configuration and, for a
            // NGX_HTTP_MAIN_CONF_OFFSET directive, the http block's MainConf.
            unsafe {
                directive::<MainConf, _>(cf, conf, values::parse_path_list, |c, v| {
                    c.python_path.extend(v);
                    true
                })
            }
        },
    )
}

/// The http block is read: a lone `wsgi_process_group NAME;` there chooses
/// NAME for every location when a `wsgi_daemon_process` defines it, and
/// otherwise defines it with the default options, as it did before (with a
/// warning), and chooses nothing.
pub unsafe extern "C" fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    guard::entry("the http block's end", crate::DIRECTIVE_PANICKED, || {
        // SAFETY: nginx passes this module's main conf, and cf in the http
        // block, whose context holds the block's own location conf.
        unsafe {
            let main = &mut *conf.cast::<MainConf>();
            let Some(name) = main.http_choice.take() else {
                return NGX_CONF_OK;
            };
            if main.groups.iter().any(|(n, _)| *n == name) {
                let Some(http) = Module::location_conf_mut(&*cf) else {
                    return NGX_CONF_ERROR;
                };
                if http.group_name.is_none() {
                    http.group_name = Some(Some(name));
                }
                return NGX_CONF_OK;
            }
            ngx_conf_log_error!(
                NGX_LOG_WARN,
                cf,
                "{} (\"wsgi_process_group {name};\")",
                OLD_DEFINITION
            );
            let defined = oxwsgi_core::daemon::options::GroupOptions::parse(&name, &[])
                .and_then(|defaults| main.define(name, defaults));
            match defined {
                Ok(()) => NGX_CONF_OK,
                Err(e) => {
                    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"wsgi_process_group\": {e}");
                    NGX_CONF_ERROR
                }
            }
        }
    })
}

/// Merges a location with its parents and builds its app.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    guard::entry("merging a location", crate::DIRECTIVE_PANICKED, || {
        // SAFETY: nginx passes this module's location confs (created by
        // create_loc_conf) of the parent and of this block.
        let (prev, conf) = unsafe { (&*prev.cast::<LocConf>(), &mut *conf.cast::<LocConf>()) };
        conf.inherit(prev);
        if conf.app.is_some() {
            return NGX_CONF_OK;
        }
        // SAFETY: merging runs inside the http block, whose main conf exists.
        let Some(main) = (unsafe { Module::main_conf_mut(&*cf) }) else {
            return NGX_CONF_ERROR;
        };
        let options = match conf.app_options(main.threads()) {
            None => return NGX_CONF_OK,
            Some(Ok(options)) => options,
            Some(Err(e)) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"wsgi_app\": {e}");
                return NGX_CONF_ERROR;
            }
        };
        let names: Vec<&str> = main.groups.iter().map(|(n, _)| n.as_str()).collect();
        let group = match conf.group_of(&names) {
            Ok(g) => g,
            Err(e) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{e}");
                return NGX_CONF_ERROR;
            }
        };
        let app = Arc::new(App::new(options));
        match group {
            // Only the workers' own apps start in them.
            None => main.apps.push(app.clone()),
            Some(g) => {
                let o = app.options();
                main.group_mounts.push((
                    g,
                    oxwsgi_core::daemon::spec::Mount {
                        target: o.spec.target(),
                        callable: o.spec.callable.clone(),
                        mount: o.mount.clone(),
                    },
                ));
            }
        }
        conf.app = Some(app);
        conf.group = group;
        NGX_CONF_OK
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use oxwsgi_core::AppSource;

    fn location(prefix: &str, target: &str) -> LocConf {
        LocConf {
            target: Some(target.into()),
            location_prefix: Some(prefix.into()),
            ..LocConf::default()
        }
    }

    #[test]
    fn a_location_inherits_settings_but_never_the_app() {
        let http = LocConf {
            target: Some("/srv/other.py".into()),
            script_name: Some("/other".into()),
            callable: Some("app".into()),
            gzip: Some(true),
            inflate: Some(true),
            inflate_max: Some(5),
            body_buffer: Some(1 << 20),
            ..LocConf::default()
        };
        let mut loc = LocConf {
            gzip: Some(false),
            ..LocConf::default()
        };
        loc.inherit(&http);
        assert!(loc.target.is_none() && loc.script_name.is_none());
        assert_eq!(loc.callable.as_deref(), Some("app"));
        assert_eq!(loc.gzip, Some(false), "the location's own value wins");
        assert_eq!((loc.inflate, loc.inflate_max), (Some(true), Some(5)));
        assert_eq!(loc.body_buffer(), 1 << 20);
        assert_eq!(
            LocConf::default().body_buffer(),
            crate::request::body::DEFAULT_BODY_BUFFER as usize
        );
        assert!(loc.app_options(8).is_none(), "no wsgi_app, no app");
    }

    #[test]
    fn the_app_is_mounted_at_the_script_name_or_the_location() {
        let loc = location("/app", "/srv/site/wsgi.py");
        let o = loc.app_options(8).unwrap().unwrap();
        assert_eq!(o.mount, "/app");
        assert_eq!(o.spec.source, AppSource::Script("/srv/site/wsgi.py".into()));
        assert_eq!(o.spec.callable, "application");
        assert!(o.multithread && o.multiprocess);
        assert!(!o.gzip && !o.inflate_request);
        assert_eq!(o.inflate_max, oxwsgi_core::app::DEFAULT_INFLATE_MAX);

        let loc = LocConf {
            script_name: Some(String::new()),
            ..location("~ ^/x", "pkg.mod:make")
        };
        let o = loc.app_options(1).unwrap().unwrap();
        assert_eq!(o.mount, "", "wsgi_script_name overrides the location");
        assert_eq!(o.spec.callable, "make");
        assert!(!o.multithread, "one thread: wsgi.multithread is False");
    }

    #[test]
    fn an_inherited_callable_that_is_no_identifier_names_the_mistake() {
        let mut loc = location("/", "/srv/site/wsgi.py");
        loc.inherit(&LocConf {
            callable: Some("not-a-name".into()),
            ..LocConf::default()
        });
        let e = loc.app_options(8).unwrap().unwrap_err();
        assert!(e.contains("not-a-name"), "{e}");
    }

    #[test]
    fn a_location_runs_in_the_group_it_inherits_unless_off() {
        let server = LocConf {
            group_name: Some(Some("site".into())),
            ..LocConf::default()
        };
        let mut loc = location("/", "/srv/site/wsgi.py");
        loc.inherit(&server);
        assert_eq!(loc.group_of(&["other", "site"]).unwrap(), Some(1));
        let e = loc.group_of(&["other"]).unwrap_err();
        assert!(e.contains("no wsgi_daemon_process defines \"site\""), "{e}");

        let mut off = LocConf {
            group_name: Some(None),
            ..location("/", "/srv/site/wsgi.py")
        };
        off.inherit(&server);
        assert_eq!(
            off.group_of(&["site"]).unwrap(),
            None,
            "wsgi_process_group off"
        );

        let mut timed = LocConf {
            request_timeout: Some(Some(Duration::from_secs(5))),
            ..location("/", "/srv/site/wsgi.py")
        };
        timed.inherit(&server);
        let e = timed.group_of(&["site"]).unwrap_err();
        assert!(
            e.contains("wsgi_request_timeout") && e.contains("request_timeout="),
            "{e}"
        );
        assert_eq!(parse_group("off").unwrap(), None);
        assert!(parse_group("").is_err());
    }

    #[test]
    fn a_directive_is_set_once() {
        let mut slot = None;
        assert!(set_once(&mut slot, 1));
        assert!(!set_once(&mut slot, 2), "a duplicate is refused");
        assert_eq!(slot, Some(1));
    }
}

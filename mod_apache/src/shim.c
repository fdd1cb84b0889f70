/* The parts of mod_oxwsgi that Apache defines with C macros: the directive
 * table and logging tagged with the module's index. Everything else is Rust. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "http_request.h"
#include "mod_auth.h"

/* mod_wsgi's module name: log lines say [wsgi:...], LogLevel wsgi:debug. */
APLOG_USE_MODULE(wsgi);

extern const char *oxwsgi_cmd_script_alias(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_python_home(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_other(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_python_path(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_callable(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_flag(cmd_parms *, void *, int);
extern const char *oxwsgi_cmd_script_alias_match(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_import_script(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_application_group(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_trusted_proxy_headers(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_trusted_proxies(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_request_timeout(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_daemon_process(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_process_group(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_socket_prefix(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_drain_time(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_python_setting(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_auth_script(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_dispatch_script(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_restrict_process(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_map_head_to_get(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_handler_script(cmd_parms *, void *, const char *);
extern int oxwsgi_check_password(request_rec *r, const char *user, const char *password);
extern int oxwsgi_check_group(request_rec *r, const char *require_args);
extern int oxwsgi_get_realm_hash(request_rec *r, const char *user, const char *realm,
                                 char **rethash);

const command_rec oxwsgi_cmds[] = {
    AP_INIT_RAW_ARGS("WSGIScriptAlias", oxwsgi_cmd_script_alias, NULL, RSRC_CONF,
                     "a URL path, the WSGI script that serves it, and options "
                     "(process-group=, application-group=, callable-object=)"),
    AP_INIT_RAW_ARGS("WSGIScriptAliasMatch", oxwsgi_cmd_script_alias_match, NULL, RSRC_CONF,
                     "a URL regex, the WSGI script path ($1... substituted), and options"),
    AP_INIT_RAW_ARGS("WSGIImportScript", oxwsgi_cmd_import_script, NULL, RSRC_CONF,
                     "a WSGI script to load when a child starts"),
    AP_INIT_TAKE1("WSGIPythonHome", oxwsgi_cmd_python_home, NULL, RSRC_CONF,
                  "a virtualenv or Python prefix"),
    AP_INIT_TAKE1("WSGIPythonPath", oxwsgi_cmd_python_path, NULL, RSRC_CONF,
                  "extra module directories, separated by ':'"),
    AP_INIT_TAKE1("WSGIPythonOptimize", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "Python's optimisation level (-O): 0, 1 or 2"),
    AP_INIT_TAKE1("WSGIDontWriteBytecode", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "On: Python writes no .pyc files (-B)"),
    AP_INIT_TAKE1("WSGIPythonHashSeed", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "'random' or the seed of Python's str hashes (PYTHONHASHSEED)"),
    AP_INIT_TAKE1("WSGIPythonWarnings", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "a warnings filter, as Python's -W takes it"),
    AP_INIT_TAKE1("WSGIRestrictStdin", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "On: any use of sys.stdin raises OSError"),
    AP_INIT_TAKE1("WSGIRestrictStdout", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "On: any use of sys.stdout raises OSError (Off: it goes to the error log)"),
    AP_INIT_TAKE1("WSGIRestrictSignal", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "Off: apps may install signal handlers (On: signal.signal() is ignored, logged)"),
    AP_INIT_TAKE1("WSGICallableObject", oxwsgi_cmd_callable, NULL, OR_FILEINFO,
                  "the name of the WSGI callable (default: application)"),
    /* Contexts as mod_wsgi's: what a tenant's .htaccess may set (FileInfo)
     * is per directory; what picks a process group is not. */
    AP_INIT_FLAG("WSGIPassAuthorization", oxwsgi_cmd_flag, NULL, OR_FILEINFO,
                 "pass the Authorization header to the app as HTTP_AUTHORIZATION"),
    AP_INIT_FLAG("WSGIErrorOverride", oxwsgi_cmd_flag, NULL, OR_FILEINFO,
                 "daemon mode: an error status from the app gets Apache's error page (ErrorDocument)"),
    AP_INIT_FLAG("WSGIChunkedRequest", oxwsgi_cmd_flag, NULL, OR_FILEINFO,
                 "accept chunked request bodies (411 otherwise)"),
    AP_INIT_FLAG("WSGIScriptReloading", oxwsgi_cmd_flag, NULL, RSRC_CONF | ACCESS_CONF,
                 "reload a script when its file changes"),
    AP_INIT_RAW_ARGS("WSGITrustedProxyHeaders", oxwsgi_cmd_trusted_proxy_headers, NULL, OR_FILEINFO,
                     "the proxy headers environ trusts (X-Forwarded-For, X-Forwarded-Proto, ...)"),
    AP_INIT_RAW_ARGS("WSGITrustedProxies", oxwsgi_cmd_trusted_proxies, NULL, OR_FILEINFO,
                     "the addresses (or ADDRESS/BITS) of the trusted proxies"),
    AP_INIT_TAKE1("WSGIApplicationGroup", oxwsgi_cmd_application_group, NULL, RSRC_CONF | ACCESS_CONF,
                  "the interpreter an app runs in (oxwsgi has one per process)"),
    AP_INIT_TAKE1("WSGIRequestTimeout", oxwsgi_cmd_request_timeout, NULL, RSRC_CONF,
                  "how long an app may take for a request (e.g. 30s; off)"),
    AP_INIT_RAW_ARGS("WSGIDaemonProcess", oxwsgi_cmd_daemon_process, NULL, RSRC_CONF,
                     "a process group: NAME option=value ..."),
    AP_INIT_TAKE1("WSGIProcessGroup", oxwsgi_cmd_process_group, NULL, ACCESS_CONF | RSRC_CONF,
                  "the process group that runs the app (%{GLOBAL}: embedded)"),
    AP_INIT_TAKE1("WSGISocketPrefix", oxwsgi_cmd_socket_prefix, NULL, RSRC_CONF,
                  "where the process groups' sockets go"),
    AP_INIT_TAKE1("WSGIDrainTime", oxwsgi_cmd_drain_time, NULL, RSRC_CONF,
                  "on a graceful stop, readiness answers 503 this long first (e.g. 5s; off)"),
    AP_INIT_RAW_ARGS("WSGIAuthUserScript", oxwsgi_cmd_auth_script, NULL, OR_AUTHCFG,
                     "the script whose check_password() AuthBasicProvider wsgi asks"),
    AP_INIT_RAW_ARGS("WSGIAuthGroupScript", oxwsgi_cmd_auth_script, NULL, OR_AUTHCFG,
                     "the script whose groups_for_user() Require wsgi-group asks"),
    AP_INIT_RAW_ARGS("WSGIAccessScript", oxwsgi_cmd_auth_script, NULL, OR_AUTHCFG,
                     "the script whose allow_access() lets a client in, or not"),
    AP_INIT_RAW_ARGS("WSGIDispatchScript", oxwsgi_cmd_dispatch_script, NULL,
                     ACCESS_CONF | RSRC_CONF,
                     "a script whose process_group(), application_group() and "
                     "callable_object() choose where each request runs"),
    AP_INIT_RAW_ARGS("WSGIRestrictProcess", oxwsgi_cmd_restrict_process, NULL,
                     ACCESS_CONF | RSRC_CONF,
                     "the process groups (%{GLOBAL}: Apache's children) that may serve here"),
    AP_INIT_TAKE1("WSGIMapHEADToGET", oxwsgi_cmd_map_head_to_get, NULL, OR_FILEINFO,
                  "Off | On | Auto: whether apps see GET for HEAD (Auto: when an output "
                  "filter may change the body)"),
    AP_INIT_RAW_ARGS("WSGIHandlerScript", oxwsgi_cmd_handler_script, NULL,
                     ACCESS_CONF | RSRC_CONF,
                     "NAME SCRIPT [options]: the Apache handler NAME served by SCRIPT's "
                     "handle_request"),
    AP_INIT_FLAG("WSGIGroupAuthoritative", oxwsgi_cmd_flag, NULL, OR_AUTHCFG,
                 "accepted, as mod_wsgi does under Apache 2.4, where Require decides"),
    AP_INIT_FLAG("WSGIEnableSendfile", oxwsgi_cmd_flag, NULL, OR_FILEINFO,
                 "accepted: wsgi.file_wrapper follows Apache's EnableSendfile"),
    AP_INIT_FLAG("WSGIIgnoreActivity", oxwsgi_cmd_flag, NULL, OR_FILEINFO,
                 "accepted: every request counts as a daemon's activity"),
    AP_INIT_FLAG("WSGIPassApacheRequest", oxwsgi_cmd_flag, NULL, RSRC_CONF | ACCESS_CONF,
                 "Off only: oxwsgi has no Apache request object for apps"),
    AP_INIT_FLAG("WSGICaseSensitivity", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "Off: %{RESOURCE} group names use the mount in lower case"),
    AP_INIT_FLAG("WSGILazyInitialization", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "accepted: Python always starts in the children"),
    AP_INIT_FLAG("WSGIDestroyInterpreter", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "accepted: interpreters end with their process, after their atexit handlers"),
    AP_INIT_FLAG("WSGISocketRotation", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "accepted: a group's socket is its generation's"),
    AP_INIT_FLAG("WSGIVerboseDebugging", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "accepted: LogLevel wsgi:debug traces requests"),
    AP_INIT_FLAG("WSGIServerMetrics", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "accepted: the status page (SetHandler wsgi-status) has the figures"),
    AP_INIT_TAKE1("WSGIAcceptMutex", oxwsgi_cmd_other, NULL, RSRC_CONF,
                  "accepted: oxwsgi's daemons need no accept mutex"),
    AP_INIT_TAKE1("WSGIPythonEggs", oxwsgi_cmd_other, NULL, RSRC_CONF,
                  "refused: Python eggs' cache (set PYTHON_EGG_CACHE in envvars)"),
    AP_INIT_TAKE1("WSGINewRelicConfigFile", oxwsgi_cmd_other, NULL, RSRC_CONF,
                  "refused: initialise the New Relic agent in the WSGI script"),
    AP_INIT_TAKE1("WSGINewRelicEnvironment", oxwsgi_cmd_other, NULL, RSRC_CONF,
                  "refused: initialise the New Relic agent in the WSGI script"),
    AP_INIT_TAKE1("WSGISwitchInterval", oxwsgi_cmd_python_setting, NULL, RSRC_CONF,
                  "seconds: sys.setswitchinterval() in Apache's children (mod_wsgi 6)"),
    AP_INIT_TAKE1("WSGIFreeThreading", oxwsgi_cmd_other, NULL, RSRC_CONF,
                  "mod_wsgi 6: refused (Debian's Python has the GIL); Off is taken"),
    AP_INIT_TAKE1("WSGIPerInterpreterGIL", oxwsgi_cmd_other, NULL, RSRC_CONF,
                  "mod_wsgi 6: refused (application groups share the GIL); Off is taken"),
    AP_INIT_RAW_ARGS("<WSGIInterpreterOptions", oxwsgi_cmd_other, NULL, RSRC_CONF,
                     "mod_wsgi 6: refused (application groups share the GIL)"),
    AP_INIT_RAW_ARGS("WSGITelemetryService", oxwsgi_cmd_other, NULL, RSRC_CONF,
                     "mod_wsgi 6: refused (see the status page and metrics)"),
    AP_INIT_RAW_ARGS("WSGITelemetryOptions", oxwsgi_cmd_other, NULL, RSRC_CONF,
                     "mod_wsgi 6: refused (see the status page and metrics)"),
    AP_INIT_RAW_ARGS("WSGISlowRequests", oxwsgi_cmd_other, NULL, RSRC_CONF,
                     "mod_wsgi 6: refused (see the status page and metrics)"),
    AP_INIT_FLAG("WSGIRestrictEmbedded", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "no Python in Apache's children: every app runs in a process group"),
    { NULL }
};

/* The module's own configuration in a per-directory vector. */
void *oxwsgi_dir_config(const ap_conf_vector_t *cv)
{
    return ap_get_module_config(cv, &wsgi_module);
}

/* Whether the server logs the module's debug lines (LogLevel wsgi:debug). */
int oxwsgi_logs_debug(const server_rec *s)
{
    return APLOG_IS_LEVEL(s, APLOG_DEBUG);
}

void oxwsgi_log(int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, ap_server_conf, "%s", msg);
}

void oxwsgi_log_r(const request_rec *r, int level, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", msg);
}

/* The auth providers (mod_wsgi's names): `AuthBasicProvider wsgi` and
 * `Require wsgi-group`, answered by the auth scripts (auth.rs). */
static authn_status oxwsgi_authn_check_password(request_rec *r, const char *user,
                                                const char *password)
{
    return (authn_status)oxwsgi_check_password(r, user, password);
}

static authn_status oxwsgi_authn_get_realm_hash(request_rec *r, const char *user,
                                                const char *realm, char **rethash)
{
    return (authn_status)oxwsgi_get_realm_hash(r, user, realm, rethash);
}

static const authn_provider oxwsgi_authn_provider = {
    &oxwsgi_authn_check_password,
    &oxwsgi_authn_get_realm_hash,
};

static authz_status oxwsgi_authz_check_group(request_rec *r, const char *require_args,
                                             const void *parsed)
{
    (void)parsed;
    return (authz_status)oxwsgi_check_group(r, require_args);
}

static const authz_provider oxwsgi_authz_provider = {
    &oxwsgi_authz_check_group,
    NULL,
};

void oxwsgi_register_auth_providers(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHN_PROVIDER_GROUP, "wsgi", AUTHN_PROVIDER_VERSION,
                              &oxwsgi_authn_provider, AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "wsgi-group", AUTHZ_PROVIDER_VERSION,
                              &oxwsgi_authz_provider, AP_AUTH_INTERNAL_PER_CONF);
}

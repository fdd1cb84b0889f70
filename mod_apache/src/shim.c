/* The parts of mod_oxwsgi that Apache defines with C macros: the directive
 * table and logging tagged with the module's index. Everything else is Rust. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"

/* mod_wsgi's module name: log lines say [wsgi:...], LogLevel wsgi:debug. */
APLOG_USE_MODULE(wsgi);

extern const char *oxwsgi_cmd_script_alias(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_python_home(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_python_path(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_callable(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_flag(cmd_parms *, void *, int);
extern const char *oxwsgi_cmd_script_alias_match(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_import_script(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_application_group(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_request_timeout(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_daemon_process(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_process_group(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_socket_prefix(cmd_parms *, void *, const char *);
extern const char *oxwsgi_cmd_python_setting(cmd_parms *, void *, const char *);

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
    AP_INIT_FLAG("WSGIRestrictEmbedded", oxwsgi_cmd_flag, NULL, RSRC_CONF,
                 "no Python in Apache's children: every app runs in a process group"),
    { NULL }
};

void oxwsgi_log(int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, ap_server_conf, "%s", msg);
}

void oxwsgi_log_r(const request_rec *r, int level, const char *msg)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s", msg);
}

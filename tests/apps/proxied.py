"""What environ says of the client, the host and the scheme: one line per
key, '-' when absent (for WSGITrustedProxyHeaders tests)."""

KEYS = [
    "REMOTE_ADDR", "wsgi.url_scheme", "HTTPS", "HTTP_HOST", "SERVER_NAME",
    "SERVER_PORT", "SCRIPT_NAME", "mod_wsgi.mount_point",
    "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_X_CLIENT_IP",
    "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL", "HTTP_X_FORWARDED_HOST",
    "HTTP_X_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_SCRIPT_NAME",
]


def application(environ, start_response):
    body = "".join("%s=%s\n" % (k, environ.get(k, "-")) for k in KEYS)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]

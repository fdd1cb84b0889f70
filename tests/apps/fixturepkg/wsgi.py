"""A module app, loaded as fixturepkg.wsgi:app."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"module app at " + environ["SCRIPT_NAME"].encode() + b"|" + environ["PATH_INFO"].encode()]

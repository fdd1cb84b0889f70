"""The scripts a mod_wsgi configuration may route requests with, in one
file: a WSGI app that says where it ran (`application`, `other`), a dispatch
script (WSGIDispatchScript: `process_group`, `application_group`,
`callable_object`, told what to answer by the query string) and a handler
script (WSGIHandlerScript: `handle_request`, serving the file asked for)."""

import os
from urllib.parse import parse_qs


def _where(environ, name):
    return "%s pg=%s ag=%s method=%s file=%s\n" % (
        name,
        environ.get("mod_wsgi.process_group"),
        environ.get("mod_wsgi.application_group"),
        environ["REQUEST_METHOD"],
        os.path.basename(environ.get("SCRIPT_FILENAME", "")),
    )


def _answer(environ, start_response, body):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Method", environ["REQUEST_METHOD"]),
        ],
    )
    return [body]


def application(environ, start_response):
    return _answer(environ, start_response, _where(environ, "application").encode())


def other(environ, start_response):
    return _answer(environ, start_response, _where(environ, "other").encode())


def _asked(environ, key):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "fail" in query:
        raise RuntimeError("the dispatch script failed on purpose")
    return query.get(key, [None])[0]


def process_group(environ):
    return _asked(environ, "pg")


def application_group(environ):
    return _asked(environ, "ag")


def callable_object(environ):
    return _asked(environ, "callable")


def handle_request(environ, start_response):
    with open(environ["SCRIPT_FILENAME"], "rb") as f:
        page = f.read()
    return _answer(environ, start_response, _where(environ, "handler").encode() + page)

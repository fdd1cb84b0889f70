"""A site's WSGI script, mounted twice (site_a/wsgi.py and site_b/wsgi.py
are links to it) as two projects are: each imports `conf` from its own
directory, as two Django sites import their own settings. In one
interpreter the second site gets the first one's `conf`; in application
groups of their own each gets its own."""
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import conf  # noqa: E402  (the site's own, found through HERE)


def _group():
    try:
        import mod_wsgi
    except ImportError:
        return "-"
    return repr(mod_wsgi.application_group)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/refuse":
        # An extension module that refuses sub-interpreters (its path is
        # given by the test).
        import importlib
        importlib.import_module(environ["QUERY_STRING"])
    if path == "/spin":
        import oxwsgi
        try:
            while True:
                pass
        except oxwsgi.RequestTimeout:
            raise
    conf.HITS += 1
    body = "site=%s environ=%r module=%s hits=%d threads=%d\n" % (
        conf.NAME,
        environ.get("mod_wsgi.application_group"),
        _group(),
        conf.HITS,
        threading.active_count(),
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]

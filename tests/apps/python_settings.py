"""The interpreter settings an app runs under (WSGIPython* directives)."""
import json
import sys


def application(environ, start_response):
    info = {
        "optimize": sys.flags.optimize,
        "dont_write_bytecode": sys.dont_write_bytecode,
        "warnoptions": sys.warnoptions,
        "hash": hash("oxwsgi"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info, sort_keys=True).encode()]

"""What `import mod_wsgi` tells an app (mod_wsgi's module, or oxwsgi's)."""
import json

import mod_wsgi


def application(environ, start_response):
    info = {
        "process_group": mod_wsgi.process_group,
        "application_group": mod_wsgi.application_group,
        "maximum_processes": mod_wsgi.maximum_processes,
        "threads_per_process": mod_wsgi.threads_per_process,
        "version_is_a_triple": len(mod_wsgi.version) == 3,
        "environ_group": environ.get("mod_wsgi.process_group"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info, sort_keys=True).encode()]

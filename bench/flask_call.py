"""One Flask request as a plain Python call, timed: run by interp_speed.sh in
Debian's static /usr/bin/python3.X and in the shared libpython3.X.so that
an embedding server (oxwsgi, mod_wsgi) uses."""
import sys, time
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from flask_app import application
import io
env = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "localhost",
       "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost", "wsgi.url_scheme": "http",
       "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
       "wsgi.multiprocess": False, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1"}
def sr(s, h, e=None): pass
def run(n):
    for _ in range(n):
        r = application(dict(env), sr)
        for x in r: pass
        if hasattr(r, "close"): r.close()
run(2000)
best = 1e9
for _ in range(5):
    t = time.perf_counter(); run(20000); best = min(best, time.perf_counter() - t)
print("%.2f us per call" % (best / 20000 * 1e6))

"""Paired run: two nginx (module A and B), both workers pinned to CPU 0, two wrk
at once on CPU 1; reports requests and worker CPU per request for each.

Usage: python3 bench/paired_nginx.py A.so B.so ROUNDS SECONDS [status]
(two builds of the nginx module, e.g. before and after a change; run it
again with A and B swapped: the two servers share CPU 0). The app is
examples/hello.py unless APP names another script, run with the virtualenv
PYTHON_HOME names (bench/flask_app.py needs build/out/venv-bench, which
`make bench` makes). URL and WRK_SCRIPT choose the request (an upload:
APP=bench/apps.py URL='/post?piece=65536' WRK_SCRIPT=bench/post.lua);
A_HTTP and B_HTTP add directives to A's and B's http block (one build
twice: B_HTTP='client_body_buffer_size 2m;').
"""
import os, subprocess, sys, tempfile, time, re
from pairing import REPO, round_line, wrk_round

def conf(d, port, module, app, status, extra=""):
    loc = "location = /status { wsgi_status; }" if status else ""
    home = os.environ.get("PYTHON_HOME")
    home = f"wsgi_python_home {home};" if home else ""
    home += " client_max_body_size 2m; " + extra
    return f"""load_module {module};
daemon off; worker_processes 1; worker_cpu_affinity 01; error_log {d}/error.log error; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}/body; {home}
  server {{ listen 127.0.0.1:{port}; location / {{ wsgi_app {app}; }} {loc} }} }}
"""


def worker(master):
    out = subprocess.check_output(["pgrep", "-P", str(master)]).split()
    return int(out[0])

def main():
    mods = [os.path.abspath(m) for m in sys.argv[1:3]]; rounds = int(sys.argv[3]); secs = sys.argv[4]; status = len(sys.argv) > 5
    app = os.environ.get("APP", f"{REPO}/examples/hello.py")
    procs = []
    for i, m in enumerate(mods):
        d = tempfile.mkdtemp(prefix=f"pair{i}-"); os.chmod(d, 0o777)
        extra = os.environ.get("AB"[i] + "_HTTP", "")
        open(f"{d}/nginx.conf", "w").write(conf(d, 19100 + i, m, app, status, extra))
        procs.append(subprocess.Popen(["/usr/sbin/nginx", "-p", d, "-c", f"{d}/nginx.conf"]))
    time.sleep(1.5)
    workers = [worker(p.pid) for p in procs]
    try:
        for r in range(rounds):
            res = wrk_round([19100, 19101], secs, [[w] for w in workers],
                            os.environ.get("URL", "/"), os.environ.get("WRK_SCRIPT"))
            print(round_line(r, res), flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()

main()

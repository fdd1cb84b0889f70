"""Paired Apache run: two apache2 (event MPM, one child of 8 threads, module A and B)
on CPU 0 at once, two wrk on CPU 1; requests and child CPU per request.

Usage: python3 bench/paired_apache.py A.so B.so ROUNDS SECONDS [URL]
(two builds of mod_oxwsgi, or one twice; swap them for a second run).
A_CONF and B_CONF in the environment add directives to A's and B's
configuration (e.g. A_CONF='WSGIApplicationGroup %{GLOBAL}' against the
default %{RESOURCE} sub-interpreter); APP names another script to mount at
/ (bench/flask_app.py, with A_CONF and B_CONF naming
'WSGIPythonHome build/out/venv-bench').
"""
import os, re, subprocess, sys, tempfile, time
from pairing import REPO, apache_conf, cpu_seconds as cpu


def conf(d, port, module, path, extra):
    return apache_conf(d, port, f"LoadModule wsgi_module {module}", f"WSGIScriptAlias / {path}\n{extra}")


mods = [os.path.abspath(m) for m in sys.argv[1:3]]; rounds = int(sys.argv[3]); secs = sys.argv[4]; url = sys.argv[5] if len(sys.argv) > 5 else "/"
app = os.environ.get("APP") or (f"{REPO}/bench/apps.py" if url != "/" else f"{REPO}/examples/hello.py")
procs = []
for i, m in enumerate(mods):
    d = tempfile.mkdtemp(prefix=f"apair{i}-"); os.chmod(d, 0o777)
    extra = os.environ.get("AB"[i] + "_CONF", "")
    open(f"{d}/httpd.conf", "w").write(conf(d, 19200 + i, m, app, extra))
    procs.append(subprocess.Popen(["taskset", "-c", "0", "apache2", "-f", f"{d}/httpd.conf", "-DFOREGROUND"]))
time.sleep(2)
kids = [int(subprocess.check_output(["pgrep", "-P", str(p.pid)]).split()[0]) for p in procs]
try:
    for r in range(rounds):
        before = [cpu(k) for k in kids]
        wrks = [subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{secs}s", f"http://127.0.0.1:{19200+i}{url}"],
                                 stdout=subprocess.PIPE, text=True) for i in range(2)]
        outs = [w.communicate()[0] for w in wrks]
        after = [cpu(k) for k in kids]
        res = []
        for i, o in enumerate(outs):
            n = int(re.search(r"(\d+) requests in", o).group(1))
            res.append((n, (after[i] - before[i]) / n * 1e6, "Non-2xx" in o or "Socket errors" in o))
        print(f"round {r}: " + "  |  ".join(f"{'AB'[i]}: {n} req, {c:.1f} us/req{' ERR' if e else ''}" for i, (n, c, e) in enumerate(res)), flush=True)
finally:
    for p in procs: p.terminate()
    for p in procs: p.wait()

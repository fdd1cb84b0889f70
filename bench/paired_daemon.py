"""Daemon mode, paired: two apache2 (event, 1 child of 8 threads) each with one
daemon group (processes=1 threads=8), oxwsgi and mod_wsgi, all on CPU 0; two
wrk at once on CPU 1; hello. Requests, and CPU per request of child and daemon.

Usage: python3 bench/paired_daemon.py ROUNDS SECONDS [A.so B.so] (needs
the release module, `cargo build --release -p oxwsgi-apache`, and
build/deps.sh's mod_wsgi). With two builds of oxwsgi's Apache module (each
with its oxwsgi_daemon.so beside it), it compares those instead: before and
after a change; run it again with A and B swapped.
"""
import os, re, subprocess, sys, tempfile, time
from pairing import REPO, apache_conf, cpu_seconds as cpu


def conf(d, port, load, extra=""):
    return apache_conf(d, port, load, f"""MaxKeepAliveRequests 0
WSGIDaemonProcess site processes=1 threads=8
WSGIProcessGroup site
{extra}
WSGIScriptAlias / {REPO}/examples/hello.py""")


loads = [("oxwsgi", f"LoadModule wsgi_module {REPO}/target/release/libmod_oxwsgi.so", ""),
         ("mod_wsgi", f"LoadModule wsgi_module {REPO}/build/out/mod_wsgi/usr/lib/apache2/modules/mod_wsgi.so", "WSGIApplicationGroup %{GLOBAL}")]
if len(sys.argv) > 4:
    loads = [(name, f"LoadModule wsgi_module {os.path.abspath(m)}", "")
             for name, m in zip("AB", sys.argv[3:5])]
procs = []
for i, (name, load, extra) in enumerate(loads):
    d = tempfile.mkdtemp(prefix=f"dpair{i}-"); os.chmod(d, 0o777)
    open(f"{d}/httpd.conf", "w").write(conf(d, 19400 + i, load, extra))
    procs.append(subprocess.Popen(["taskset", "-c", "0", "apache2", "-f", f"{d}/httpd.conf", "-DFOREGROUND"]))
time.sleep(3)
kids = []
for p in procs:
    ks = [int(x) for x in subprocess.check_output(["pgrep", "-P", str(p.pid)]).split()]
    kids.append(ks)
for i in range(2):
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{19400+i}/"])
try:
    for r in range(int(sys.argv[1])):
        before = [[cpu(k) for k in ks] for ks in kids]
        wrks = [subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{sys.argv[2]}s", f"http://127.0.0.1:{19400+i}/"],
                                 stdout=subprocess.PIPE, text=True) for i in range(2)]
        outs = [w.communicate()[0] for w in wrks]
        after = [[cpu(k) for k in ks] for ks in kids]
        line = []
        for i, o in enumerate(outs):
            n = int(re.search(r"(\d+) requests in", o).group(1))
            per = sum(a - b for a, b in zip(after[i], before[i])) / n * 1e6
            line.append(f"{loads[i][0]}: {n} req, {per:.0f} us/req (all processes)")
        print(f"round {r}: " + "  |  ".join(line), flush=True)
finally:
    for p in procs: p.terminate()
    for p in procs: p.wait()

"""Paired run of nginx process groups: two nginx (module A and B, each with
the daemon extension beside it), each serving hello from a group of one
daemon; the workers and daemons of both on CPU 0, two wrk at once on
CPU 1. Reports requests and the CPU per request of worker and daemon
together, for each.

Usage: python3 bench/paired_group.py A.so B.so ROUNDS SECONDS
(two release builds of the nginx module, e.g. before and after a change,
each with its oxwsgi_daemon.so beside it; run it again with A and B
swapped: the two servers share CPU 0).
"""
import os, re, subprocess, sys, tempfile, time
from pairing import REPO, round_line, wrk_round


def conf(d, port, module, app):
    return f"""load_module {module};
daemon off; worker_processes 1; worker_cpu_affinity 01; error_log {d}/error.log error; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}/body;
  wsgi_daemon_process hello processes=1 threads=8;
  server {{ listen 127.0.0.1:{port}; location / {{ wsgi_process_group hello; wsgi_app {app}; }} }} }}
"""


def descendants(pid):
    out = []
    for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out.append(int(c))
        out.extend(descendants(int(c)))
    return out


def main():
    mods = [os.path.abspath(m) for m in sys.argv[1:3]]
    rounds, secs = int(sys.argv[3]), sys.argv[4]
    app = f"{REPO}/examples/hello.py"
    procs = []
    for i, m in enumerate(mods):
        d = tempfile.mkdtemp(prefix=f"gpair{i}-"); os.chmod(d, 0o777)
        open(f"{d}/nginx.conf", "w").write(conf(d, 19200 + i, m, app))
        procs.append(subprocess.Popen(["taskset", "-c", "0", "/usr/sbin/nginx", "-p", d, "-c", f"{d}/nginx.conf"]))
    time.sleep(3)
    for i in range(2):
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{19200 + i}/"])
    # The daemons (children of the groups' manager) run on CPU 0 too.
    family = [descendants(p.pid) for p in procs]
    for pids in family:
        for pid in pids:
            subprocess.run(["taskset", "-a", "-p", "-c", "0", str(pid)], capture_output=True)
    try:
        for r in range(rounds):
            print(round_line(r, wrk_round([19200, 19201], secs, family)), flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


main()

#!/usr/bin/env python3
"""`make bench`: oxwsgi inside nginx against its ceiling and its peers.

Every server gets the same budget: CPU 0 (nginx: one worker, 8 Python
threads; oxwsgi's process group: one nginx worker and one daemon of 8
threads, running the venv's interpreter (the default) or, as "group on
libpython", nginx's embedded libpython (python_executable=off); uWSGI: one process, 8 threads, behind the same nginx via uwsgi_pass
on a unix socket; granian: one worker, 8 blocking threads). wrk
runs on CPU 1. The ceiling is nginx serving the same bytes itself. All
servers are up at once and the rounds are interleaved, so a noisy moment
hits everyone; the table gives medians over the rounds, and ratios against
the ceiling measured in the same run. Interpreters: oxwsgi in nginx's
workers, "group on libpython" and uWSGI's python3 plugin load the shared
libpython3.X.so; the group and granian run the venv's python3.X (on
Debian, the statically linked /usr/bin/python3.X).

The upload workloads run twice: against nginx's default
client_body_buffer_size and against 2m, which many sites set (the
"(2m buffer)" rows; granian has no nginx in front and serves both).

Usage: bench/run.py [--rounds N] [--duration SECONDS] [--only NAME,...] [--connections N]
(`make bench` installs the peers first; BENCH_KEEP=1 keeps the servers'
directory and logs.)
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(TOP, "bench")
# Inside another Debian release's root (make bench DIST=trixie), its own
# target directory and unpacked peers (build/dist-env.sh, build/deps.sh).
DIST = os.environ.get("OXWSGI_DIST", "")
OUT = os.path.join(TOP, "build/out")
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(TOP, "target")
MODULE = os.path.join(TARGET, "release/libngx_http_oxwsgi_module.so")


def unpacked(name):
    """build/out/NAME for this release (NAME-SUITE in another's root)."""
    return os.path.join(OUT, name + ("-" + DIST if DIST else ""))

SERVER_CPU, CLIENT_CPU = "0", "1"
THREADS = 8
HELLO = "<h1>Hello, web!</h1>"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (state, ppid, ...),
    or None when the process is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pids):
    """User and system CPU time of `pids`, in clock ticks."""
    stats = (proc_stat(p) for p in pids)
    return sum(int(f[11]) + int(f[12]) for f in stats if f)


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            fields = proc_stat(d)
            if fields:
                kids.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def bench_venv():
    """A venv with granian and Flask, cached by the requirements."""
    reqs = os.path.join(BENCH, "requirements.txt")
    key = open(reqs).read()
    venv = unpacked("venv-bench")
    stamp = os.path.join(venv, ".ready")
    if not os.path.exists(stamp) or open(stamp).read() != key:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.check_call(["/usr/bin/python3", "-m", "venv", venv])
        subprocess.check_call([os.path.join(venv, "bin/pip"), "install", "--quiet",
                               "--disable-pip-version-check", "-r", reqs])
        with open(stamp, "w") as f:
            f.write(key)
    return venv


class Server:
    """A server under test: started pinned to the server CPU."""

    def __init__(self, name, tmp, kind):
        self.name, self.tmp, self.procs, self.port = name, tmp, [], free_port()
        self.kind = kind

    def spawn(self, cmd, **kw):
        p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.tmp, self.name + ".log"), "ab"), **kw)
        self.procs.append(p)
        return p

    def nginx(self, server_body, http_extra="", modules=True):
        d = os.path.join(self.tmp, self.name)
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("%s\ndaemon off;\nworker_processes 1;\nerror_log %s/error.log warn;\n"
                    "pid %s/nginx.pid;\nevents { worker_connections 4096; }\n"
                    "http {\n access_log off;\n client_body_temp_path %s;\n %s\n"
                    " server {\n  listen 127.0.0.1:%d backlog=4096;\n  %s\n }\n}\n"
                    % ("load_module %s;" % MODULE if modules else "", d, d, d, http_extra,
                       self.port, server_body))
        return self.spawn(["/usr/sbin/nginx", "-p", d, "-c", conf])

    def ready(self):
        return wait_port(self.port, self.procs[-1])

    def pids(self):
        out = []
        for p in self.procs:
            out.extend(tree(p.pid))
        return out

    def memory_pids(self):
        """The processes that hold the app: an nginx's workers (not its
        master, nor the proxy in front of uWSGI), or the app server's tree."""
        first = self.procs[0]
        if self.kind == "nginx":
            return [p for p in tree(first.pid) if p != first.pid]
        if self.kind == "group":
            return [p for p in tree(first.pid) if comm(p) == "(wsgi:site)"]
        return tree(first.pid)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


# What a server variant adds to nginx's http block.
BIG_BODY_BUFFER = "client_body_buffer_size 2m;"


def static_server(tmp, name="nginx-static", http_extra=""):
    s = Server(name, tmp, "nginx")
    files = os.path.join(tmp, "static")
    os.makedirs(files, exist_ok=True)
    with open(os.path.join(files, "64k"), "wb") as f:
        f.write(b"x" * 65536)
    with open(os.path.join(files, "stream"), "wb") as f:
        f.write(b"y" * 102400)
    s.nginx("location = / { default_type text/html; return 200 '%s'; }\n"
            "location = /64k { alias %s/64k; }\n"
            "location = /stream { alias %s/stream; }\n"
            "location = /post { client_max_body_size 2m; return 200 '1048576'; }\n"
            % (HELLO, files, files), http_extra, modules=False)
    return s


def oxwsgi_server(tmp, name, app, venv, http_extra=""):
    s = Server(name, tmp, "nginx")
    s.nginx("location / { wsgi_app %s; client_max_body_size 2m; }" % app,
            "wsgi_threads %d;\n wsgi_python_home %s;\n %s" % (THREADS, venv, http_extra))
    return s


def group_server(tmp, name, app, venv, executable="auto", http_extra=""):
    """oxwsgi's process group: the app in a daemon behind the nginx worker
    (the shape of nginx + uWSGI, without the second server), running the
    venv's interpreter (`auto`) or nginx's embedded libpython (`off`)."""
    s = Server(name, tmp, "group")
    s.nginx("location / { wsgi_process_group site; wsgi_app %s; client_max_body_size 2m; }" % app,
            "wsgi_daemon_process site processes=1 threads=%d python_home=%s python_executable=%s;\n %s"
            % (THREADS, venv, executable, http_extra))
    return s


def uwsgi_server(tmp, name, app, venv, http_extra=""):
    s = Server(name, tmp, "uwsgi")
    sock = os.path.join(tmp, name + ".sock")
    s.spawn(["uwsgi", "--plugin", "python3", "--socket", sock, "--wsgi-file", app,
             "--processes", "1", "--threads", str(THREADS), "--virtualenv", venv,
             "--disable-logging", "--chmod-socket=666", "--buffer-size", "32768"])
    deadline = time.time() + 20
    while not os.path.exists(sock) and time.time() < deadline:
        time.sleep(0.05)
    s.nginx("location / { include /etc/nginx/uwsgi_params; uwsgi_pass unix:%s; "
            "client_max_body_size 2m; }" % sock, http_extra, modules=False)
    return s


def granian_server(tmp, name, app, venv):
    s = Server(name, tmp, "granian")
    module = os.path.splitext(os.path.basename(app))[0]
    s.spawn([os.path.join(venv, "bin/granian"), "--interface", "wsgi", "--host", "127.0.0.1",
             "--port", str(s.port), "--workers", "1", "--blocking-threads", str(THREADS),
             "--no-ws", "--log-level", "warning", "%s:application" % module],
            cwd=os.path.dirname(app))
    return s


def wrk(port, path, conns, duration, script=None):
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration, "--timeout", "30s",
           "--latency", "http://127.0.0.1:%d%s" % (port, path)]
    if script:
        cmd[5:5] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else 0.0
    # Error pages are fast: a server that answers them must not score.
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit("port %d answered %s requests to %s with errors: its numbers would mean nothing"
                 % (port, errors.group(1), path))
    return rps, p99


# Every server but the ceiling, in the table's order.
PEERS = ["oxwsgi", "group", "group-libpython", "uwsgi", "granian"]
NAMES = {"oxwsgi": "oxwsgi", "group": "oxwsgi group", "group-libpython": "group on libpython",
         "uwsgi": "uWSGI (+nginx)", "granian": "granian"}

WORKLOADS = [
    # name, path, connections, wrk script, servers ("apps", "flask", or
    # "apps-2m": the apps behind nginx with client_body_buffer_size 2m, as
    # many sites set it), has a static ceiling
    ("hello", "/", 64, None, "apps", True),
    ("64 KiB body", "/64k", 64, None, "apps", True),
    ("1 MiB POST", "/post", 16, os.path.join(BENCH, "post.lua"), "apps", True),
    ("1 MiB POST in 64 KiB reads", "/post?piece=65536", 16, os.path.join(BENCH, "post.lua"), "apps", True),
    ("1 MiB POST in 8 KiB reads", "/post?piece=8192", 16, os.path.join(BENCH, "post.lua"), "apps", True),
    ("1 MiB POST (2m buffer)", "/post", 16, os.path.join(BENCH, "post.lua"), "apps-2m", True),
    ("1 MiB POST in 64 KiB reads (2m buffer)", "/post?piece=65536", 16, os.path.join(BENCH, "post.lua"),
     "apps-2m", True),
    ("1 MiB POST in 8 KiB reads (2m buffer)", "/post?piece=8192", 16, os.path.join(BENCH, "post.lua"),
     "apps-2m", True),
    ("100-chunk stream", "/stream", 64, None, "apps", True),
    ("50 ms sleep", "/sleep", 64, None, "apps", False),
    ("Flask hello", "/", 64, None, "flask", True),
]


def bench_args(module):
    """The options of both benchmarks; exits when `module` is not built."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--connections", type=int, default=0,
                    help="wrk's connections for every workload (default: each workload's own)")
    args = ap.parse_args()
    if not os.path.exists(module):
        sys.exit("build the module first: make build")
    return args


def main():
    args = bench_args(MODULE)
    venv = bench_venv()
    tmp = tempfile.mkdtemp(prefix="oxwsgi-bench-")
    os.chmod(tmp, 0o777)
    apps = os.path.join(BENCH, "apps.py")
    flask = os.path.join(BENCH, "flask_app.py")
    servers = {
        "static": static_server(tmp),
        "oxwsgi": oxwsgi_server(tmp, "oxwsgi", apps, venv),
        "oxwsgi-flask": oxwsgi_server(tmp, "oxwsgi-flask", flask, venv),
        "group": group_server(tmp, "group", apps, venv),
        "group-flask": group_server(tmp, "group-flask", flask, venv),
        "group-libpython": group_server(tmp, "group-libpython", apps, venv, "off"),
        "group-libpython-flask": group_server(tmp, "group-libpython-flask", flask, venv, "off"),
        "uwsgi": uwsgi_server(tmp, "uwsgi", apps, venv),
        "uwsgi-flask": uwsgi_server(tmp, "uwsgi-flask", flask, venv),
        "granian": granian_server(tmp, "granian", apps, venv),
        "granian-flask": granian_server(tmp, "granian-flask", flask, venv),
        "static-2m": static_server(tmp, "nginx-static-2m", BIG_BODY_BUFFER),
        "oxwsgi-2m": oxwsgi_server(tmp, "oxwsgi-2m", apps, venv, BIG_BODY_BUFFER),
        "group-2m": group_server(tmp, "group-2m", apps, venv, http_extra=BIG_BODY_BUFFER),
        "group-libpython-2m": group_server(tmp, "group-libpython-2m", apps, venv, "off",
                                           BIG_BODY_BUFFER),
        "uwsgi-2m": uwsgi_server(tmp, "uwsgi-2m", apps, venv, BIG_BODY_BUFFER),
    }
    # granian has no nginx in front: the same server for both.
    servers["granian-2m"] = servers["granian"]
    try:
        for name, s in servers.items():
            if not s.ready():
                sys.exit("%s did not start; see %s" % (name, tmp))
        only = set(filter(None, args.only.split(",")))
        results = {}  # (workload, server) -> [(rps, p99)]
        for rnd in range(args.rounds):
            for wl, path, conns, script, app, has_static in WORKLOADS:
                if only and wl not in only:
                    continue
                suffix = {"apps": "", "flask": "-flask", "apps-2m": "-2m"}[app]
                peers = [p + suffix for p in PEERS]
                targets = (["static" + (suffix if suffix == "-2m" else "")] if has_static else []) + peers
                for t in targets:
                    # The CPU time of the processes that run the app (the
                    # group's daemon without the nginx worker in front):
                    # steadier than requests/s on a noisy machine.
                    pids = servers[t].memory_pids()
                    before = cpu_ticks(pids)
                    rps, p99 = wrk(servers[t].port, path, args.connections or conns, args.duration,
                                   script)
                    cpu_us = ((cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK") * 1e6
                              / max(rps * args.duration, 1))
                    results.setdefault((wl, t.removesuffix(suffix)), []).append((rps, p99, cpu_us))
                    print("round %d  %-17s %-8s %10.0f req/s  p99 %7.2f ms  CPU %6.1f us/req"
                          % (rnd + 1, wl, t, rps, p99, cpu_us), file=sys.stderr)
        memory = {name: rss_kib(s.memory_pids()) for name, s in servers.items()}
        for name, s in servers.items():
            if s.procs and s.procs[0].poll() is not None:
                sys.exit("%s stopped during the run; see %s" % (name, tmp))
    finally:
        for s in servers.values():
            s.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)

    med = lambda xs, i: statistics.median(x[i] for x in xs)
    lines = ["| workload | nginx static | " + " | ".join(NAMES[t] for t in PEERS) + " | "
             + " | ".join(NAMES[t] + " p99" for t in PEERS) + " |",
             "| --- " * (2 + 2 * len(PEERS)) + "|"]
    for wl, *_ in WORKLOADS:
        if (wl, "oxwsgi") not in results:
            continue
        st = results.get((wl, "static"))
        base = med(st, 0) if st else None
        cells = [wl, "%.0f" % base if base else "-"]
        for t in PEERS:
            v = med(results[(wl, t)], 0)
            cells.append("%.0f (%.2fx)" % (v, v / base) if base else "%.0f" % v)
        for t in PEERS:
            cells.append("%.1f ms" % med(results[(wl, t)], 1))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| group against | " + " | ".join(wl for wl, *_ in WORKLOADS
                                                  if (wl, "group") in results) + " |",
              "| --- " * (1 + sum(1 for wl, *_ in WORKLOADS if (wl, "group") in results)) + "|"]
    for other in ["uwsgi", "oxwsgi", "group-libpython", "granian"]:
        cells = ["%.2fx" % (med(results[(wl, "group")], 0) / med(results[(wl, other)], 0))
                 for wl, *_ in WORKLOADS if (wl, "group") in results]
        lines.append("| %s | %s |" % (NAMES[other], " | ".join(cells)))
    shown = [wl for wl, *_ in WORKLOADS if (wl, "group") in results]
    lines += ["", "| CPU per request (app processes) | " + " | ".join(shown) + " |",
              "| --- " * (1 + len(shown)) + "|"]
    for t in PEERS:
        lines.append("| %s | %s |" % (NAMES[t], " | ".join(
            "%.0f us" % med(results[(wl, t)], 2) for wl in shown)))
    lines += ["", "| memory (RSS after the run) | apps | apps, 2m body buffer | Flask |",
              "| --- | --- | --- | --- |"]
    for t in PEERS:
        lines.append("| %s | %.1f MiB | %.1f MiB | %.1f MiB |" % (
            NAMES[t], memory[t] / 1024, memory[t + "-2m"] / 1024, memory[t + "-flask"] / 1024))
    lines.append("")
    lines.append("(medians of %d rounds of %d s; requests/s, ratio to nginx static; "
                 "CPU and memory: the nginx worker, the group's daemon, the uWSGI process, granian's processes)" % (args.rounds, args.duration))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

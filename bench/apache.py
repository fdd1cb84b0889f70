#!/usr/bin/env python3
"""`make bench`, Apache half: oxwsgi inside Apache against Apache serving the
same bytes as static files (the ceiling) and Debian's mod_wsgi, in embedded
mode and in daemon mode (one group of 1 process x 8 threads; oxwsgi's daemon
runs the venv's interpreter, and again, as mod_wsgi's, Apache's embedded
libpython: python-executable=off), with the same
MPM (event, one child of 8 threads) on CPU 0 and wrk on CPU 1, all servers
up at once, rounds interleaved; medians over the rounds.

Usage: bench/apache.py [--rounds N] [--duration SECONDS] [--only NAME,...]
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (BENCH, TARGET, THREADS, Server, bench_args, bench_venv, cpu_ticks,  # noqa: E402
                 rss_kib, tree, unpacked, wrk, wait_port)

MODULE = os.path.join(TARGET, "release/libmod_oxwsgi.so")
# The release's Debian mod_wsgi, unpacked by build/deps.sh (see there).
MOD_WSGI = os.path.join(unpacked("mod_wsgi"), "usr/lib/apache2/modules/mod_wsgi.so")


class ApacheServer(Server):
    def __init__(self, name, tmp, load, body):
        super().__init__(name, tmp, "apache")
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)
        conf = os.path.join(d, "httpd.conf")
        mods = "/usr/lib/apache2/modules"
        with open(conf, "w") as f:
            f.write(f"""ServerRoot {d}
DefaultRuntimeDir {d}
PidFile {d}/httpd.pid
Listen 127.0.0.1:{self.port}
ServerName 127.0.0.1
User www-data
Group www-data
ErrorLog {d}/error.log
LogLevel warn
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
TypesConfig /etc/mime.types
{load}
StartServers 1
ServerLimit 1
ThreadsPerChild {THREADS}
MaxRequestWorkers {THREADS}
ThreadLimit {THREADS}
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
EnableSendfile On
DocumentRoot {d}
<Directory />
    Require all granted
</Directory>
{body}
""")
        self.conf = conf
        p = subprocess.Popen(["taskset", "-c", "0", "/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)

    def memory_pids(self):
        first = self.procs[0]
        return [p for p in tree(first.pid) if p != first.pid]

    def daemon_pids(self):
        return [p for p in self.memory_pids() if comm(p) == DAEMON_NAME]

    def child_pids(self):
        return [p for p in self.memory_pids() if comm(p) != DAEMON_NAME]


DAEMON_NAME = "(wsgi:bench)"


def comm(pid):
    """The name `ps` shows: oxwsgi sets the thread name (comm), mod_wsgi
    rewrites argv[0]."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace").strip()
        if argv0.startswith("(wsgi:"):
            return argv0
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


WORKLOADS = [
    # name, path, connections, wrk script, static path (None: no ceiling)
    # Embedded, each script runs in its own sub-interpreter (mod_wsgi's
    # default %{RESOURCE}, both modules); the second row in the main one.
    ("hello", "/app/", 64, None, "/static/hello.html"),
    ("hello in %{GLOBAL}", "/global/", 64, None, "/static/hello.html"),
    ("64 KiB body", "/app/64k", 64, None, "/static/64k.bin"),
    # One upload per thread, and twice that: with 16 connections half the
    # uploads wait in the kernel's socket buffers, which costs both modules
    # the same (the CPU column shows it).
    ("1 MiB POST", "/app/post", THREADS, os.path.join(BENCH, "post.lua"), None),
    ("1 MiB POST x16", "/app/post", 16, os.path.join(BENCH, "post.lua"), None),
    # Read as framework parsers read it (Django, Werkzeug: 64 KiB pieces).
    ("1 MiB POST in 64 KiB reads", "/app/post?piece=65536", THREADS, os.path.join(BENCH, "post.lua"), None),
    ("1 MiB POST in 8 KiB reads", "/app/post?piece=8192", THREADS, os.path.join(BENCH, "post.lua"), None),
    ("100-chunk stream", "/app/stream", 64, None, "/static/stream.bin"),
    ("50 ms sleep", "/app/sleep", 64, None, None),
    ("Flask hello", "/flask/", 64, None, "/static/hello.html"),
]


def main():
    args = bench_args(MODULE)
    if not os.path.exists(MOD_WSGI):
        sys.exit("mod_wsgi is missing: run build/deps.sh")
    tmp = tempfile.mkdtemp(prefix="oxwsgi-bench-apache-")
    os.chmod(tmp, 0o777)
    static = os.path.join(tmp, "static")
    os.makedirs(static)
    for name, data in [("hello.html", b"<h1>Hello, web!</h1>"), ("64k.bin", b"x" * 65536),
                       ("stream.bin", b"y" * 102400)]:
        with open(os.path.join(static, name), "wb") as f:
            f.write(data)
    apps = os.path.join(BENCH, "apps.py")
    flask = os.path.join(BENCH, "flask_app.py")
    # Both modules get the same venv (Flask) and the same two apps.
    alias = (f"Alias /static {static}\nWSGIPythonHome {bench_venv()}\n"
             f"WSGIScriptAlias /app {apps}\nWSGIScriptAlias /flask {flask}\nLimitRequestBody 0\n"
             f"WSGIScriptAlias /global {apps}\n<Location /global>\nWSGIApplicationGroup %{{GLOBAL}}\n</Location>")
    # Daemon mode: the same apps in one group of the child's size, Python
    # only in the group (the children proxy). The sockets go under each
    # server's own root: mod_wsgi's compiled-in directory (/var/run/apache2)
    # exists only once the system's Apache has run.
    daemon = (f"WSGISocketPrefix wsgi\nWSGIDaemonProcess bench processes=1 threads={THREADS} python-home={bench_venv()} "
              f"display-name=%{{GROUP}}\nWSGIProcessGroup bench\nWSGIApplicationGroup %{{GLOBAL}}\n"
              f"WSGIRestrictEmbedded On\n"
              f"WSGIScriptAlias /app {apps}\nWSGIScriptAlias /flask {flask}\nLimitRequestBody 0\n"
              f"WSGIScriptAlias /global {apps}")
    mod_alias = "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
    servers = {
        "static": ApacheServer("apache-static", tmp,
                               "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so",
                               f"Alias /static {static}"),
        "oxwsgi": ApacheServer("apache-oxwsgi", tmp,
                               "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
                               f"LoadModule wsgi_module {MODULE}", alias),
        "mod_wsgi": ApacheServer("apache-modwsgi", tmp,
                                 "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
                                 f"LoadModule wsgi_module {MOD_WSGI}", alias),
        "oxwsgi-daemon": ApacheServer("apache-oxwsgi-daemon", tmp,
                                      mod_alias + f"LoadModule wsgi_module {MODULE}", daemon),
        "mod_wsgi-daemon": ApacheServer("apache-modwsgi-daemon", tmp,
                                        mod_alias + f"LoadModule wsgi_module {MOD_WSGI}", daemon),
        # Like for like with mod_wsgi: the daemon on Apache's embedded
        # libpython instead of the venv's interpreter.
        "oxwsgi-daemon-libpython": ApacheServer(
            "apache-oxwsgi-daemon-libpython", tmp, mod_alias + f"LoadModule wsgi_module {MODULE}",
            daemon.replace("display-name=", "python-executable=off display-name=")),
    }
    try:
        for name, s in servers.items():
            if not wait_port(s.port, s.procs[-1]):
                sys.exit("%s did not start; see %s" % (name, tmp))
        only = set(filter(None, args.only.split(",")))
        results = {}
        for rnd in range(args.rounds):
            for wl, path, conns, script, static_path in WORKLOADS:
                if only and wl not in only:
                    continue
                runs = [(t, path) for t in ["oxwsgi", "mod_wsgi", "oxwsgi-daemon", "mod_wsgi-daemon",
                                            "oxwsgi-daemon-libpython"]]
                if static_path:
                    runs.insert(0, ("static", static_path))
                for t, p in runs:
                    server = servers[t]
                    children, daemons = server.child_pids(), server.daemon_pids()
                    before = (cpu_ticks(children), cpu_ticks(daemons))
                    rps, p99 = wrk(server.port, p, args.connections or conns, args.duration, script)
                    # The server's CPU per request: steadier than req/s on a
                    # noisy machine, and what the module costs; Apache's
                    # child and the daemon apart.
                    n = max(rps * args.duration, 1)
                    tick = os.sysconf("SC_CLK_TCK")
                    cpu_us = (cpu_ticks(children) - before[0]) / tick * 1e6 / n
                    daemon_us = (cpu_ticks(daemons) - before[1]) / tick * 1e6 / n
                    results.setdefault((wl, t), []).append((rps, p99, cpu_us, daemon_us))
                    print("round %d  %-17s %-15s %10.0f req/s  p99 %7.2f ms  CPU %7.1f + %5.1f us/req"
                          % (rnd + 1, wl, t, rps, p99, cpu_us, daemon_us), file=sys.stderr)
        memory = {name: rss_kib(s.child_pids()) for name, s in servers.items()}
        daemon_memory = {name: rss_kib(s.daemon_pids()) for name, s in servers.items() if s.daemon_pids()}
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = lambda xs, i: statistics.median(x[i] for x in xs)
    lines = ["| workload | Apache static | oxwsgi | mod_wsgi | oxwsgi p99 | mod_wsgi p99 "
             "| oxwsgi CPU/req | mod_wsgi CPU/req |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for wl, *_ in WORKLOADS:
        if (wl, "oxwsgi") not in results:
            continue
        st = results.get((wl, "static"))
        base = med(st, 0) if st else None
        cells = [wl, "%.0f" % base if base else "-"]
        for t in ["oxwsgi", "mod_wsgi"]:
            v = med(results[(wl, t)], 0)
            cells.append("%.0f (%.2fx)" % (v, v / base) if base else "%.0f" % v)
        for t in ["oxwsgi", "mod_wsgi"]:
            cells.append("%.1f ms" % med(results[(wl, t)], 1))
        for t in ["oxwsgi", "mod_wsgi"]:
            cells.append("%.0f us" % med(results[(wl, t)], 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| memory (RSS of the child after the run) | oxwsgi | mod_wsgi |", "| --- | --- | --- |",
              "| apps and Flask | %.1f MiB | %.1f MiB |" % (memory["oxwsgi"] / 1024, memory["mod_wsgi"] / 1024), "",
              "(medians of %d rounds of %d s; requests/s, ratio to Apache serving the same bytes as files; "
              "CPU/req: user+system time of the Apache child per request; "
              "event MPM, one child of %d threads)" % (args.rounds, args.duration, THREADS)]
    lines += ["", "Daemon mode (`WSGIDaemonProcess bench processes=1 threads=%d`, `WSGIRestrictEmbedded On`):" % THREADS, "",
              "| workload | oxwsgi daemon | mod_wsgi daemon | ratio | oxwsgi daemon on libpython | ratio "
              "| oxwsgi p99 | mod_wsgi p99 | oxwsgi CPU/req child + daemon | mod_wsgi CPU/req child + daemon |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for wl, *_ in WORKLOADS:
        if (wl, "oxwsgi-daemon") not in results:
            continue
        o, m = results[(wl, "oxwsgi-daemon")], results[(wl, "mod_wsgi-daemon")]
        lib = results[(wl, "oxwsgi-daemon-libpython")]
        lines.append("| %s | %.0f | %.0f | %.2fx | %.0f | %.2fx | %.1f ms | %.1f ms | %.0f + %.0f us | %.0f + %.0f us |" % (
            wl, med(o, 0), med(m, 0), med(o, 0) / med(m, 0), med(lib, 0), med(lib, 0) / med(m, 0),
            med(o, 1), med(m, 1), med(o, 2), med(o, 3), med(m, 2), med(m, 3)))
    lines += ["", "| memory after the run (RSS) | oxwsgi | mod_wsgi |", "| --- | --- | --- |",
              "| the daemon process (apps and Flask) | %.1f MiB | %.1f MiB |" % (
                  daemon_memory.get("oxwsgi-daemon", 0) / 1024, daemon_memory.get("mod_wsgi-daemon", 0) / 1024),
              "| the daemon on libpython (apps and Flask) | %.1f MiB | - |" % (
                  daemon_memory.get("oxwsgi-daemon-libpython", 0) / 1024),
              "| the Apache child proxying to it | %.1f MiB | %.1f MiB |" % (
                  memory["oxwsgi-daemon"] / 1024, memory["mod_wsgi-daemon"] / 1024)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

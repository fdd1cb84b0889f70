#!/usr/bin/env python3
"""`oxwsgi serve` against the hand-written configuration it replaces (the
`oxwsgi` server of bench/run.py: the same module, venv and threads), on
hello and Flask, and how long the command takes from its start to the
first answered request.

Both servers run on CPU 0 (the command's nginx inherits its affinity), wrk
on CPU 1; the rounds are interleaved; medians are reported.

Usage: bench/command.py [--rounds N] [--duration SECONDS] [--starts N]
(`make build` first; the venv is bench's, build/out/venv-bench.)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (BENCH, SERVER_CPU, TARGET, THREADS, Server, bench_venv, free_port,  # noqa: E402
                 oxwsgi_server, wrk)

COMMAND = os.path.join(TARGET, "release/oxwsgi")


def command_server(tmp, name, app, venv, extra=()):
    s = Server(name, tmp, "command")
    s.spawn([COMMAND, "serve", app, "--port", str(s.port), "--threads", str(THREADS),
             "--python-home", venv, "--log-level", "warn", *extra])
    return s


def first_answer(app, venv, extra=()):
    """Seconds from the command's start to its first 200."""
    port = free_port()
    t = time.monotonic()
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU, COMMAND, "serve", app, "--port", str(port),
                          "--python-home", venv, *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - t < 30:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t
            except OSError:
                time.sleep(0.005)
        sys.exit("the command did not answer within 30 s")
    finally:
        p.terminate()
        p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    if not os.path.exists(COMMAND):
        sys.exit("build the command first: make build")
    venv = bench_venv()
    apps = os.path.join(BENCH, "apps.py")
    flask = os.path.join(BENCH, "flask_app.py")

    starts = {}
    for label, app, extra in [("hello", apps, ()), ("hello, --group", apps, ("--group",)),
                              ("Flask", flask, ())]:
        starts[label] = [first_answer(app, venv, extra) for _ in range(args.starts)]

    tmp = tempfile.mkdtemp(prefix="oxwsgi-bench-command-")
    os.chmod(tmp, 0o777)
    servers = {
        ("hello", "hand-written"): oxwsgi_server(tmp, "hand-hello", apps, venv),
        ("hello", "oxwsgi serve"): command_server(tmp, "command-hello", apps, venv),
        ("Flask", "hand-written"): oxwsgi_server(tmp, "hand-flask", flask, venv),
        ("Flask", "oxwsgi serve"): command_server(tmp, "command-flask", flask, venv),
    }
    results = {}
    try:
        for key, s in servers.items():
            if not s.ready():
                sys.exit("%s did not start; see %s" % (key, tmp))
        for rnd in range(args.rounds):
            for key, s in servers.items():
                rps, p99 = wrk(s.port, "/", 64, args.duration)
                results.setdefault(key, []).append(rps)
                print("round %d  %-6s %-13s %9.0f req/s" % (rnd + 1, key[0], key[1], rps),
                      file=sys.stderr)
    finally:
        for s in servers.values():
            s.stop()

    print("| workload | hand-written configuration | oxwsgi serve | ratio |")
    print("| --- | --- | --- | --- |")
    for wl in ["hello", "Flask"]:
        hand = statistics.median(results[(wl, "hand-written")])
        cmd = statistics.median(results[(wl, "oxwsgi serve")])
        print("| %s | %.0f | %.0f | %.2f |" % (wl, hand, cmd, cmd / hand))
    print()
    print("| from the command to the first answer | median | slowest |")
    print("| --- | --- | --- |")
    for label, times in starts.items():
        print("| %s | %.0f ms | %.0f ms |" % (label, statistics.median(times) * 1000,
                                              max(times) * 1000))
    print()
    print("(requests/s: medians of %d interleaved rounds of %d s, 64 connections, %d Python "
          "threads; both embed Debian's libpython in one nginx worker, with bench's virtualenv; "
          "starts: %d each, until the first 200)"
          % (args.rounds, args.duration, THREADS, args.starts))


if __name__ == "__main__":
    main()

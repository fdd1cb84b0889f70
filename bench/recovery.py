"""How long each kind of process oxwsgi starts for an nginx process group
takes to come back after `kill -9`, under load, and what the load saw.

Usage: python3 bench/recovery.py [ROUNDS]   (make build first)

nginx (the release module) serves examples/hello.py from a group of 2
daemons of 4 threads; wrk keeps 16 connections busy. Each round kills one
process while wrk runs: a daemon (the manager replaces it), the manager
(its warden starts another, with new daemons), the warden (the manager
starts another). Recovery is from the kill until the replacement is there
(for the manager: with both of its daemons serving, their Python started).
"""
import os, re, statistics, subprocess, sys, tempfile, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(TOP, "target/release/libngx_http_oxwsgi_module.so")


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def children(pid, name):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if rest[0] != "Z" and int(rest[1]) == pid and comm(int(entry)) == name:
            out.append(int(entry))
    return out


def wait(what, f, limit=10.0):
    t = time.monotonic()
    while time.monotonic() - t < limit:
        v = f()
        if v:
            return v, time.monotonic() - t
        time.sleep(0.002)
    sys.exit(f"{what}: not within {limit} s")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    if not os.path.exists(MODULE):
        sys.exit("build the module first: make build")
    d = tempfile.mkdtemp(prefix="oxwsgi-recovery-")
    os.chmod(d, 0o755)
    port = 19300
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(f"""load_module {MODULE};
daemon off; worker_processes 1; error_log {d}/error.log info; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}/body;
  wsgi_daemon_process site processes=2 threads=4;
  server {{ listen 127.0.0.1:{port}; location / {{ wsgi_process_group site; wsgi_app {TOP}/examples/hello.py; }} }} }}
""")
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", d, "-c", f"{d}/nginx.conf"])
    try:
        manager, _ = wait("the manager", lambda: (children(nginx.pid, "oxwsgi: groups") or [None])[0])
        warden, _ = wait("the warden", lambda: (children(manager, "oxwsgi: warden") or [None])[0])
        wait("the daemons", lambda: len(children(manager, "(wsgi:site)")) == 2)
        state = {"manager": manager, "warden": warden}

        def current_manager():
            m = state["manager"]
            if comm(m) == "oxwsgi: groups":
                return m
            found = children(state["warden"], "oxwsgi: groups")
            return found[0] if found else None

        results = {}
        for kind in ["daemon", "manager", "warden"]:
            for _ in range(rounds):
                wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d3s", f"http://127.0.0.1:{port}/"],
                                       stdout=subprocess.PIPE, text=True)
                time.sleep(1)
                m = current_manager()
                if kind == "daemon":
                    victim = children(m, "(wsgi:site)")[0]
                    os.kill(victim, 9)
                    _, took = wait("a new daemon", lambda: len(children(m, "(wsgi:site)")) == 2
                                   and victim not in children(m, "(wsgi:site)"))
                elif kind == "manager":
                    victim = m
                    os.kill(victim, 9)

                    def back():
                        new = current_manager()
                        return new if new and new != victim and len(children(new, "(wsgi:site)")) == 2 else None
                    new, took = wait("a new manager", back)
                    state["manager"] = new
                else:
                    victim = state["warden"] if children(state["warden"], "oxwsgi: groups") else \
                        children(m, "oxwsgi: warden")[0]
                    os.kill(victim, 9)
                    new, took = wait("a new warden",
                                     lambda: (children(m, "oxwsgi: warden") or [None])[0])
                    state["warden"] = new
                out = wrk.communicate()[0]
                n = int(re.search(r"(\d+) requests in", out).group(1))
                errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
                non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                failed = (sum(int(x) for x in errs.groups()) if errs else 0) + (int(non2xx.group(1)) if non2xx else 0)
                results.setdefault(kind, []).append((took * 1000, n, failed))
                time.sleep(0.5)
        print("| process killed | recovery, median | slowest | requests in the 3 s | failed |")
        print("| --- | --- | --- | --- | --- |")
        for kind, rs in results.items():
            print("| %s | %.0f ms | %.0f ms | %d | %d |" % (
                kind, statistics.median(r[0] for r in rs), max(r[0] for r in rs),
                statistics.median(r[1] for r in rs), sum(r[2] for r in rs)))
        print(f"\n({rounds} kills each, under wrk -c16)")
    finally:
        nginx.terminate()
        nginx.wait()


if __name__ == "__main__":
    main()

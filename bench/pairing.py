"""What the paired-run scripts share: the repository, a process's CPU time,
and an Apache configuration of one event-MPM child with 8 threads."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid):
    """User and system CPU time of process `pid`, in seconds."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def apache_conf(d, port, load, body):
    """An apache2 configuration in directory `d` on `port`: one event-MPM
    child of 8 threads, the module line `load`, then `body`."""
    return f"""ServerRoot {d}
DefaultRuntimeDir {d}
PidFile {d}/httpd.pid
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
User www-data
Group www-data
ErrorLog {d}/error.log
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
{load}
StartServers 1
ServerLimit 1
MinSpareThreads 1
MaxSpareThreads 8
ThreadsPerChild 8
MaxRequestWorkers 8
{body}
<Directory {REPO}>
Require all granted
</Directory>
"""


def wrk_round(ports, secs, pids_of, path="/", script=None):
    """One round: a wrk on CPU 1 against each of `ports` at once for `secs`
    seconds (GET `path`, or what the wrk `script` sends); for each, its
    requests, the CPU per request (us) of the processes `pids_of[i]`, and
    whether anything failed."""
    import re, subprocess
    before = [sum(cpu_seconds(p) for p in pids) for pids in pids_of]
    extra = ["-s", script] if script else []
    wrks = [subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{secs}s"] + extra +
                             [f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, text=True)
            for port in ports]
    outs = [w.communicate()[0] for w in wrks]
    after = [sum(cpu_seconds(p) for p in pids) for pids in pids_of]
    res = []
    for i, o in enumerate(outs):
        n = int(re.search(r"(\d+) requests in", o).group(1))
        err = "Non-2xx" in o or "Socket errors" in o
        res.append((n, (after[i] - before[i]) / n * 1e6, err))
    return res


def round_line(r, res):
    """A round's results as the paired scripts print them."""
    return f"round {r}: " + "  |  ".join(
        f"{'AB'[i]}: {n} req, {c:.1f} us/req{' ERR' if e else ''}" for i, (n, c, e) in enumerate(res))

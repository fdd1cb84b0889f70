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

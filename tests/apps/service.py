"""A service script (WSGIImportScript into a group of threads=0): it runs
when its daemon starts and says where it runs, in service.out beside it."""
import os
import threading
import time

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "service.out")


def _beat():
    while True:
        with open(OUT + ".tmp", "w") as f:
            f.write("%d %d" % (os.getpid(), os.getuid()))
        os.replace(OUT + ".tmp", OUT)
        time.sleep(0.2)


# Not a daemon thread: mod_wsgi's daemon of no threads ends its Python at
# once, which waits for the threads that are not daemons (oxwsgi's daemon
# runs until its group stops either way).
threading.Thread(target=_beat, daemon=False).start()

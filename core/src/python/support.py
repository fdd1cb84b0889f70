"""Helpers the core runs inside the embedded interpreter (module oxwsgi_support).

Loading a script and joining threads are easier to get right in Python, with
Python's own import machinery, than through the C API.
"""
import importlib.machinery
import importlib.util
import os
import sys
import threading
import time
# Imported with the interpreter, not when a stack is first wanted: the
# watchdog and the status page's sampler must not need the import lock,
# which under Python 3.11 a thread of another interpreter, waiting for the
# GIL, can hold for as long as a busy request runs.
import traceback


def load_script(path, name):
    """Executes the script at `path` as a fresh module called `name`.

    The script's directory goes first on sys.path, as when Python runs a
    script, so a project's wsgi.py can import the project beside it.
    """
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def callables(module):
    """Public callables a module defines itself, to suggest when the
    configured name is wrong."""
    found = []
    for key, value in vars(module).items():
        if key.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        if getattr(value, "__module__", None) not in (module.__name__, None):
            continue
        found.append(key)
    return sorted(found)


class Restricted:
    """sys.stdin or sys.stdout under WSGIRestrictStdin/WSGIRestrictStdout
    On: any use raises OSError naming the stream, as under mod_wsgi (a web
    server's stdin is no client's, and its stdout no terminal)."""

    def __init__(self, name):
        object.__setattr__(self, "_oxwsgi_name", name)

    def __getattribute__(self, attr):
        name = object.__getattribute__(self, "_oxwsgi_name")
        raise OSError("%s access restricted by mod_wsgi" % name)


def restrict_signals():
    """Makes signal.signal() a logged no-op: in a web server worker the
    server owns signals, and an app that took SIGTERM or SIGINT would break
    graceful shutdown (mod_wsgi does the same by default)."""
    import signal

    original = signal.signal

    def restricted(signum, handler):
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        print("oxwsgi: ignoring signal.signal(%s, %r): the web server owns signals"
              % (name, handler), file=sys.stderr)
        # As mod_wsgi's: the handler given comes back.
        return handler

    restricted.__wrapped__ = original
    signal.signal = restricted


def stack_of(ident):
    """The current Python stack of thread `ident`, innermost call last, as
    a list of lines ("" when the thread runs no Python now)."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return []
    return "".join(traceback.format_stack(frame)).rstrip("\n").split("\n")


def join_threads(timeout):
    """Waits up to `timeout` seconds in all for non-daemon threads; returns
    the names of those still running."""
    deadline = time.monotonic() + timeout
    main = threading.main_thread()
    for t in threading.enumerate():
        if t is main or t.daemon:
            continue
        left = deadline - time.monotonic()
        if left > 0:
            t.join(left)
    return [t.name for t in threading.enumerate()
            if t is not main and not t.daemon and t.is_alive()]

"""What an app may touch under WSGIRestrictStdin, WSGIRestrictStdout and
WSGIRestrictSignal: each use, and what became of it."""
import signal
import sys


def _try(use):
    try:
        use()
        return "ok"
    except Exception as e:  # noqa: BLE001 (the answer is the exception)
        return "%s:%s" % (type(e).__name__, e)


def application(environ, start_response):
    def handler(signum, frame):
        pass

    def install():
        signal.signal(signal.SIGUSR2, handler)
        if signal.getsignal(signal.SIGUSR2) is handler:
            signal.signal(signal.SIGUSR2, signal.SIG_DFL)
            raise RuntimeError("installed")

    body = "stdin=%s stdout=%s signal=%s\n" % (
        _try(lambda: sys.stdin.read()),
        _try(lambda: sys.stdout.write("restrict.py writes a line\n")),
        _try(install),
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]

"""One WSGI app with a route per behaviour that oxwsgi must get right.

The core's tests drive it through the in-memory adapter, and the end-to-end
tests through real nginx and Apache, so every behaviour is written once.
Routes are chosen by PATH_INFO; options come from the query string.
"""
import io
import json
import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs

CLOSED = {"count": 0}
LOCAL = threading.local()


def _opts(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _text(start_response, body, status="200 OK", ctype="text/plain; charset=utf-8"):
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", ctype)])
    return [data]


class Closing:
    """An iterable that counts close() calls; `fail_at` raises mid-way."""

    def __init__(self, chunks, fail_at=None):
        self.chunks = chunks
        self.fail_at = fail_at

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failure inside the response iterable")
            yield c

    def close(self):
        CLOSED["count"] += 1


def env(environ, start_response):
    out = {}
    for k, v in environ.items():
        out[k] = v if isinstance(v, (str, bool, int)) else repr(type(v).__name__)
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["_types"] = sorted({type(v).__name__ for k, v in environ.items()
                            if not k.startswith("wsgi.")})
    return _text(start_response, json.dumps(out, sort_keys=True), ctype="application/json")


def echo(environ, start_response):
    opts = _opts(environ)
    inp = environ["wsgi.input"]
    how = opts.get("how", "read")
    if how == "read":
        length = environ.get("CONTENT_LENGTH")
        data = inp.read(int(length)) if length and not environ.get("wsgi.input_terminated") else inp.read()
    elif how == "chunks":
        parts = []
        while True:
            block = inp.read(int(opts.get("size", "1000")))
            if not block:
                break
            parts.append(block)
        data = b"".join(parts)
    elif how == "lines":
        data = b"".join(inp.readlines())
    elif how == "iter":
        data = b"".join(line for line in inp)
    elif how == "readline":
        parts = []
        while True:
            line = inp.readline(int(opts.get("size", "-1")))
            if not line:
                break
            parts.append(line)
        data = b"".join(parts)
    else:
        raise ValueError(how)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("X-Received", str(len(data)))])
    return [data]


def consume(environ, start_response):
    """Reads the body in blocks, slowly if asked, and counts it."""
    opts = _opts(environ)
    delay = float(opts.get("delay", "0"))
    total = 0
    while True:
        block = environ["wsgi.input"].read(65536)
        if not block:
            break
        total += len(block)
        if delay:
            time.sleep(delay)
    return _text(start_response, str(total))


def stream(environ, start_response):
    opts = _opts(environ)
    n = int(opts.get("n", "5"))
    size = int(opts.get("size", "10"))
    delay = float(opts.get("delay", "0"))
    start_response("200 OK", [("Content-Type", "text/plain")])

    log = opts.get("log")

    def gen():
        for i in range(n):
            if delay and i:
                time.sleep(delay)
            if log:
                print("streaming %s %d" % (log, i))
            yield (b"%d:" % i).ljust(size, b".")
    return Closing(gen())


def stream_echo(environ, start_response):
    """Answers while it reads: each piece of the body goes back as soon as
    it is read."""
    inp = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def gen():
        while True:
            block = inp.read(int(_opts(environ).get("size", "4096")))
            if not block:
                break
            yield block
    return gen()


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-1;")
    write(b"written-2;")
    return [b"returned"]


def sleep(environ, start_response):
    ms = float(_opts(environ).get("ms", "50"))
    time.sleep(ms / 1000.0)
    return _text(start_response, "slept %g ms" % ms)


def switch_interval(environ, start_response):
    return _text(start_response, "%g" % sys.getswitchinterval())


def log(environ, start_response):
    marker = _opts(environ).get("marker", "marker")
    print("stdout says " + marker)
    print("stderr says " + marker, file=sys.stderr)
    environ["wsgi.errors"].write("errors says " + marker + "\n")
    environ["wsgi.errors"].flush()
    return _text(start_response, "logged " + marker)


def file_wrapper(environ, start_response):
    opts = _opts(environ)
    size = int(opts.get("size", "100000"))
    f = tempfile.TemporaryFile()
    f.write(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    f.seek(int(opts.get("skip", "0")))
    headers = [("Content-Type", "application/octet-stream")]
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 8192)


def filelike_wrapper(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"from a file-like object " * 10), 7)


def big(environ, start_response):
    opts = _opts(environ)
    size = int(opts.get("size", "65536"))
    ctype = opts.get("type", "text/plain")
    body = (b"oxwsgi compresses text well. " * (size // 29 + 1))[:size]
    start_response("200 OK", [("Content-Type", ctype)])
    if opts.get("stream"):
        return Closing([body[i:i + 4096] for i in range(0, len(body), 4096)])
    return [body]


def exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("handled by the app")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"app error page"]


def exc_info_late(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first part;"
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"
    return gen()


def thread_local(environ, start_response):
    LOCAL.hits = getattr(LOCAL, "hits", 0) + 1
    return _text(start_response, "%s:%d" % (threading.current_thread().name, LOCAL.hits))


def closed(environ, start_response):
    return _text(start_response, str(CLOSED["count"]))


def cookies(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Set-Cookie", "a=1; Path=/"),
                              ("Set-Cookie", "b=2; Path=/")])
    return [environ.get("HTTP_COOKIE", "").encode("latin-1")]


def empty(environ, start_response):
    start_response("204 No Content", [])
    return []


def headers_only(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Custom", "yes")])
    return []


NO_CONTENT = {"204": "204 No Content", "205": "205 Reset Content", "304": "304 Not Modified"}
LEAK = b"this body must not be sent"


def no_content(environ, start_response):
    """A status that has no body, with a body anyway: the server must drop it
    (on a keep-alive connection it would be read as the next response)."""
    opts = _opts(environ)
    headers = [("Content-Type", "text/plain")]
    if "length" in opts:
        headers.append(("Content-Length", opts["length"]))
    write = start_response(NO_CONTENT[opts.get("status", "204")], headers)
    shape = opts.get("shape", "list")
    if shape == "write":
        write(LEAK)
        return []
    if shape == "gen":
        return Closing([LEAK, LEAK])
    if shape == "file":
        f = tempfile.TemporaryFile()
        f.write(LEAK)
        f.seek(0)
        return environ["wsgi.file_wrapper"](f)
    return [LEAK]


def latin1(environ, start_response):
    """PEP 3333 headers are latin-1 str: each character is one byte on the wire."""
    start_response("200 Tr\u00e8s bien", [("Content-Type", "text/plain"),
                                          ("X-Test", "caf\u00e9"),
                                          ("X-High", "\u00ff\u00a0end")])
    return [b"latin-1 headers"]


def same_lengths(environ, start_response):
    start_response("200 OK", [("Content-Length", "5"), ("Content-Length", "5")])
    return [b"12345"]


def children(environ, start_response):
    """Starts processes and reports their exit statuses, which must be the
    commands' own (the server must not reap the app's children)."""
    import subprocess
    how = _opts(environ).get("how", "popen")
    if how == "popen":
        p = subprocess.Popen(["sh", "-c", "exit 3"])
        time.sleep(0.2)
        result = str(p.wait())
    elif how == "run":
        result = str(subprocess.run(["sh", "-c", "exit 5"]).returncode)
    elif how == "communicate":
        p = subprocess.Popen(["sh", "-c", "head -c 3000000 /dev/zero; exit 7"],
                             stdout=subprocess.PIPE)
        out, _ = p.communicate()
        result = "%d:%d" % (p.returncode, len(out))
    elif how == "many":
        procs = [subprocess.Popen(["sh", "-c", "sleep 0.05; exit %d" % (i % 50 + 1)])
                 for i in range(60)]
        codes = [p.wait() for p in procs]
        result = "ok" if codes == [i % 50 + 1 for i in range(60)] else repr(codes)
    elif how == "system":
        result = str(os.waitstatus_to_exitcode(os.system("exit 9")))
    else:
        raise ValueError(how)
    return _text(start_response, result)


# Apps that get WSGI wrong: each must become a 500 with a log line naming the mistake.
def str_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def str_return(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "not bytes"


def bytes_return(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return b"not a list"


def none_return(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])


def int_status(environ, start_response):
    start_response(200, [("Content-Type", "text/plain")])
    return [b"x"]


def bad_status(environ, start_response):
    start_response("OK", [("Content-Type", "text/plain")])
    return [b"x"]


def tuple_headers(environ, start_response):
    start_response("200 OK", (("Content-Type", "text/plain"),))
    return [b"x"]


def bytes_header(environ, start_response):
    start_response("200 OK", [(b"Content-Type", b"text/plain")])
    return [b"x"]


def hop_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
    return [b"x"]


def non_latin1_header(environ, start_response):
    start_response("200 OK", [("X-Snow", "\u2603")])
    return [b"x"]


def crlf_header(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: evil=1")])
    return [b"x"]


def interim_status(environ, start_response):
    start_response("100 Continue", [("Content-Type", "text/plain")])
    return [b"x"]


def ctl_header(environ, start_response):
    start_response("200 OK", [("X-Ctl", "a\x1b[31mred")])
    return [b"x"]


def two_lengths(environ, start_response):
    start_response("200 OK", [("Content-Length", "5"), ("Content-Length", "7")])
    return [b"12345"]


def raise_early(environ, start_response):
    raise RuntimeError("the app failed before start_response")


def raise_late(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"part one;", b"part two;"], fail_at=1)


def no_start(environ, start_response):
    return [b"forgot start_response"]


def twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b"x"]


def short_body(environ, start_response):
    """Promises 100 bytes and delivers 20, in the shape the query names."""
    write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    shape = _opts(environ).get("shape", "gen")
    if shape == "list":
        return [b"only twenty bytes..."]
    if shape == "write":
        write(b"only twenty bytes...")
        return []
    if shape == "file":
        f = tempfile.TemporaryFile()
        f.write(b"only twenty bytes...")
        f.seek(0)
        return environ["wsgi.file_wrapper"](f)
    return Closing([b"only twenty bytes...", b""])


def long_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"12345", b"6789"]


def bad_content_length(environ, start_response):
    start_response("200 OK", [("Content-Length", "lots")])
    return [b"x"]


def close_raises(environ, start_response):
    class R:
        def __iter__(self):
            return iter([b"body"])

        def close(self):
            raise RuntimeError("close() failed")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return R()


CAUGHT = {"timeouts": 0}


def spin(environ, start_response):
    """Runs Python until the request timeout stops it; cleans up and lets
    the exception go on, as an app should."""
    import oxwsgi
    try:
        while True:
            pass
    except oxwsgi.RequestTimeout:
        CAUGHT["timeouts"] += 1
        raise


def spin_late(environ, start_response):
    """Sends its headers and a first chunk, then runs until stopped."""
    def body():
        yield b"started\n"
        while True:
            pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(body())


LEAKED = []


def leak(environ, start_response):
    """Keeps `mb` MiB more for good (touched, so it is resident)."""
    mb = int(_opts(environ).get("mb", "1"))
    LEAKED.append(bytearray(b"x" * (mb << 20)))
    return _text(start_response, "%d MiB kept by pid %d" % (len(LEAKED) * mb, os.getpid()))


def pid(environ, start_response):
    return _text(start_response, str(os.getpid()))


def whoami(environ, start_response):
    return _text(start_response, json.dumps({"uid": os.getuid(), "prefix": sys.prefix,
                                             "pid": os.getpid()}))


def caught(environ, start_response):
    return _text(start_response, json.dumps({"timeouts": CAUGHT["timeouts"],
                                             "closed": CLOSED["count"]}))


ROUTES = {
    "/env": env, "/echo": echo, "/consume": consume, "/stream": stream, "/write": write_callable,
    "/sleep": sleep, "/log": log, "/file": file_wrapper, "/filelike": filelike_wrapper,
    "/big": big, "/exc-info": exc_info, "/exc-info-late": exc_info_late,
    "/thread-local": thread_local, "/closed": closed, "/cookies": cookies,
    "/empty": empty, "/headers-only": headers_only,
    "/str-body": str_body, "/str-return": str_return, "/bytes-return": bytes_return,
    "/none-return": none_return, "/int-status": int_status, "/bad-status": bad_status,
    "/tuple-headers": tuple_headers, "/bytes-header": bytes_header,
    "/hop-header": hop_header, "/non-latin1-header": non_latin1_header,
    "/crlf-header": crlf_header, "/raise-early": raise_early, "/raise-late": raise_late,
    "/no-start": no_start, "/twice": twice, "/short-body": short_body,
    "/long-body": long_body, "/bad-content-length": bad_content_length,
    "/close-raises": close_raises, "/no-content": no_content, "/latin1": latin1,
    "/same-lengths": same_lengths, "/interim-status": interim_status,
    "/ctl-header": ctl_header, "/two-lengths": two_lengths, "/children": children,
    "/stream-echo": stream_echo, "/spin": spin, "/spin-late": spin_late, "/caught": caught,
    "/leak": leak, "/pid": pid, "/whoami": whoami, "/switch-interval": switch_interval,
}


def application(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None and environ["PATH_INFO"].startswith("/sleep/"):
        route = sleep  # any path, for tests that need one in flight
    if route is None:
        return _text(start_response, "no route " + environ["PATH_INFO"], "404 Not Found")
    return route(environ, start_response)

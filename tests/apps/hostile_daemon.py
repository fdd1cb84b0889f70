"""An app that speaks for its daemon: it writes frames of its own on the
connection to the server (as app code running in a process group can),
to show the server checks what a daemon sends as strictly as the core
checks what an app answers. Serve it in a group of one thread."""
import os
import socket
import struct


def _frame(kind, payload=b""):
    return struct.pack("<BI", kind, len(payload)) + payload


def _field(tag, value):
    return struct.pack("<BI", tag, len(value)) + value


def _head(status, headers):
    out = _field(30, status)
    for n, v in headers:
        out += _field(20, n) + _field(21, v)
    return _frame(5, out)


GARBAGE = {
    # A response split: a header whose value carries a second header.
    "split": _head(b"200 OK", [(b"X-A", b"1\r\nSet-Cookie: stolen=1")]) + _frame(8),
    # Framing the server owns.
    "hop": _head(b"200 OK", [(b"Transfer-Encoding", b"chunked")]) + _frame(8),
    "status": _head(b"0 OK", []) + _frame(8),
    "error0": _frame(10, struct.pack("<H", 0)),
    "short": _head(b"200 OK", [(b"Content-Length", b"100")]) + _frame(6, b"x" * 10) + _frame(8),
    "unknown": _frame(99, b"?"),
}


def _connections():
    """The open connections to the server: this request's among them (an
    idle one that gets the garbage is closed by the server)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = os.dup(int(name))
        except OSError:
            continue
        try:
            s = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            continue
        try:
            if s.family == socket.AF_UNIX and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                # A connection the server closed reads as ended; an open
                # one has nothing to read.
                s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            found.append(s)
            continue
        except OSError:
            pass
        s.close()
    return found


def application(environ, start_response):
    kind = environ.get("QUERY_STRING", "")
    if kind in GARBAGE:
        for c in _connections():
            c.sendall(GARBAGE[kind])
            c.close()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]

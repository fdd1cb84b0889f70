"""The benchmark workloads, one WSGI app for every server under test.

/        the classic hello
/64k     a 64 KiB body
/post    reads the request body (1 MiB in the benchmark), answers its size;
         with ?piece=N it reads N bytes at a time, as framework parsers do
         (Django and Werkzeug read 64 KiB pieces)
/stream  100 chunks of 1 KiB, yielded one by one
/sleep   waits 50 ms (a slow database, say), then answers
"""
import time

HELLO = b"<h1>Hello, web!</h1>"
BODY_64K = b"x" * 65536
CHUNK = b"y" * 1024


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/64k":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [BODY_64K]
    if path == "/post":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        query = environ.get("QUERY_STRING", "")
        if query.startswith("piece="):
            piece, inp, got = int(query[6:]), environ["wsgi.input"], 0
            while got < length:
                data = inp.read(min(piece, length - got))
                if not data:
                    break
                got += len(data)
        else:
            got = len(environ["wsgi.input"].read(length))
        body = str(got).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (CHUNK for _ in range(100))
    if path == "/sleep":
        time.sleep(0.05)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    start_response("200 OK", [("Content-Type", "text/html")])
    return [HELLO]

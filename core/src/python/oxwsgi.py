"""What the server running this app offers it (oxwsgi embeds Python in nginx
and Apache httpd)."""


class RequestTimeout(BaseException):
    """Raised in a request's thread when the request passes its time limit
    (wsgi_request_timeout in nginx, WSGIRequestTimeout in Apache).

    Like asyncio.CancelledError it is a BaseException, so a framework's
    `except Exception` does not turn it into an ordinary error page: catch it
    by name to clean up, then let it go on. The client has already been
    answered (504) or cut off when the app sees it.
    """

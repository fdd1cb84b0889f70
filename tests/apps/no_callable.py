def app(environ, start_response):
    start_response("200 OK", [])
    return [b"I am called app"]


def make_app():
    return app

"""The Flask workload: a route that renders a small greeting."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "<h1>Hello, web!</h1>"


application = app

"""A small Flask site: a form POST, a session cookie, a redirect, a static file."""
import os

from flask import Flask, redirect, request, session, url_for

app = Flask(__name__, static_folder=os.path.join(os.path.dirname(__file__), "static"))
app.secret_key = "example-only-not-secret"


@app.route("/")
def index():
    name = session.get("name", "stranger")
    return f"<h1>Hello, {name}!</h1><form method=post action=/name><input name=name></form>"


@app.route("/name", methods=["POST"])
def set_name():
    session["name"] = request.form.get("name", "")
    return redirect(url_for("index"))


@app.route("/upload", methods=["POST"])
def upload():
    data = request.files["file"].read()
    return {"size": len(data), "name": request.files["file"].filename}


@app.route("/json", methods=["POST"])
def echo_json():
    return {"got": request.get_json()}


# The WSGI entry point oxwsgi and mod_wsgi look for.
application = app

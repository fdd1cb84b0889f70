"""An auth script, as mod_wsgi's WSGIAuthUserScript and WSGIAuthGroupScript
take it (Django's recipe has the same two functions)."""

import hashlib

USERS = {"ann": "pw", "bob": "pw2"}
GROUPS = {"ann": ["staff"], "bob": ["guests"]}


def check_password(environ, user, password):
    if environ.get("REQUEST_URI", "").endswith("/boom"):
        raise RuntimeError("the user database is down")
    if user == "where":
        # With application-group=%{SERVER}, the script runs in that
        # interpreter and its environ names it.
        group = environ["mod_wsgi.application_group"]
        return group == "%s:%s" % (environ["SERVER_NAME"], environ["SERVER_PORT"])
    if user not in USERS:
        return None
    return USERS[user] == password


def groups_for_user(environ, user):
    return GROUPS.get(user, [])


def allow_access(environ, host):
    uri = environ.get("REQUEST_URI", "")
    if "/open/" in uri:
        return host == "127.0.0.1"
    if "/closed/" in uri:
        return False
    if "/odd/" in uri:
        return "yes"
    return None


def get_realm_hash(environ, user, realm):
    if user not in USERS:
        return None
    return hashlib.md5(("%s:%s:%s" % (user, realm, USERS[user])).encode()).hexdigest()

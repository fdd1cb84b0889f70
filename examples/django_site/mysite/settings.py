"""A minimal Django site for the examples and the end-to-end tests."""
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"
# Shown by /info: which project answered (two copies of the site can be
# served side by side, each in its own application group).
SITE_NAME = "example"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.sessions",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "mysite.urls"
# Signed-cookie sessions: no database to set up.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES = {}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
USE_TZ = True

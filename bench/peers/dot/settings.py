"""A minimal Django project around django-oauth-toolkit for the bench: its
token endpoint (client_credentials, ``client_secret_basic``) and its
introspection endpoint, on SQLite (``DOT_BENCH_DB``). Everything else is
DOT's and Django's defaults, production-style (no DEBUG)."""

from __future__ import annotations

import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "oauth2_provider",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DOT_BENCH_DB"]}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
OAUTH2_PROVIDER = {
    "SCOPES": {"basic": "basic profile", "introspection": "introspect tokens"},
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
}

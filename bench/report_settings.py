"""Settings for bench/report_endpoint.py: the site plus two baseline views."""

from saas.settings import *  # noqa: F403

ROOT_URLCONF = "bench.report_urls"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
SECRET_KEY = "bench-only-" + "x" * 40
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

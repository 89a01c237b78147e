"""Django settings, read from the environment once (see saas/env.py and docs/configuration.md)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from saas.env import ConfigurationError, broker_settings, ledger_database, read_environment

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    ENV = read_environment(os.environ, BASE_DIR)
except ConfigurationError as exc:
    # Fail fast with one readable line instead of a traceback deep inside Django.
    sys.exit(f"Configuration error: {exc}")

DEBUG = ENV.debug
SECRET_KEY = ENV.secret_key
ALLOWED_HOSTS = ENV.allowed_hosts
TIME_ZONE = ENV.time_zone
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dramatiq",
    "django_crontab",
    "jobs",
    "billing",
    "saas",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "saas.urls"
WSGI_APPLICATION = "saas.wsgi.application"
ASGI_APPLICATION = "saas.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": ENV.database}
# The payment ledger commits each charge on a connection of its own, like a remote provider
# (docs/billing.md): the default database under a second alias. Not on SQLite, where it
# writes through the caller's connection (see saas.env.ledger_database).
_ledger = ledger_database(ENV.database)
if _ledger is None:
    BILLING_LEDGER_DATABASE = "default"
else:
    BILLING_LEDGER_DATABASE = "ledger"
    DATABASES[BILLING_LEDGER_DATABASE] = _ledger
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if ENV.cache_url:
    CACHES = {
        "default": {
            "BACKEND": "saas.cache.ResilientRedisCache",
            "LOCATION": ENV.cache_url,
            "KEY_PREFIX": "saas",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    # Read from Redis, written through to the database: a logged-in request costs no session
    # query, and sessions survive a Redis restart.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# Django's ModelBackend with a cheaper per-request user lookup (saas/auth.py). Django's own
# stays listed so that sessions logged in through it keep working.
AUTHENTICATION_BACKENDS = ["saas.auth.ModelBackend", "django.contrib.auth.backends.ModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

STATIC_URL = "static/"
STATIC_ROOT = ENV.data_dir / "staticfiles"  # for `collectstatic`; WhiteNoise warns if it is missing
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# gunicorn serves static files through WhiteNoise, straight from the apps' folders, so the real
# topology needs no collectstatic step (run it and drop this for a CDN or long-cache setup).
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = ENV.data_dir / "media"
MEDIA_URL = "media/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/app/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# JSON endpoints answer a failed CSRF check with JSON (pages keep Django's page).
CSRF_FAILURE_VIEW = "saas.views.csrf_failure"
# Absolute links in emails (the report-ready mail).
SITE_URL = ENV.site_url

if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Dramatiq. The list is explicit on purpose: django-dramatiq's AdminMiddleware is left out
# because jobs.JobRun records every run (it would write three more rows per message).
# RunRecorder sits after AgeLimit and before Retries (checked by `manage.py check`).
DRAMATIQ_MIDDLEWARE = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.ShutdownNotifications",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Pipelines",
    "jobs.worker.middleware.RunRecorder",
    "dramatiq.middleware.Retries",
    "dramatiq.middleware.CurrentMessage",
    "django_dramatiq.middleware.DbConnectionsMiddleware",
]
DRAMATIQ_BROKER = broker_settings(ENV.broker_url, DRAMATIQ_MIDDLEWARE)
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks", "jobs"]

# Django's tasks framework runs on Dramatiq workers, recorded as job runs (docs/tasks.md).
TASKS = {
    "default": {
        "BACKEND": "jobs.backends.DramatiqBackend",
        "QUEUES": ["default"],
        "OPTIONS": {"MAX_RETRIES": 3, "TIME_LIMIT": 600},
    }
}

# Alternative trigger for hosts that prefer system cron (`manage.py crontab add`).
CRONJOBS = [("* * * * *", "jobs.scheduling.tick.cron_tick")]

# EMAIL_URL (smtp:// or smtps://); without it mails are written to the console, and
# `check --deploy` says so (saas.W002).
MAILERS = {"default": ENV.mailer}
DEFAULT_FROM_EMAIL = ENV.from_email
SERVER_EMAIL = ENV.from_email

# Where the jobs' alerts go (a dead run, late schedules): mail to ADMINS and/or a webhook.
# `check --deploy` warns when neither is set (saas.W003).
ADMINS = ENV.alert_emails
JOBS_ALERT_WEBHOOK_URL = ENV.alert_webhook_url
JOBS_ADMIN_INDEX_LINK = True  # the admin index links to the jobs overview

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Lines logged inside a job carry its name, run id and attempt (jobs.logs).
    "filters": {"run": {"()": "jobs.worker.logs.RunContextFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s%(run)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["run"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

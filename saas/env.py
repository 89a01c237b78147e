"""Parse the process environment into typed settings values.

Kept apart from settings.py so the rules can be unit-tested without reloading Django.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url

# Shipped so the embedded demo runs with nothing configured; refused when DEBUG is off.
INSECURE_SECRET_KEY = "django-insecure-local-development-only-change-me"  # noqa: S105

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigurationError(Exception):
    """The environment asks for something unsafe or unparseable; the message says which variable."""


def parse_bool(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(
        f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no."
    )


@dataclass(frozen=True)
class Environment:
    debug: bool
    secret_key: str
    allowed_hosts: list[str]
    time_zone: str
    database: dict[str, Any]
    data_dir: Path
    broker_url: str | None  # None: the embedded in-process broker
    cache_url: str | None  # None: per-process memory cache, sessions in the database
    mailer: dict[str, Any]  # MAILERS["default"]
    from_email: str
    site_url: str
    alert_emails: list[str]  # ADMINS: who gets the jobs' alert mails
    alert_webhook_url: str

    @property
    def embedded(self) -> bool:
        """True when running the one-process demo topology (SQLite + in-process broker)."""
        return self.broker_url is None


def read_environment(environ: Mapping[str, str], base_dir: Path) -> Environment:
    """Read and validate every setting that comes from the environment, once."""
    debug = parse_bool("DEBUG", environ.get("DEBUG", "true"))

    secret_key = environ.get("SECRET_KEY", INSECURE_SECRET_KEY)
    if not debug and (secret_key == INSECURE_SECRET_KEY or len(secret_key) < 32):
        raise ConfigurationError(
            "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is off "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )

    default_hosts = "localhost,127.0.0.1,[::1]" if debug else ""
    allowed_hosts = [
        h.strip() for h in environ.get("ALLOWED_HOSTS", default_hosts).split(",") if h.strip()
    ]
    if not debug and not allowed_hosts:
        raise ConfigurationError(
            "ALLOWED_HOSTS must list the site's host names (comma-separated) when DEBUG is off."
        )

    time_zone = environ.get("TIME_ZONE", "UTC")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"TIME_ZONE={time_zone!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)."
        ) from None

    data_dir = Path(environ.get("DATA_DIR") or base_dir / "var")
    database_url = environ.get("DATABASE_URL", "").strip()
    if database_url:
        try:
            database: dict[str, Any] = dict(dj_database_url.parse(database_url, conn_max_age=600))
        except ValueError as exc:
            raise ConfigurationError(f"DATABASE_URL cannot be parsed: {exc}") from None
        # Persistent connections without per-request health checks: a health check is a
        # `SELECT 1` round trip before every request and every Dramatiq message (django-dramatiq
        # closes old connections around each one). A connection that errored is still
        # dropped at the end of its request or message, so a restarted server costs one error.
        database["CONN_HEALTH_CHECKS"] = False
        # Django turns psycopg's prepared statements off (for transaction-pooling PgBouncers
        # older than 1.21); jobs prepares its per-request and per-message statements, which
        # PostgreSQL otherwise plans every time. Only explicit psycopg cursors prepare: the
        # ORM's client-side binding cursors never do.
        if "postgresql" in str(database.get("ENGINE", "")):
            options = dict(database.get("OPTIONS") or {})
            options.setdefault("prepare_threshold", 5)
            database["OPTIONS"] = options
    else:
        database = embedded_database(data_dir)

    broker_url = (environ.get("BROKER_URL") or environ.get("REDIS_URL") or "").strip() or None
    if broker_url and not broker_url.startswith(("redis://", "rediss://", "unix://", "amqp://")):
        raise ConfigurationError(
            "REDIS_URL/BROKER_URL must start with redis://, rediss://, unix:// or amqp://; "
            f"got {broker_url.split('://')[0]!r}."
        )

    # The cache (and with it the sessions) in Redis: a logged-in request then reads its session
    # without a database query. Never by default the broker's Redis database: the cache's
    # clear() is FLUSHDB, and a cache's eviction policy must not apply to queues.
    cache_url = environ.get("CACHE_URL", "").strip() or None
    if cache_url and not cache_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "CACHE_URL must start with redis://, rediss:// or unix://; "
            f"got {cache_url.split('://')[0]!r}."
        )
    if cache_url and broker_url and cache_url == broker_url:
        raise ConfigurationError(
            "CACHE_URL must not be the broker's Redis database (the cache's clear() would "
            "flush the queues): use another database number, e.g. redis://host:6379/1."
        )

    email_url = environ.get("EMAIL_URL", "").strip()
    site_url = environ.get("SITE_URL", "http://127.0.0.1:8000").strip().rstrip("/")
    if not site_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"SITE_URL={site_url!r} must be the site's address, e.g. https://billing.example.com."
        )

    alert_emails = [a.strip() for a in environ.get("ALERT_EMAILS", "").split(",") if a.strip()]
    for address in alert_emails:
        if "@" not in address:
            raise ConfigurationError(
                f"ALERT_EMAILS: {address!r} is not an email address (comma-separated list)."
            )
    alert_webhook_url = environ.get("ALERT_WEBHOOK_URL", "").strip()
    if alert_webhook_url and not alert_webhook_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            "ALERT_WEBHOOK_URL must start with http:// or https:// (a Slack-compatible webhook)."
        )

    return Environment(
        debug=debug,
        secret_key=secret_key,
        allowed_hosts=allowed_hosts,
        time_zone=time_zone,
        database=database,
        data_dir=data_dir,
        broker_url=broker_url,
        cache_url=cache_url,
        mailer=mailer_settings(email_url),
        from_email=environ.get("DEFAULT_FROM_EMAIL", "").strip() or "webmaster@localhost",
        site_url=site_url,
        alert_emails=alert_emails,
        alert_webhook_url=alert_webhook_url,
    )


MAIL_TIMEOUT_SECONDS = 10  # a hung mail server must not hold a job until its time limit


def mailer_settings(email_url: str) -> dict[str, Any]:
    """MAILERS["default"] for EMAIL_URL; with none, mails are written to the console.

    smtp://user:password@host:587 sends plain SMTP, upgraded with STARTTLS by `?tls=1`;
    smtps://...:465 speaks TLS from the start. The user and password are URL-encoded.
    """
    if not email_url:
        return {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    parts = urlsplit(email_url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigurationError(
            "EMAIL_URL must start with smtp:// or smtps://, e.g. "
            f"smtp://user:password@mail.example.com:587?tls=1; got {parts.scheme!r}."
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError("EMAIL_URL has a port that is not a number.") from None
    if not parts.hostname:
        raise ConfigurationError("EMAIL_URL names no host, e.g. smtp://mail.example.com:587.")
    query = parse_qs(parts.query)
    options: dict[str, Any] = {
        "host": parts.hostname,
        "port": port or (465 if parts.scheme == "smtps" else 25),
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "use_ssl": parts.scheme == "smtps",
        "use_tls": parts.scheme == "smtp"
        and parse_bool("EMAIL_URL tls", query.get("tls", ["0"])[0]),
        "timeout": MAIL_TIMEOUT_SECONDS,
    }
    return {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}


def embedded_database(data_dir: Path) -> dict[str, Any]:
    """SQLite tuned for a web server and worker threads sharing one file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": data_dir / "db.sqlite3",
        "OPTIONS": {
            # WAL lets readers proceed while a worker writes; IMMEDIATE takes the write
            # lock at BEGIN so two writers wait (busy timeout) instead of failing later.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


def ledger_database(database: dict[str, Any]) -> dict[str, Any] | None:
    """DATABASES["ledger"] for the default database `database`: the same database under a
    second alias, so that the payment ledger (billing.gateway.LedgerGateway) commits each charge
    on a connection of its own, whatever the caller's transaction does. In tests it mirrors the
    default: it uses the test database, and the test case flushes that once.

    None for SQLite: a second connection cannot write while the caller's transaction holds the
    file's write lock (taken at BEGIN, `transaction_mode` IMMEDIATE), and the charge is made
    inside that transaction; there the ledger writes through the caller's connection.
    """
    if "sqlite" in str(database.get("ENGINE", "")):
        return None
    ledger = copy.deepcopy(database)
    ledger["AUTOCOMMIT"] = True
    ledger["ATOMIC_REQUESTS"] = False
    ledger["TEST"] = {**(ledger.get("TEST") or {}), "MIRROR": "default"}
    return ledger


def broker_settings(broker_url: str | None, middleware: list[str]) -> dict[str, Any]:
    """django-dramatiq's DRAMATIQ_BROKER for the configured URL."""
    if broker_url is None:
        return {
            "BROKER": "dramatiq.brokers.stub.StubBroker",
            "OPTIONS": {},
            "MIDDLEWARE": middleware,
        }
    if broker_url.startswith("amqp://"):
        return {
            "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
            "OPTIONS": {"url": broker_url},
            "MIDDLEWARE": middleware,
        }
    import redis

    # Bounded timeouts: a health check or a web request must not hang on a dead Redis.
    client = redis.Redis.from_url(
        broker_url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
    )
    return {
        "BROKER": "dramatiq.brokers.redis.RedisBroker",
        "OPTIONS": {"client": client},
        "MIDDLEWARE": middleware,
    }

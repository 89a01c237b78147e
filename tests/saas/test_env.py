from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from saas.env import (
    INSECURE_SECRET_KEY,
    ConfigurationError,
    broker_settings,
    ledger_database,
    read_environment,
)
from tests.processes import manage_command

STRONG_KEY = "k" * 50


def test_no_environment_gives_the_embedded_default(tmp_path: Path) -> None:
    env = read_environment({}, tmp_path)
    assert env.debug is True
    assert env.embedded is True
    assert env.database["ENGINE"] == "django.db.backends.sqlite3"
    assert env.database["NAME"] == tmp_path / "var" / "db.sqlite3"
    assert env.database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in env.database["OPTIONS"]["init_command"]
    assert broker_settings(env.broker_url, [])["BROKER"] == "dramatiq.brokers.stub.StubBroker"


def test_urls_select_postgres_and_redis(tmp_path: Path) -> None:
    env = read_environment(
        {
            "DATABASE_URL": "postgres://app:pw@db.internal:5433/saas",
            "REDIS_URL": "redis://cache:6379/2",
            "DEBUG": "false",
            "SECRET_KEY": STRONG_KEY,
            "ALLOWED_HOSTS": "example.com, www.example.com",
            "TIME_ZONE": "Europe/Berlin",
        },
        tmp_path,
    )
    assert env.embedded is False
    assert env.database["ENGINE"] == "django.db.backends.postgresql"
    assert (env.database["HOST"], env.database["PORT"], env.database["NAME"]) == (
        "db.internal",
        5433,
        "saas",
    )
    assert env.database["CONN_MAX_AGE"] > 0
    # jobs' hot statements are prepared: Django leaves psycopg's prepared statements off.
    assert env.database["OPTIONS"]["prepare_threshold"] == 5
    assert env.allowed_hosts == ["example.com", "www.example.com"]
    assert env.time_zone == "Europe/Berlin"
    broker = broker_settings(env.broker_url, ["m"])
    assert broker["BROKER"] == "dramatiq.brokers.redis.RedisBroker"
    assert broker["OPTIONS"]["client"].connection_pool.connection_kwargs["db"] == 2
    assert broker["MIDDLEWARE"] == ["m"]


def test_the_ledger_alias_is_the_default_database_in_autocommit_mirrored_in_tests(
    tmp_path: Path,
) -> None:
    env = read_environment({"DATABASE_URL": "postgres://app:pw@db.internal:5433/saas"}, tmp_path)
    ledger = ledger_database(env.database)
    assert ledger is not None
    same = ("ENGINE", "NAME", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS", "CONN_MAX_AGE")
    assert {k: ledger[k] for k in same} == {k: env.database[k] for k in same}
    assert ledger["AUTOCOMMIT"] is True and ledger["ATOMIC_REQUESTS"] is False
    assert ledger["TEST"]["MIRROR"] == "default"
    ledger["OPTIONS"]["prepare_threshold"] = None
    assert env.database["OPTIONS"]["prepare_threshold"] == 5, "a copy, not the same dict"


def test_the_embedded_sqlite_default_has_no_ledger_alias(tmp_path: Path) -> None:
    # A second SQLite connection would wait for the write lock of the transaction that charges.
    assert ledger_database(read_environment({}, tmp_path).database) is None


def test_broker_url_overrides_redis_url_for_rabbitmq(tmp_path: Path) -> None:
    env = read_environment(
        {"REDIS_URL": "redis://x/0", "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672"}, tmp_path
    )
    assert (
        broker_settings(env.broker_url, [])["BROKER"] == "dramatiq.brokers.rabbitmq.RabbitmqBroker"
    )


def test_the_cache_and_sessions_use_redis_only_when_asked(tmp_path: Path) -> None:
    assert read_environment({}, tmp_path).cache_url is None
    assert read_environment({"REDIS_URL": "redis://r/0"}, tmp_path).cache_url is None
    own = {"REDIS_URL": "redis://r/0", "CACHE_URL": "redis://r/1"}
    assert read_environment(own, tmp_path).cache_url == "redis://r/1"


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": INSECURE_SECRET_KEY}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": STRONG_KEY}, "ALLOWED_HOSTS"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL"),
        ({"CACHE_URL": "memcached://x:11211"}, "CACHE_URL"),
        ({"CACHE_URL": "redis://r/0", "REDIS_URL": "redis://r/0"}, "CACHE_URL"),
        ({"EMAIL_URL": "mail.example.com:587"}, "EMAIL_URL"),
        ({"EMAIL_URL": "smtp://:587"}, "EMAIL_URL"),
        ({"EMAIL_URL": "smtp://mail.example.com:smtp"}, "EMAIL_URL"),
        ({"EMAIL_URL": "smtp://mail.example.com?tls=perhaps"}, "EMAIL_URL"),
        ({"SITE_URL": "billing.example.com"}, "SITE_URL"),
        ({"ALERT_EMAILS": "ops@example.com, oncall"}, "ALERT_EMAILS"),
        ({"ALERT_WEBHOOK_URL": "hooks.example.com/x"}, "ALERT_WEBHOOK_URL"),
    ],
)
def test_unsafe_or_broken_values_are_refused_naming_the_variable(
    tmp_path: Path, environ: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigurationError, match=names):
        read_environment(environ, tmp_path)


def test_production_with_default_secret_fails_fast_at_startup(tmp_path: Path) -> None:
    result = subprocess.run(
        manage_command("check"),
        env={"PATH": "/usr/bin:/bin", "DEBUG": "off", "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Configuration error: SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr


def test_mail_goes_to_the_console_until_email_url_names_a_server(tmp_path: Path) -> None:
    env = read_environment({}, tmp_path)
    assert env.mailer == {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    assert "OPTIONS" not in env.mailer, "no server to send to"
    assert env.site_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://app%40example.com:p%2Fss@mail.example.com:587?tls=1",
            {"port": 587, "username": "app@example.com", "password": "p/ss", "use_tls": True},
        ),
        ("smtps://mail.example.com", {"port": 465, "use_ssl": True, "use_tls": False}),
        ("smtp://mail.example.com", {"port": 25, "use_ssl": False, "use_tls": False}),
    ],
)
def test_email_url_configures_smtp_with_a_timeout(
    tmp_path: Path, url: str, expected: dict[str, object]
) -> None:
    env = read_environment(
        {"EMAIL_URL": url, "DEFAULT_FROM_EMAIL": "billing@example.com"}, tmp_path
    )
    assert env.mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    options = env.mailer["OPTIONS"]
    assert options["host"] == "mail.example.com" and options["timeout"] == 10
    assert {k: options[k] for k in expected} == expected
    assert env.from_email == "billing@example.com"


def test_deploy_check_warns_about_local_links_and_unsent_mail(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin:/bin", "DEBUG": "off", "DATA_DIR": str(tmp_path)}
    base |= {"SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "billing.example.com"}

    def deploy_check(**extra: str) -> str:
        result = subprocess.run(
            manage_command("check", "--deploy"),
            env=base | extra,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.stdout + result.stderr

    out = deploy_check()
    assert "saas.W001" in out and "saas.W002" in out and "saas.W003" in out
    out = deploy_check(
        SITE_URL="https://billing.example.com",
        EMAIL_URL="smtp://mail.example.com:587?tls=1",
        ALERT_EMAILS="ops@example.com, oncall@example.com",
    )
    assert "saas.W001" not in out and "saas.W002" not in out and "saas.W003" not in out
    assert "saas.W003" not in deploy_check(ALERT_WEBHOOK_URL="https://hooks.example.com/x")

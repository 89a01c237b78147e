"""System checks for the billing settings."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from billing.checks import check_gateway, check_ledger_database, ledger_database_errors
from billing.gateway import Gateway


def ids(errors: list) -> list[str]:
    return [e.id for e in errors]


def test_the_default_gateway_passes() -> None:
    assert check_gateway() == []


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("billing.gateway.Nope", "cannot be used"),
        ("billing.models.Tenant", "is not a subclass of billing.gateway.Gateway"),
    ],
)
def test_an_unusable_gateway_class_is_billing_e001(settings, path: str, message: str) -> None:
    settings.BILLING_GATEWAY = path
    errors = check_gateway()
    assert ids(errors) == ["billing.E001"] and message in errors[0].msg


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": 1}, "unexpected keyword argument 'bogus'"),
        ({"timeout_after_record": 5}, "timeout_after_record: a probability"),
        ("pause_after_record=1", "must be a dict"),
    ],
)
def test_refused_gateway_options_are_billing_e002(settings, options: object, message: str) -> None:
    settings.BILLING_GATEWAY_OPTIONS = options
    errors = check_gateway()
    assert ids(errors) == ["billing.E002"] and message in errors[0].msg


def test_the_ledger_alias_of_the_test_settings_passes() -> None:
    assert django_settings.BILLING_LEDGER_DATABASE == "ledger"
    assert check_ledger_database() == []


def test_a_missing_ledger_alias_is_billing_e003(settings) -> None:
    settings.BILLING_LEDGER_DATABASE = "payments"
    errors = check_ledger_database()
    assert ids(errors) == ["billing.E003"]
    assert "'payments' is not an alias in DATABASES" in errors[0].msg
    assert "DATABASES['payments']" in errors[0].hint


class OtherGateway(Gateway):
    """A provider of its own: it needs no ledger alias."""

    name = "other"

    def charge(self, **kwargs: object) -> None:  # type: ignore[override]
        raise NotImplementedError

    def retrieve(self, **kwargs: object) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_the_ledger_alias_is_not_needed_by_another_gateway(settings) -> None:
    settings.BILLING_LEDGER_DATABASE = "payments"
    settings.BILLING_GATEWAY = "tests.billing.test_checks.OtherGateway"
    assert check_ledger_database() == []


def test_writing_charges_in_the_callers_transaction_is_allowed(settings) -> None:
    settings.BILLING_LEDGER_DATABASE = "default"
    assert check_ledger_database() == []


POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "saas", "HOST": "db", "PORT": 5432}


def test_a_ledger_alias_on_another_database_is_billing_e004() -> None:
    databases = {"default": POSTGRES, "ledger": {**POSTGRES, "NAME": "other", "PORT": 5433}}
    errors = ledger_database_errors("ledger", databases)
    assert ids(errors) == ["billing.E004"] and "its NAME, PORT differ" in errors[0].msg


@pytest.mark.parametrize(
    ("default", "changes", "message"),
    [
        (POSTGRES, {"ATOMIC_REQUESTS": True}, "ATOMIC_REQUESTS is on"),
        (POSTGRES, {"AUTOCOMMIT": False}, "AUTOCOMMIT is off"),
        (
            {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/db.sqlite3"},
            {},
            "on SQLite a second connection waits",
        ),
    ],
)
def test_a_ledger_alias_that_cannot_commit_on_its_own_is_billing_e005(
    default: dict[str, object], changes: dict[str, object], message: str
) -> None:
    errors = ledger_database_errors("ledger", {"default": default, "ledger": default | changes})
    assert ids(errors) == ["billing.E005"] and message in errors[0].msg
    assert "BILLING_LEDGER_DATABASE = 'default'" in errors[0].hint

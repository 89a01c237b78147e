"""System checks for the billing settings."""

from __future__ import annotations

import pytest

from billing.checks import check_gateway


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

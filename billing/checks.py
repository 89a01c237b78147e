"""System checks for the billing app's configuration (`manage.py check`)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from billing.conf import billing_settings


@register()
def check_gateway(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from billing.gateway import load_gateway_class

    conf = billing_settings()
    try:
        cls = load_gateway_class(conf.GATEWAY)
    except (ImportError, TypeError) as exc:
        return [
            Error(
                f"BILLING_GATEWAY={conf.GATEWAY!r} cannot be used: {exc}",
                hint="Name a subclass of billing.gateway.Gateway, e.g. the default "
                "'billing.gateway.LedgerGateway'.",
                id="billing.E001",
            )
        ]
    if not isinstance(conf.GATEWAY_OPTIONS, dict):
        return [
            Error(
                f"BILLING_GATEWAY_OPTIONS must be a dict, not {type(conf.GATEWAY_OPTIONS).__name__}.",
                hint="Keyword arguments for the gateway class, e.g. {} for the default.",
                id="billing.E002",
            )
        ]
    try:
        cls(**conf.GATEWAY_OPTIONS)
    except (TypeError, ValueError) as exc:
        return [
            Error(
                f"BILLING_GATEWAY_OPTIONS are refused by {conf.GATEWAY}: {exc}",
                hint="Check the option names and values against the gateway class's docstring.",
                id="billing.E002",
            )
        ]
    return []

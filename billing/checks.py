"""System checks for the billing app's configuration (`manage.py check`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.db import DEFAULT_DB_ALIAS

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


# What makes two aliases one database (the ledger's table is also read on the default one).
_SAME_DATABASE = ("ENGINE", "NAME", "HOST", "PORT")


@register()
def check_ledger_database(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The LedgerGateway's BILLING_LEDGER_DATABASE names a usable alias (only for that gateway)."""
    from billing.gateway import LedgerGateway, load_gateway_class

    conf = billing_settings()
    try:
        if not issubclass(load_gateway_class(conf.GATEWAY), LedgerGateway):
            return []
    except (ImportError, TypeError):
        return []  # billing.E001 reports it
    return ledger_database_errors(conf.LEDGER_DATABASE, settings.DATABASES)


def ledger_database_errors(alias: str, databases: Mapping[str, Any]) -> list[Error]:
    """What is wrong with `alias` as the ledger's connection among `databases` (DATABASES)."""
    if alias not in databases:
        return [
            Error(
                f"BILLING_LEDGER_DATABASE={alias!r} is not an alias in DATABASES: the ledger "
                "gateway has no connection to record charges on.",
                hint=f"Declare DATABASES[{alias!r}] as the default database under a second alias "
                "(saas.env.ledger_database derives it), or set BILLING_LEDGER_DATABASE to "
                "'default' to write charges in the caller's transaction.",
                id="billing.E003",
            )
        ]
    if alias == DEFAULT_DB_ALIAS:
        return []
    ledger = databases[alias]
    default = databases[DEFAULT_DB_ALIAS]
    differing = [
        key for key in _SAME_DATABASE if str(ledger.get(key, "")) != str(default.get(key, ""))
    ]
    if differing:
        return [
            Error(
                f"DATABASES[{alias!r}] (BILLING_LEDGER_DATABASE) is not the default database: "
                f"its {', '.join(differing)} differ.",
                hint="The ledger's charges are read on the default connection (reconciliation, "
                "admin): give the alias the default's ENGINE, NAME, HOST and PORT.",
                id="billing.E004",
            )
        ]
    reasons = []
    if "sqlite" in str(ledger.get("ENGINE", "")):
        reasons.append("on SQLite a second connection waits for the caller's write lock")
    if ledger.get("ATOMIC_REQUESTS"):
        reasons.append("ATOMIC_REQUESTS is on")
    if ledger.get("AUTOCOMMIT") is False:
        reasons.append("AUTOCOMMIT is off")
    if reasons:
        return [
            Error(
                f"DATABASES[{alias!r}] (BILLING_LEDGER_DATABASE) cannot commit each charge on "
                f"its own: {'; '.join(reasons)}.",
                hint="Leave ATOMIC_REQUESTS off and AUTOCOMMIT on for the ledger's alias; on "
                "SQLite set BILLING_LEDGER_DATABASE = 'default'.",
                id="billing.E005",
            )
        ]
    return []

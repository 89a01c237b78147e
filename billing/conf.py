"""Settings of the billing app, all prefixed BILLING_ and read lazily so override_settings works."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class BillingSettings:
    GATEWAY: str = "billing.gateway.LedgerGateway"
    """Dotted path of the billing.gateway.Gateway subclass that charges invoices."""
    GATEWAY_OPTIONS: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the gateway class (API keys, or the ledger's fault injection)."""
    LEDGER_DATABASE: str = "ledger"
    """The DATABASES alias the LedgerGateway writes its charges on: the default database
    reached through a connection of its own, so each charge commits at once whatever the
    caller's transaction does. "default" writes through the caller's connection instead (the
    embedded SQLite setup, where a second connection cannot write while the caller holds the
    file's write lock); a rollback then takes the charge with it."""


_FIELDS = [f.name for f in fields(BillingSettings)]


def billing_settings() -> BillingSettings:
    """The current BILLING_* settings over their defaults."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if hasattr(settings, f"BILLING_{name}"):
            values[name] = getattr(settings, f"BILLING_{name}")
    return BillingSettings(**values)

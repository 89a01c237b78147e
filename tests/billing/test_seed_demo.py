"""`manage.py seed_demo`: demo data with paid history, and a second run changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from billing.models import (
    Charge,
    Invoice,
    LedgerCharge,
    Membership,
    Plan,
    Subscription,
    Tenant,
)

# All aliases: the ledger gateway writes on its own (BILLING_LEDGER_DATABASE).
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def snapshot() -> dict[str, list[tuple[object, ...]]]:
    return {
        "users": sorted(get_user_model().objects.values_list("username", "password")),
        "tenants": sorted(Tenant.objects.values_list("slug", "name", "is_active")),
        "plans": sorted(Plan.objects.values_list("code", "price", "currency", "interval")),
        "memberships": sorted(
            Membership.objects.values_list("user__username", "tenant__slug", "role")
        ),
        "subscriptions": sorted(
            Subscription.objects.values_list(
                "tenant__slug", "status", "started_on", "current_period_start", "current_period_end"
            )
        ),
        "invoices": sorted(Invoice.objects.values_list("idempotency_key", "amount", "status")),
        "charges": sorted(
            Charge.objects.values_list("idempotency_key", "gateway_reference", "status")
        ),
        "ledger": sorted(
            LedgerCharge.objects.values_list("idempotency_key", "reference", "amount")
        ),
    }


def seed(today: str = "2026-11-28") -> str:
    out = StringIO()
    call_command("seed_demo", "--today", today, stdout=out)
    return out.getvalue()


def test_seed_demo_creates_logins_and_paid_history_and_a_second_run_changes_nothing() -> None:
    first_output = seed()
    first = snapshot()
    second_output = seed()
    assert snapshot() == first
    assert "Created: 0 plans, 0 tenants, 0 subscriptions, 0 invoices, 0 users" in second_output

    assert "demo / demo  (member of Acme)" in first_output
    assert "owner / owner  (owner of Acme, owner of Globex)" in first_output
    assert Client().login(username="demo", password="demo")
    assert Membership.objects.get(user__username="demo").tenant.name == "Acme"

    # History: every period that ended before "today" is invoiced, paid and charged once.
    invoices = Invoice.objects.all()
    assert invoices.filter(tenant__slug="initech").count() == 14  # daily plan, 14 days
    assert invoices.filter(tenant__slug="acme").count() == 3  # monthly, started 95 days ago
    assert {i.status for i in invoices} == {"paid"}
    assert Charge.objects.filter(status="succeeded").count() == invoices.count()
    assert LedgerCharge.objects.count() == invoices.count()


def test_a_bad_date_is_refused_naming_the_option() -> None:
    with pytest.raises(CommandError, match="--today: 'yesterday' is not a date"):
        seed("yesterday")
    assert not Tenant.objects.exists()

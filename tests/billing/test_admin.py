"""The billing admin: invoices and charges are searchable by key, read-only, and escaped."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing import services
from billing.gateway import LedgerGateway
from billing.models import Report, Tenant
from tests.billing.conftest import subscribed_tenant

# All aliases: the ledger gateway writes on its own (BILLING_LEDGER_DATABASE).
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

NOV_1 = date(2026, 11, 1)


@pytest.fixture
def admin_client() -> Client:
    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")
    return client


def test_invoices_and_charges_are_found_by_their_idempotency_key(admin_client: Client) -> None:
    tenant, _ = subscribed_tenant(NOV_1)
    other, _ = subscribed_tenant(NOV_1)
    for each in (tenant, other):
        services.tenant_reconcile(tenant=each, day=NOV_1, gateway=LedgerGateway())
    key = f"{tenant.pk}:2026-11-01/2026-11-01"

    page = admin_client.get("/admin/billing/invoice/", {"q": f"invoice:{key}"})
    assert page.status_code == 200
    assert f"invoice:{key}" in page.text and f"invoice:{other.pk}:" not in page.text

    page = admin_client.get("/admin/billing/charge/", {"q": f"charge:{key}"})
    assert f"charge:{key}" in page.text and f"charge:{other.pk}:" not in page.text

    page = admin_client.get("/admin/billing/ledgercharge/", {"q": f"charge:{key}"})
    assert f"charge:{key}" in page.text


def test_invoices_cannot_be_added_or_edited_by_hand(admin_client: Client) -> None:
    tenant, _ = subscribed_tenant(NOV_1)
    services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=LedgerGateway())
    invoice = tenant.invoices.get()
    assert admin_client.get("/admin/billing/invoice/add/").status_code == 403
    page = admin_client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.text
    response = admin_client.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"amount": 1})
    assert response.status_code == 403
    invoice.refresh_from_db()
    assert invoice.amount == 1_000


def test_names_are_escaped(admin_client: Client) -> None:
    subscribed_tenant(NOV_1, name="<script>alert(1)</script>")
    for url in ("/admin/billing/tenant/", "/admin/billing/subscription/"):
        page = admin_client.get(url)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<script>alert(1)</script>" not in page.text


def test_a_new_subscription_gets_its_first_period_from_the_admin(admin_client: Client) -> None:
    tenant, subscription = subscribed_tenant(NOV_1)
    subscription.status = "cancelled"
    subscription.ends_on = date(2026, 11, 5)
    subscription.save()
    response = admin_client.post(
        "/admin/billing/subscription/add/",
        {
            "tenant": tenant.pk,
            "plan": subscription.plan.pk,
            "status": "active",
            "started_on": "2026-11-10",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    created = tenant.subscriptions.get(status="active")
    assert (created.current_period_start, created.current_period_end) == (
        date(2026, 11, 10),
        date(2026, 11, 10),
    )


def test_a_negative_price_is_a_form_error_not_a_500(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/billing/plan/add/",
        {
            "code": "neg",
            "name": "Negative",
            "price": "-1",
            "currency": "EUR",
            "interval": "month",
            "interval_count": "1",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    assert "The price cannot be negative." in response.text


def test_a_second_live_subscription_is_a_form_error_not_a_500(admin_client: Client) -> None:
    tenant, subscription = subscribed_tenant(NOV_1)
    response = admin_client.post(
        "/admin/billing/subscription/add/",
        {
            "tenant": tenant.pk,
            "plan": subscription.plan.pk,
            "status": "active",
            "started_on": "2026-12-01",
        },
    )
    assert response.status_code == 200
    assert "already has an active or past-due subscription" in response.text
    assert tenant.subscriptions.count() == 1


def test_reports_are_listed_read_only_and_an_operator_may_delete_one(admin_client: Client) -> None:
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    report = Report.objects.create(
        tenant=tenant, month=date(2026, 10, 1), state="failed", message="We could not (boom)."
    )
    page = admin_client.get("/admin/billing/report/", {"state": "failed"})
    assert page.status_code == 200 and "We could not (boom)." in page.text
    assert admin_client.get("/admin/billing/report/add/").status_code == 403
    response = admin_client.post(f"/admin/billing/report/{report.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Report.objects.exists()

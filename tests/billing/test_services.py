"""Invoices, charges and the tenant-day reconciliation, on real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction

from billing import services
from billing.gateway import LedgerGateway
from billing.models import Charge, Discrepancy, Invoice, LedgerCharge, Plan, Subscription
from tests.billing.conftest import make_plan, make_tenant, subscribed_tenant

# All aliases: the ledger gateway writes on its own (BILLING_LEDGER_DATABASE).
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

NOV_1 = date(2026, 11, 1)
NOV_2 = date(2026, 11, 2)


def test_invoice_creation_is_idempotent_on_tenant_and_period() -> None:
    tenant = make_tenant()
    first, created = services.invoice_create(
        tenant=tenant, period_start=NOV_1, period_end=NOV_2, amount=500, currency="EUR"
    )
    again, created_again = services.invoice_create(
        tenant=tenant, period_start=NOV_1, period_end=NOV_2, amount=999, currency="EUR"
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.amount == 500, "the first amount stands"
    assert first.idempotency_key == f"invoice:{tenant.pk}:2026-11-01/2026-11-02"
    assert first.status == Invoice.Status.OPEN
    assert Invoice.objects.count() == 1


def test_bad_invoice_input_is_refused_naming_each_field() -> None:
    with pytest.raises(ValidationError) as info:
        services.invoice_create(
            tenant=make_tenant(), period_start=NOV_2, period_end=NOV_1, amount=-5, currency="eu"
        )
    assert set(info.value.message_dict) == {"amount", "currency", "period_end"}
    assert Invoice.objects.count() == 0


def test_the_database_refuses_negative_amounts_and_inverted_periods() -> None:
    tenant = make_tenant()
    with pytest.raises(IntegrityError, match="billing_invoice_amount_non_negative"):
        Invoice.objects.create(
            tenant=tenant, period_start=NOV_1, period_end=NOV_1, amount=-1, currency="EUR",
            idempotency_key="x",
        )  # fmt: skip
    with pytest.raises(IntegrityError, match="billing_invoice_valid_period"):
        Invoice.objects.create(
            tenant=tenant, period_start=NOV_2, period_end=NOV_1, amount=1, currency="EUR",
            idempotency_key="y",
        )  # fmt: skip
    with pytest.raises(IntegrityError, match="billing_plan_price_non_negative"):
        make_plan(price=-100)


def test_reconciling_a_day_invoices_the_period_that_ended_and_charges_it(
    gateway: LedgerGateway,
) -> None:
    tenant, subscription = subscribed_tenant(NOV_1, make_plan(price=1_234))
    result = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=gateway)
    invoice = Invoice.objects.get()
    assert (invoice.period_start, invoice.period_end, invoice.amount) == (NOV_1, NOV_1, 1_234)
    assert invoice.status == Invoice.Status.PAID and invoice.paid_at is not None
    charge = Charge.objects.get()
    assert charge.idempotency_key == f"charge:{tenant.pk}:2026-11-01/2026-11-01"
    assert charge.status == Charge.Status.SUCCEEDED and not charge.replayed
    assert LedgerCharge.objects.get().reference == charge.gateway_reference
    assert result.invoices_created == [invoice.idempotency_key]
    assert result.charged == [charge.idempotency_key]
    subscription.refresh_from_db()
    assert subscription.current_period_start == NOV_2, "the current period moved on"


def test_running_a_reconciliation_again_changes_nothing(gateway: LedgerGateway) -> None:
    tenant, _ = subscribed_tenant(NOV_1)
    services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=gateway)
    again = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=gateway)
    assert again.invoices_created == [] and again.charged == [] and again.flagged == []
    assert (Invoice.objects.count(), Charge.objects.count(), LedgerCharge.objects.count()) == (
        1,
        1,
        1,
    )


def test_a_monthly_subscription_is_invoiced_only_on_the_last_day_of_its_period(
    gateway: LedgerGateway,
) -> None:
    plan = make_plan(interval=Plan.Interval.MONTH, price=4_900)
    tenant, _ = subscribed_tenant(date(2026, 10, 15), plan)
    quiet = services.tenant_reconcile(tenant=tenant, day=date(2026, 11, 1), gateway=gateway)
    assert quiet.invoices_created == []
    services.tenant_reconcile(tenant=tenant, day=date(2026, 11, 14), gateway=gateway)
    invoice = Invoice.objects.get()
    assert (invoice.period_start, invoice.period_end) == (date(2026, 10, 15), date(2026, 11, 14))
    assert invoice.status == Invoice.Status.PAID


def test_a_charge_made_before_a_rollback_is_recovered_not_repeated() -> None:
    """Charged at the gateway, then the worker's transaction rolled back: the rerun finds
    the gateway's charge under the same key and books it instead of charging again."""
    tenant, _ = subscribed_tenant(NOV_1)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=LedgerGateway())
        raise RuntimeError("killed before the commit")
    assert Invoice.objects.count() == 0 and LedgerCharge.objects.count() == 1

    result = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=LedgerGateway())
    charge = Charge.objects.get()
    assert charge.replayed and charge.gateway_reference == LedgerCharge.objects.get().reference
    assert Invoice.objects.get().status == Invoice.Status.PAID
    assert LedgerCharge.objects.count() == 1, "the customer was charged twice"
    discrepancy = Discrepancy.objects.get()
    assert discrepancy.kind == Discrepancy.Kind.GATEWAY_PAID_INVOICE_OPEN
    assert discrepancy.resolution == Discrepancy.Resolution.FIXED
    assert result.replayed == [charge.idempotency_key]
    assert result.fixed == [Invoice.objects.get().idempotency_key]
    again = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=LedgerGateway())
    assert again.fixed == [] and again.replayed == []


def test_a_declined_charge_leaves_the_invoice_open_and_is_not_retried_with_the_same_key() -> None:
    tenant, subscription = subscribed_tenant(NOV_1)
    declining = LedgerGateway(decline_customers=[services.tenant_customer(tenant.pk)])
    result = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=declining)
    invoice = Invoice.objects.get()
    assert invoice.status == Invoice.Status.OPEN
    assert Charge.objects.get().status == Charge.Status.DECLINED
    assert result.declined == [invoice.charge_key] and result.charged == []
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PAST_DUE

    services.tenant_reconcile(tenant=tenant, day=NOV_2, gateway=LedgerGateway())
    assert LedgerCharge.objects.filter(idempotency_key=invoice.charge_key).count() == 1
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.OPEN


def test_a_paid_invoice_without_a_charge_is_flagged_once(gateway: LedgerGateway) -> None:
    tenant = make_tenant()
    invoice, _ = services.invoice_create(
        tenant=tenant, period_start=NOV_1, period_end=NOV_1, amount=700, currency="EUR"
    )
    Invoice.objects.filter(pk=invoice.pk).update(status="paid", paid_at=invoice.created_at)
    first = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=gateway)
    second = services.tenant_reconcile(tenant=tenant, day=NOV_2, gateway=gateway)
    assert first.flagged == [invoice.idempotency_key] and second.flagged == []
    flag = Discrepancy.objects.get()
    assert (flag.kind, flag.resolution) == ("paid_no_charge", "flagged")
    assert LedgerCharge.objects.count() == 0, "a paid invoice must never be charged"


def test_a_price_change_after_a_rolled_back_charge_is_flagged_not_charged_again() -> None:
    plan = make_plan(price=1_000)
    tenant, _ = subscribed_tenant(NOV_1, plan)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=LedgerGateway())
        raise RuntimeError("killed before the commit")
    Plan.objects.filter(pk=plan.pk).update(price=1_500)
    result = services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=LedgerGateway())
    invoice = Invoice.objects.get()
    assert invoice.status == Invoice.Status.OPEN and result.flagged == [invoice.idempotency_key]
    assert Discrepancy.objects.get().kind == Discrepancy.Kind.CHARGE_CONFLICT
    assert list(LedgerCharge.objects.values_list("amount", flat=True)) == [1_000]


def test_50_concurrent_duplicate_reconciliations_yield_one_invoice_and_one_charge() -> None:
    tenant, _ = subscribed_tenant(NOV_1, make_plan(price=2_500))
    # A slow gateway widens the window in which the duplicates overlap.
    gateway = LedgerGateway(pause_after_record=0.2)
    barrier = threading.Barrier(50)
    results: list[services.ReconcileResult] = []
    errors: list[BaseException] = []

    def reconcile() -> None:
        try:
            barrier.wait()
            results.append(services.tenant_reconcile(tenant=tenant, day=NOV_1, gateway=gateway))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's, the ledger's included

    threads = [threading.Thread(target=reconcile) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(results) == 50
    assert Invoice.objects.count() == 1 and Invoice.objects.get().status == "paid"
    assert Charge.objects.count() == 1
    assert list(LedgerCharge.objects.values_list("amount", flat=True)) == [2_500]
    assert sum(len(r.invoices_created) for r in results) == 1
    assert sum(len(r.charged) for r in results) == 1

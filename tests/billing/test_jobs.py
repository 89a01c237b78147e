"""The billing jobs through a real `rundramatiq` process."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dramatiq.brokers.redis import RedisBroker

import jobs
from billing import services
from billing.models import Invoice
from tests.billing.conftest import make_plan, subscribed_tenant
from tests.processes import wait_until

NOV_1 = date(2026, 11, 1)


def finished(run: jobs.JobRun, timeout: float = 60) -> jobs.JobRun:
    def check() -> jobs.JobRun | None:
        run.refresh_from_db()
        return run if run.is_finished else None

    wait_until(check, timeout, interval=0.2, what=f"run {run.id} ({run.job}) to finish")
    return run


@pytest.mark.parametrize(
    ("slot", "zone", "day"),
    [
        (datetime(2026, 11, 2, 2, 0, tzinfo=UTC), "UTC", date(2026, 11, 1)),
        # 02:00 in Berlin is 01:00 UTC in winter: still the Berlin day that just ended.
        (datetime(2026, 11, 2, 1, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 11, 1)),
        # Spring forward: 02:00 does not exist, the slot fires at 03:00 CEST (01:00 UTC).
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 28)),
        # 02:00 in New York is 07:00 UTC: a UTC date would be right here, wrong at 23:00.
        (datetime(2026, 11, 2, 7, 0, tzinfo=UTC), "America/New_York", date(2026, 11, 1)),
    ],
)
def test_a_slot_reconciles_the_local_day_that_ended_before_it(
    slot: datetime, zone: str, day: date
) -> None:
    assert services.reconciled_day(slot, zone) == day


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_reconcile_day_fans_out_one_keyed_run_per_active_tenant_once(
    billing_worker: Path, broker: RedisBroker
) -> None:
    plan = make_plan(price=800)
    acme, _ = subscribed_tenant(NOV_1, plan)
    globex, _ = subscribed_tenant(NOV_1, plan)
    subscribed_tenant(NOV_1, plan, is_active=False)

    day_run = finished(jobs.enqueue("billing.reconcile_day", {"date": "2026-11-01"}))
    assert day_run.state == "succeeded", day_run.error
    assert day_run.result == {"date": "2026-11-01", "tenants": 2, "enqueued": 2}
    tenant_runs = jobs.JobRun.objects.filter(job="billing.reconcile_tenant")
    assert sorted(tenant_runs.values_list("key", flat=True)) == sorted(
        [f"reconcile:{acme.pk}:2026-11-01", f"reconcile:{globex.pk}:2026-11-01"]
    )
    for run in tenant_runs:
        assert finished(run).state == "succeeded", run.error
    invoices = Invoice.objects.order_by("tenant_id")
    assert [(i.tenant_id, i.status, i.amount) for i in invoices] == [
        (acme.pk, "paid", 800),
        (globex.pk, "paid", 800),
    ]

    # An operator runs the day again: nothing new is enqueued, nothing is billed twice.
    again = finished(jobs.enqueue("billing.reconcile_day", {"date": "2026-11-01"}))
    assert again.result == {"date": "2026-11-01", "tenants": 2, "enqueued": 0}
    assert tenant_runs.count() == 2 and Invoice.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_an_ad_hoc_reconcile_day_without_a_date_fails_saying_why(
    billing_worker: Path, broker: RedisBroker
) -> None:
    run = jobs.enqueue("billing.reconcile_day", {})

    def failed_once() -> bool:
        run.refresh_from_db()
        return bool(run.history)

    wait_until(failed_once, 60, interval=0.2, what="the first attempt to fail")
    jobs.run_cancel(run=run)
    assert "date: this run was not fired by a schedule" in run.history[0]["error"]
    assert not jobs.JobRun.objects.filter(job="billing.reconcile_tenant").exists()


@pytest.mark.django_db
def test_a_bad_payload_is_refused_at_enqueue_naming_the_field() -> None:
    with pytest.raises(jobs.PayloadError) as info:
        jobs.enqueue("billing.reconcile_tenant", {"tenant_id": 0, "date": "2026-13-01"})
    fields = {path for path, _ in info.value.errors}
    assert fields == {"tenant_id", "date"}


@pytest.mark.django_db(transaction=True)
def test_an_operators_retry_of_a_dead_scheduled_run_reconciles_the_original_day() -> None:
    from billing.jobs import _day_from_slot
    from jobs.worker.claim import Claim, set_claim

    slot = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    schedule = jobs.Schedule.objects.create(
        name="daily", job="billing.reconcile_day", kind="interval", interval_seconds=86400
    )
    dead = jobs.JobRun.objects.create(
        job="billing.reconcile_day", schedule=schedule, scheduled_for=slot, state="dead"
    )
    retry = jobs.run_retry(run=dead)
    jobs.JobRun.objects.filter(pk=retry.pk).update(state="dead")  # the retry died too
    retry.refresh_from_db()
    again = jobs.run_retry(run=retry)
    assert retry.scheduled_for is None and again.retry_of_id == retry.pk
    set_claim(Claim(again.id, 1, again.job))
    try:
        assert _day_from_slot() == services.reconciled_day(slot)
    finally:
        set_claim(None)

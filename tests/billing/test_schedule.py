"""The seeded daily schedule: 02:00 local, and a scheduler outage caught up day by day."""

from __future__ import annotations

import importlib
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.conf import settings
from dramatiq.brokers.redis import RedisBroker

import jobs
from billing.models import Invoice
from jobs.scheduling.tick import tick
from tests.billing.conftest import make_plan, subscribed_tenant
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

seed_migration = importlib.import_module("billing.migrations.0002_seed_daily_reconciliation")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(settings.TIME_ZONE))


def seeded_schedule(first_slot_day: date) -> jobs.Schedule:
    """The migration's schedule (re-seeded: transactional tests flush the seeded row), with
    its next slot put at 02:00 local on `first_slot_day`."""
    jobs.Schedule.objects.update(enabled=False, next_run_at=None)  # nothing else fires
    seed_migration.seed(apps, None)
    schedule = jobs.Schedule.objects.get(name=seed_migration.NAME)
    schedule.enabled = True
    schedule.next_run_at = local(first_slot_day, 2)
    schedule.save()
    return schedule


def test_the_migration_seeds_02_00_local_with_a_three_day_catch_up() -> None:
    jobs.Schedule.objects.filter(name=seed_migration.NAME).delete()
    seed_migration.seed(apps, None)
    seed_migration.seed(apps, None)  # idempotent
    schedule = jobs.Schedule.objects.get(name="billing: daily reconciliation")
    assert (schedule.job, schedule.cron, schedule.timezone) == (
        "billing.reconcile_day",
        "0 2 * * *",
        settings.TIME_ZONE,
    )
    assert (schedule.misfire_policy, schedule.misfire_grace_seconds) == ("all", 3 * 86400)
    assert schedule.overlap_policy == "allow" and schedule.payload == {}
    next_local = schedule.next_run_at.astimezone(ZoneInfo(settings.TIME_ZONE))
    assert (next_local.hour, next_local.minute) == (2, 0)


@pytest.mark.e2e
@pytest.mark.timeout(150)
def test_a_three_day_scheduler_outage_catches_up_one_reconciliation_per_day(
    billing_worker: Path, broker: RedisBroker
) -> None:
    oct_31 = date(2026, 10, 31)
    plan = make_plan(price=300)
    tenants = [subscribed_tenant(oct_31, plan)[0] for _ in range(2)]
    seeded_schedule(date(2026, 11, 1))

    assert tick(local(date(2026, 11, 1), 2, 0)).fired == 1
    # The scheduler is down from here until 02:30 on 4 November.
    back = local(date(2026, 11, 4), 2, 30)
    assert tick(back).fired == 3
    assert tick(back).fired == 0, "a second scheduler (or tick) must fire nothing more"

    day_runs = jobs.JobRun.objects.filter(job="billing.reconcile_day").order_by("scheduled_for")
    expected_runs = 4 + 4 * len(tenants)

    def all_finished() -> bool:
        runs = jobs.JobRun.objects.filter(job__startswith="billing.")
        return runs.count() == expected_runs and all(r.is_finished for r in runs)

    wait_until(all_finished, 90, interval=0.3, what="the caught-up reconciliations")
    assert [r.state for r in day_runs] == ["succeeded"] * 4
    assert [r.scheduled_for for r in day_runs] == [
        local(date(2026, 11, d), 2) for d in (1, 2, 3, 4)
    ]
    assert [r.result["date"] for r in day_runs] == [
        "2026-10-31",
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
    ]
    for tenant in tenants:
        periods = list(
            Invoice.objects.filter(tenant=tenant, status="paid")
            .order_by("period_end")
            .values_list("period_end", flat=True)
        )
        assert periods == [oct_31 + timedelta(days=n) for n in range(4)]


def test_an_outage_longer_than_three_days_skips_the_oldest_days_saying_so(
    broker: RedisBroker,
) -> None:
    seeded_schedule(date(2026, 11, 2))
    result = tick(local(date(2026, 11, 6), 3, 0))  # last fired: never; down 4 days and 1 hour
    assert (result.fired, result.skipped) == (3, 2)
    runs = jobs.JobRun.objects.filter(job="billing.reconcile_day").order_by("scheduled_for")
    assert [(r.scheduled_for.day, r.state) for r in runs] == [
        (2, "skipped"),
        (3, "skipped"),
        (4, "queued"),
        (5, "queued"),
        (6, "queued"),
    ]
    assert "grace" in runs[0].reason or "missed" in runs[0].reason

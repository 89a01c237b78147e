"""Seed the daily reconciliation schedule: 02:00 in TIME_ZONE, catching up missed days."""

from datetime import UTC, datetime

from django.conf import settings
from django.db import migrations

from jobs.timing import Timing, next_fire

NAME = "billing: daily reconciliation"
CRON = "0 2 * * *"
# A scheduler outage of up to three days is caught up day by day (misfire "all"), each slot
# reconciling its own day; "allow" overlap so the caught-up slots are not collapsed into one.
GRACE_SECONDS = 3 * 24 * 3600


def seed(apps, schema_editor):
    Schedule = apps.get_model("jobs", "Schedule")
    if Schedule.objects.filter(name=NAME).exists():
        return
    now = datetime.now(UTC)
    zone = settings.TIME_ZONE or "UTC"
    timing = Timing(kind="cron", cron=CRON, timezone=zone)
    Schedule.objects.create(
        name=NAME,
        job="billing.reconcile_day",
        payload={},
        kind="cron",
        cron=CRON,
        timezone=zone,
        misfire_policy="all",
        misfire_grace_seconds=GRACE_SECONDS,
        overlap_policy="allow",
        next_run_at=next_fire(timing, now),
        created_at=now,
    )


def unseed(apps, schema_editor):
    apps.get_model("jobs", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("jobs", "0002_seed_prune_schedule"),
    ]
    operations = [migrations.RunPython(seed, unseed)]

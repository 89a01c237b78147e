"""Seed the retention schedule: prune old finished runs every night."""

from datetime import UTC, datetime

from django.db import migrations

from jobs.timing import Timing, next_fire

NAME = "jobs: prune old runs"


def seed(apps, schema_editor):
    Schedule = apps.get_model("jobs", "Schedule")
    if Schedule.objects.filter(name=NAME).exists():
        return
    now = datetime.now(UTC)
    timing = Timing(kind="cron", cron="30 3 * * *", timezone="UTC")
    Schedule.objects.create(
        name=NAME,
        job="jobs.prune_runs",
        payload={},
        kind="cron",
        cron="30 3 * * *",
        timezone="UTC",
        misfire_policy="latest",
        misfire_grace_seconds=6 * 3600,
        overlap_policy="skip",
        next_run_at=next_fire(timing, now),
        created_at=now,
    )


def unseed(apps, schema_editor):
    apps.get_model("jobs", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]

"""Two schedulers and three worker processes on one PostgreSQL and one broker."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count

from jobs.models import Heartbeat, JobRun, Schedule
from tests.e2e.conftest import ready, start
from tests.processes import manage_command, wait_until, worker_command
from tests.testapp.models import Marker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(240)]

START = datetime(2026, 3, 28, 23, 55, tzinfo=UTC)  # across a DST night in Europe/Berlin
SPEED = 30  # fake seconds per real second
FAKE_MINUTES = 4


def test_every_slot_runs_exactly_once_with_two_schedulers_and_three_workers(
    broker: Any, tmp_path: Path
) -> None:
    Schedule.objects.all().delete()
    Schedule.objects.bulk_create(
        Schedule(
            name=f"scale-{i:02d}",
            job="test.count",
            cron="* * * * *",
            timezone="Europe/Berlin",
            misfire_grace_seconds=3600,
            next_run_at=START + timedelta(minutes=1),
            created_at=START,
        )
        for i in range(40)
    )
    scheduler = manage_command(
        "runscheduler",
        "--clock-start",
        START.isoformat(),
        "--clock-speed",
        str(SPEED),
        "--max-sleep",
        "0.2",
    )
    with ExitStack() as stack:
        workers = []
        for i in range(3):
            log = tmp_path / f"worker{i}.log"
            workers.append((log, stack.enter_context(start(worker_command(threads=4), log))))
        for log, proc in workers:
            ready(log, proc)
        with ExitStack() as schedulers:
            for i in range(2):
                schedulers.enter_context(start(scheduler, tmp_path / f"scheduler{i}.log"))
            wait_until(
                lambda: Heartbeat.objects.filter(kind="scheduler").count() == 2,
                60,
                what="2 schedulers",
            )
            time.sleep(FAKE_MINUTES * 60 / SPEED)
        # Schedulers stopped: let the workers drain what they fired.
        wait_until(
            lambda: not JobRun.objects.exclude(state__in=JobRun.FINISHED_STATES).exists(),
            60,
            what="every run to finish",
        )
    runs = JobRun.objects.all()
    total = runs.count()
    assert total >= 40 * FAKE_MINUTES, f"only {total} runs"
    assert set(runs.values_list("state", flat=True)) == {"succeeded"}
    assert set(runs.values_list("attempts", flat=True)) == {1}
    per_slot = runs.values("schedule", "scheduled_for").annotate(n=Count("id")).filter(n__gt=1)
    assert not per_slot.exists(), "a slot ran twice"
    executions = Marker.objects.values("run_id").annotate(n=Count("id"))
    assert executions.count() == total and {row["n"] for row in executions} == {1}, (
        "a run executed twice"
    )
    workers_used = set(runs.values_list("worker", flat=True))
    # Which processes win the messages is up to the broker; more than one must have run some.
    assert len(workers_used) >= 2, f"the work was not spread: {workers_used}"
    with connection.cursor() as cursor:
        # No gaps: each schedule has one run per minute up to where the schedulers stopped.
        cursor.execute(
            "SELECT count(*) FROM jobs_schedule s WHERE (SELECT count(*) FROM jobs_jobrun r "
            "WHERE r.schedule_id = s.id) <> extract(epoch FROM s.next_run_at - %s) / 60 - 1",
            [START],
        )
        assert cursor.fetchone()[0] == 0

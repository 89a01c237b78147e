"""The real `runscheduler` command: several at once, --once, SIGTERM, heartbeats."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from dramatiq.brokers.redis import RedisBroker

from jobs.models import Heartbeat, JobRun, Schedule
from tests.processes import manage_command, project_env, running, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def _bulk_schedules(count: int) -> None:
    Schedule.objects.all().delete()
    Schedule.objects.bulk_create(
        Schedule(
            name=f"s{i:04d}",
            job="test.noop",
            kind="cron",
            cron="* * * * *",
            timezone="UTC",
            # A long grace: the fake clock runs 60x, so a late tick must not turn slots into skips.
            misfire_grace_seconds=3600,
            next_run_at=START + timedelta(minutes=1),
            created_at=START,
        )
        for i in range(count)
    )


@pytest.mark.timeout(240)
def test_three_schedulers_fire_every_slot_exactly_once(broker: RedisBroker, tmp_path: Path) -> None:
    _bulk_schedules(1000)
    args = manage_command(
        "runscheduler",
        "--clock-start",
        START.isoformat(),
        "--clock-speed",
        "60",
        "--max-sleep",
        "0.05",
    )
    logs = [tmp_path / f"scheduler{i}.log" for i in range(3)]
    with (
        running(args, project_env(), logs[0]),
        running(args, project_env(), logs[1]),
        running(args, project_env(), logs[2]),
    ):
        # Ten minutes of fake time, then a little more so all three have ticked through it.
        wait_until(
            lambda: Heartbeat.objects.filter(kind="scheduler").count() == 3,
            timeout=60,
            what="3 heartbeats",
        )
        time.sleep(10.5)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT schedule_id, scheduled_for FROM jobs_jobrun "
            "GROUP BY 1, 2 HAVING count(*) > 1) dup"
        )
        assert cursor.fetchone()[0] == 0, "a slot ran twice"
        # Every slot from the first up to each schedule's next_run_at has exactly one run: no gaps.
        cursor.execute(
            "SELECT count(*) FROM jobs_schedule s WHERE (SELECT count(*) FROM jobs_jobrun r "
            "WHERE r.schedule_id = s.id) <> extract(epoch FROM s.next_run_at - %s) / 60 - 1",
            [START],
        )
        assert cursor.fetchone()[0] == 0, "a schedule has a gap or an extra run"
    total = JobRun.objects.count()
    assert total >= 1000 * 9, f"only {total} runs in ten fake minutes"
    assert JobRun.objects.exclude(state="queued").count() == 0
    fired_by = [int(log.read_text().count("fired")) for log in logs]
    assert sum(1 for n in fired_by if n) >= 2, f"the work was not shared: {fired_by}"
    redis_ids = broker.client.llen(f"{broker.namespace}:default")
    assert redis_ids == total, "every run was sent exactly once"


def run_scheduler_once() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manage_command("runscheduler", "--once"),
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_once_runs_one_tick_and_reports_it(broker: RedisBroker) -> None:
    Schedule.objects.all().delete()
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.create(
        name="due",
        job="test.noop",
        kind="cron",
        # Yearly, so that only `slot` is due even when the test straddles a minute boundary
        # (with "* * * * *" the next minute's slot would be due too, and recorded as skipped).
        cron="0 0 1 1 *",
        next_run_at=slot,
        misfire_grace_seconds=600,
    )
    result = run_scheduler_once()
    assert result.returncode == 0, result.stderr
    assert "1 schedule(s), 1 fired, 0 skipped, 1 sent" in result.stdout
    assert JobRun.objects.get().state == "queued"
    beat = Heartbeat.objects.get(kind="scheduler")
    assert beat.last_error == "" and beat.info["fired"] == 1


def test_sigterm_stops_the_loop_cleanly(broker: RedisBroker, tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    with running(manage_command("runscheduler"), project_env(), log) as proc:
        wait_until(
            lambda: Heartbeat.objects.filter(kind="scheduler").exists(),
            timeout=60,
            what="a heartbeat",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    text = log.read_text()
    assert "Scheduler stopped." in text and "Traceback" not in text


def test_a_schedule_with_broken_timing_is_disabled_and_the_others_still_fire(
    broker: RedisBroker,
) -> None:
    Schedule.objects.all().delete()
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.create(
        name="broken",
        job="test.noop",
        kind="cron",
        cron="not a cron",  # written around validation, as a bad data migration could
        next_run_at=slot,
    )
    Schedule.objects.create(
        name="fine",
        job="test.noop",
        kind="cron",
        cron="0 0 1 1 *",  # yearly: only `slot` is due (see above)
        next_run_at=slot,
        misfire_grace_seconds=600,
    )
    result = run_scheduler_once()
    assert result.returncode == 0, result.stderr
    assert "schedule 'broken' disabled: its timing is invalid" in result.stderr
    broken = Schedule.objects.get(name="broken")
    assert broken.enabled is False and "Expected 5 fields" in broken.paused_reason
    assert JobRun.objects.get().schedule.name == "fine"


def test_a_failing_tick_is_logged_and_recorded_in_the_heartbeat(broker: RedisBroker) -> None:
    env = project_env(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    Schedule.objects.all().delete()
    # The broker being down is not a tick failure (runs wait in pending); a database
    # that refuses the query is.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE jobs_schedule RENAME TO jobs_schedule_away")
    try:
        result = subprocess.run(
            manage_command("runscheduler", "--once"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE jobs_schedule_away RENAME TO jobs_schedule")
    assert result.returncode == 1
    assert "The tick failed" in result.stderr and "jobs_schedule" in result.stderr
    assert "ProgrammingError" in Heartbeat.objects.get(kind="scheduler").last_error

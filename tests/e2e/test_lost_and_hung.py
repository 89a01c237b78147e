"""Broker data lost under queued runs, and a job that never returns: every run still ends."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from django.utils import timezone
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs import services
from jobs.models import Heartbeat, JobRun, Schedule
from tests.e2e.conftest import ready, start
from tests.processes import manage_command, wait_until, worker_command
from tests.redis_server import private_redis
from tests.tcp_proxy import cuttable_proxy
from tests.testapp.models import Marker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(240)]


def test_queued_runs_survive_redis_restarting_empty(tmp_path: Path) -> None:
    """500 runs are queued in a Redis that then restarts without persistence: the sweep sees
    that the broker holds fewer messages than the database has waiting runs and re-sends them;
    each runs exactly once."""
    with private_redis(tmp_path) as redis_server:
        env = {"REDIS_URL": redis_server.url, "TEST_JOBS_QUEUED_RESEND_AFTER_SECONDS": "5"}
        previous = dramatiq.get_broker()
        dramatiq.set_broker(RedisBroker(url=redis_server.url))
        try:
            runs = [jobs.enqueue("test.count") for _ in range(500)]
        finally:
            dramatiq.set_broker(previous)
        assert JobRun.objects.filter(state="queued").count() == 500
        redis_server.stop()
        redis_server.start()  # empty: every message is gone, the runs are still queued
        took, log = _recover(tmp_path, env, runs)
    print(f"Redis restarted empty: 500 queued runs finished {took:.1f} s later")
    assert "the broker holds 0 message(s) for 500 waiting run(s)" in log, log[-3000:]


def _recover(tmp_path: Path, env: dict[str, str], runs: list[JobRun]) -> tuple[float, str]:
    """Start a scheduler and a worker; wait until every run has succeeded, each exactly once.
    Returns how long that took and the scheduler's log."""
    began = time.monotonic()
    with (
        start(manage_command("runscheduler"), tmp_path / "scheduler.log", **env),
        start(worker_command(threads=4), tmp_path / "worker.log", **env) as worker,
    ):
        ready(tmp_path / "worker.log", worker)
        wait_until(
            lambda: JobRun.objects.filter(state="succeeded").count() == len(runs),
            90,
            interval=0.5,
            what="every run to succeed",
        )
    took = time.monotonic() - began
    executions = Marker.objects.filter(run_id__in=[r.id for r in runs])
    assert executions.count() == len(runs), "a run was executed twice or not at all"
    assert set(JobRun.objects.values_list("attempts", flat=True)) == {1}
    return took, (tmp_path / "scheduler.log").read_text()


def test_a_job_blocked_past_its_limit_ends_dead_and_its_worker_is_recycled(
    broker: RedisBroker, tmp_path: Path
) -> None:
    env = {"TEST_JOBS_HUNG_GRACE_SECONDS": "2", "TEST_JOBS_LEASE_SECONDS": "3"}
    log = tmp_path / "worker.log"
    with start(worker_command(threads=2), log, **env) as worker:
        ready(log, worker)
        run = jobs.enqueue("test.blocked", {"seconds": 40})
        started = time.monotonic()
        wait_until(
            lambda: JobRun.objects.filter(id=run.id, state="dead").exists(),
            30,
            interval=0.2,
            what="the hung run to be ended",
        )
        ended_in = time.monotonic() - started
        run.refresh_from_db()
        # The recycled worker process takes new work.
        wait_until(lambda: "recycling worker process" in log.read_text(), 30, what="recycling")
        wait_until(lambda: log.read_text().count("is ready for action") >= 2, 60, what="restart")
        after = jobs.enqueue("test.echo", {"value": 7})
        wait_until(
            lambda: JobRun.objects.filter(id=after.id, state="succeeded").exists(),
            30,
            what="a job on the recycled worker",
        )
        assert worker.poll() is None, "rundramatiq itself keeps running"
    print(f"hung job (3 s limit, 2 s grace) ended dead {ended_in:.1f} s after it was sent")
    assert run.error.startswith("Did not return from a blocking call"), run.error
    assert 'Last progress: 10 %, "Waiting on the socket".' in run.error
    assert run.attempts == 1 and run.lease_expires_at is None


def test_a_database_cut_for_30_s_loses_and_doubles_nothing(
    broker: RedisBroker, tmp_path: Path
) -> None:
    """Scheduler and worker reach PostgreSQL through a proxy that the test cuts for 30 s while
    runs are being delivered: claims that fail give their message back, the processes back off
    and say so once, and afterwards every run finishes exactly once."""
    from django.db import connection

    settings = connection.settings_dict
    target = (settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    schedule = Schedule.objects.create(
        name="every-2-s", job="test.count", kind="interval", interval_seconds=2
    )
    services.schedule_save(schedule=schedule)
    # Runs due before, during and after the cut, so some are delivered while it lasts.
    runs = [jobs.enqueue("test.count", delay=timedelta(seconds=i * 0.25)) for i in range(240)]
    with cuttable_proxy(target) as proxy:
        env = {
            "DATABASE_URL": f"postgres://{settings['USER']}@127.0.0.1:{proxy.port}/{settings['NAME']}",
            "TEST_JOBS_QUEUED_RESEND_AFTER_SECONDS": "5",
        }
        scheduler_log, worker_log = tmp_path / "scheduler.log", tmp_path / "worker.log"
        with (
            start(manage_command("runscheduler"), scheduler_log, **env) as scheduler,
            start(worker_command(threads=4), worker_log, **env) as worker,
        ):
            ready(worker_log, worker)
            time.sleep(10)
            lines_before = len(scheduler_log.read_text().splitlines())
            worker_lines_before = len(worker_log.read_text().splitlines())
            proxy.cut()
            time.sleep(30)
            lines_during = len(scheduler_log.read_text().splitlines()) - lines_before
            worker_lines_during = len(worker_log.read_text().splitlines()) - worker_lines_before
            proxy.restore()
            restored = time.monotonic()
            wait_until(
                lambda: (
                    not JobRun.objects.filter(id__in=[r.id for r in runs])
                    .exclude(state="succeeded")
                    .exists()
                ),
                90,
                interval=0.5,
                what="every enqueued run to succeed",
            )
            took = time.monotonic() - restored
            drained_at = timezone.now() - timedelta(seconds=5)
            assert scheduler.poll() is None and worker.poll() is None, "a process died"
        log = scheduler_log.read_text()
    wait_until(lambda: not _other_sessions(), 15, what="the proxied sessions to close")
    print(
        f"database cut 30 s: scheduler wrote {lines_during} log lines during it, the worker "
        f"{worker_lines_during}; "
        f"the enqueued runs finished {took:.1f} s after it ended"
    )
    assert "database unreachable" in log and "database back after" in log, log[-3000:]
    assert lines_during < 20, log[-3000:]
    assert worker_lines_during < 20, worker_log.read_text()[-3000:]
    executions = Marker.objects.filter(run_id__in=[r.id for r in runs])
    assert executions.count() == 240, "a run was executed twice or not at all"
    # The schedule: one run per slot, each slot due by the end ran once, none before its slot.
    slot_runs = JobRun.objects.filter(schedule=schedule)
    due = slot_runs.filter(scheduled_for__lte=drained_at)
    assert due.count() >= 10
    assert slot_runs.count() == slot_runs.values("scheduled_for").distinct().count()
    assert set(due.values_list("state", flat=True)) <= {"succeeded", "skipped"}
    for run in slot_runs.filter(started_at__isnull=False):
        assert run.started_at >= run.scheduled_for, run.id
    slot_ids = list(slot_runs.values_list("id", flat=True))
    assert (
        Marker.objects.filter(run_id__in=slot_ids).count()
        == slot_runs.filter(state="succeeded").count()
    ), "a slot ran twice"


def _other_sessions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_a_scheduler_whose_clock_is_30_s_ahead_fires_nothing_early_and_takes_nothing_over(
    broker: RedisBroker, tmp_path: Path
) -> None:
    """The scheduler's host reads 30 s ahead (Django's clock shifted in that process). Slots
    and leases are decided on the database's clock, so no run starts before its slot and the
    healthy long run on the worker (3 s leases) is never taken over; the skew is recorded."""
    schedule = Schedule.objects.create(
        name="every-2-s", job="test.count", kind="interval", interval_seconds=2
    )
    services.schedule_save(schedule=schedule)
    long_run = jobs.enqueue("test.sleepy", {"seconds": 12, "steps": 12})
    lease = {"TEST_JOBS_LEASE_SECONDS": "3", "TEST_JOBS_SWEEP_INTERVAL_SECONDS": "1"}
    with (
        start(
            manage_command("runscheduler"),
            tmp_path / "scheduler.log",
            TEST_CLOCK_SHIFT_SECONDS="30",
            **lease,
        ),
        start(worker_command(threads=4), tmp_path / "worker.log", **lease) as worker,
    ):
        ready(tmp_path / "worker.log", worker)
        wait_until(
            lambda: JobRun.objects.filter(id=long_run.id, state="succeeded").exists(),
            40,
            interval=0.5,
            what="the long run to succeed",
        )
        heartbeat = wait_until(
            lambda: Heartbeat.objects.filter(kind="scheduler").first(), 10, what="a heartbeat"
        )
    long_run.refresh_from_db()
    assert long_run.attempts == 1 and long_run.worker_losses == 0, long_run.history
    started = JobRun.objects.filter(schedule=schedule, started_at__isnull=False)
    assert started.count() >= 5
    for run in started:
        assert run.started_at >= run.scheduled_for, (run.started_at, run.scheduled_for)
        assert run.attempts == 1
    assert isinstance(heartbeat, Heartbeat)
    skew = heartbeat.info["clock_skew_s"]
    print(f"scheduler 30 s ahead: skew recorded {skew} s; {started.count()} slots, none early")
    assert 29 <= skew <= 31, heartbeat.info


def test_queued_runs_survive_a_purged_rabbitmq_queue(tmp_path: Path) -> None:
    """300 runs wait in RabbitMQ; the queue is purged (an operator's mistake, a policy). The
    sweep compares RabbitMQ's count with the database's waiting runs and re-sends them."""
    url = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    rabbitmq = RabbitmqBroker(url=url)
    previous = dramatiq.get_broker()
    dramatiq.set_broker(rabbitmq)
    try:
        rabbitmq.flush_all()
        runs = [jobs.enqueue("test.count") for _ in range(300)]
        assert rabbitmq.get_queue_message_counts("default")[0] == 300
        rabbitmq.flush("default")
    finally:
        dramatiq.set_broker(previous)
    env = {"BROKER_URL": url, "TEST_JOBS_QUEUED_RESEND_AFTER_SECONDS": "5"}
    try:
        took, log = _recover(tmp_path, env, runs)
    finally:
        rabbitmq.flush_all()
        rabbitmq.close()
    print(f"RabbitMQ queue purged: 300 queued runs finished {took:.1f} s later")
    assert "the broker holds 0 message(s) for 300 waiting run(s)" in log, log[-3000:]

"""Crashes and outages: kill -9, a GIL-bound job, a killed database connection, a lost retry."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.db import connection
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.models import JobRun
from tests.e2e.conftest import ready, start
from tests.processes import manage_command, wait_until, worker_command
from tests.redis_server import private_redis
from tests.testapp.models import Marker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(180)]


def wait_finished(run: JobRun, timeout: float) -> JobRun:
    def check() -> JobRun | None:
        run.refresh_from_db()
        return run if run.is_finished else None

    wait_until(check, timeout, interval=0.2, what=f"run {run.id} to finish")
    return run


def test_kill_9_mid_job_a_second_worker_finishes_it_within_30_s(
    broker: RedisBroker, tmp_path: Path
) -> None:
    """Default lease and sweep settings: the bound is what production gets."""
    with start(manage_command("runscheduler"), tmp_path / "scheduler.log"):
        with start(worker_command(threads=2), tmp_path / "a.log") as worker_a:
            ready(tmp_path / "a.log", worker_a)
            run = jobs.enqueue("test.sleepy", {"seconds": 8, "steps": 16})
            first = wait_until(
                lambda: (
                    JobRun.objects.filter(id=run.id, state="running", progress__gt=0)
                    .values_list("worker", flat=True)
                    .first()
                ),
                30,
                what="the first attempt to run",
            )
            os.killpg(worker_a.pid, signal.SIGKILL)
            killed_at = time.monotonic()
        with start(worker_command(threads=2), tmp_path / "b.log") as worker_b:
            ready(tmp_path / "b.log", worker_b)
            run = wait_finished(
                run, timeout=30 - (time.monotonic() - killed_at) + 8
            )  # + the job itself
    recovered_in = time.monotonic() - killed_at
    print(f"kill -9 recovery: run finished {recovered_in:.1f} s after the kill (job takes 8 s)")
    assert run.state == "succeeded"
    assert run.attempts == 2
    assert run.worker != first
    assert run.history[0]["attempt"] == 1 and "worker lost" in run.history[0]["error"]


def test_a_job_holding_the_gil_past_the_broker_heartbeat_runs_once(
    broker: RedisBroker, tmp_path: Path
) -> None:
    # A 1 s broker heartbeat and maintenance on every Redis command: the other worker will
    # decide the GIL-bound one is dead and redeliver its message while it still runs.
    env = {"TEST_BROKER_HEARTBEAT_MS": "1000", "TEST_BROKER_MAINTENANCE_CHANCE": "1000000"}
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with (
        start(worker_command(threads=2), logs[0], **env) as a,
        start(worker_command(threads=2), logs[1], **env) as b,
    ):
        ready(logs[0], a)
        ready(logs[1], b)
        run = wait_finished(jobs.enqueue("test.gil_hog", {"seconds": 6}), timeout=60)
        time.sleep(2)  # let any late redelivery arrive and be judged
    text = "".join(log.read_text() for log in logs)
    assert run.state == "succeeded"
    assert run.attempts == 1, "the job ran more than once"
    assert f"dropping message for run {run.id}: duplicate delivery" in text, (
        "the broker did not redeliver the message, so this test proved nothing"
    )


def test_a_terminated_database_connection_fails_the_attempt_cleanly_and_the_retry_succeeds(
    broker: RedisBroker, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    with start(worker_command(threads=2), tmp_path / "worker.log") as worker:
        ready(tmp_path / "worker.log", worker)
        run = jobs.enqueue("test.db_writer", {"rows": 6, "pid_file": str(pid_file), "pause": 0.4})
        wait_until(
            lambda: pid_file.exists() and pid_file.read_text().startswith("1 "),
            30,
            what="attempt 1",
        )
        time.sleep(1.0)  # a few rows are written in the job's open transaction
        backend = int(pid_file.read_text().split()[1])
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
            assert cursor.fetchone()[0] is True
        run = wait_finished(run, timeout=60)
    assert run.state == "succeeded" and run.attempts == 2
    assert "OperationalError" in run.history[0]["error"]
    markers = list(Marker.objects.filter(run_id=run.id).values_list("attempt", "n"))
    assert sorted(markers) == [(2, n) for n in range(6)], "attempt 1 left partial rows"


def test_a_retry_lost_in_a_redis_outage_is_re_sent_by_the_sweep(tmp_path: Path) -> None:
    started = tmp_path / "started"
    with private_redis(tmp_path) as redis_server:
        env = {"REDIS_URL": redis_server.url, "TEST_JOBS_RETRY_RESEND_AFTER_SECONDS": "2"}
        with (
            start(manage_command("runscheduler"), tmp_path / "scheduler.log", **env),
            start(worker_command(threads=2), tmp_path / "worker.log", **env) as worker,
        ):
            ready(tmp_path / "worker.log", worker)
            run = JobRun.objects.create(
                job="test.fails_slowly_once",
                payload={"seconds": 3, "started_file": str(started)},
                max_retries=3,
            )
            import dramatiq

            from jobs.runs.send import send_runs

            previous = dramatiq.get_broker()
            dramatiq.set_broker(RedisBroker(url=redis_server.url))
            try:
                dramatiq.get_broker().declare_queue("default")
                assert send_runs([run.id]) == 1
            finally:
                dramatiq.set_broker(previous)
            wait_until(started.exists, 30, what="attempt 1 to start")
            redis_server.stop()  # attempt 1 fails while Redis is down: Dramatiq's retry is lost
            wait_until(
                lambda: JobRun.objects.filter(id=run.id, state="retrying").exists(),
                30,
                what="retrying",
            )
            time.sleep(1)
            redis_server.start()  # back, but empty: the retry message is gone
            run = wait_finished(run, timeout=60)
        log = (tmp_path / "worker.log").read_text()
    assert run.state == "succeeded" and run.attempts == 2, log[-3000:]
    assert run.result == {"attempt": 2}


def test_sigterm_lets_a_running_job_finish_on_its_lease(
    broker: RedisBroker, tmp_path: Path
) -> None:
    """A graceful stop (a deploy) drains running jobs: their leases are renewed until they
    finish, so the sweep does not hand them to another worker in the meantime."""
    short = {"TEST_JOBS_LEASE_SECONDS": "3", "TEST_JOBS_SWEEP_INTERVAL_SECONDS": "1"}
    with (
        start(manage_command("runscheduler"), tmp_path / "scheduler.log", **short),
        start(worker_command(threads=2), tmp_path / "worker.log", **short) as worker,
    ):
        ready(tmp_path / "worker.log", worker)
        run = jobs.enqueue("test.sleepy", {"seconds": 8, "steps": 32})
        wait_until(
            lambda: JobRun.objects.filter(id=run.id, state="running", progress__gt=0).exists(),
            30,
            what="the job to start",
        )
        os.kill(worker.pid, signal.SIGTERM)  # runs 8 s: well past the 3 s lease
        assert worker.wait(60) == 0
    run.refresh_from_db()
    assert (run.state, run.attempts, run.history) == ("succeeded", 1, []), run.error

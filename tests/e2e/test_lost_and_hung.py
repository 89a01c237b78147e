"""Broker data lost under queued runs, and a job that never returns: every run still ends."""

from __future__ import annotations

import time
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.models import JobRun
from tests.e2e.conftest import ready, start
from tests.processes import manage_command, wait_until, worker_command
from tests.redis_server import private_redis
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
        restarted = time.monotonic()
        with (
            start(manage_command("runscheduler"), tmp_path / "scheduler.log", **env),
            start(worker_command(threads=4), tmp_path / "worker.log", **env) as worker,
        ):
            ready(tmp_path / "worker.log", worker)
            wait_until(
                lambda: JobRun.objects.filter(state="succeeded").count() == 500,
                90,
                interval=0.5,
                what="every run to succeed",
            )
        took = time.monotonic() - restarted
        log = (tmp_path / "scheduler.log").read_text()
    print(f"Redis restarted empty: 500 queued runs finished {took:.1f} s later")
    assert "the broker holds 0 message(s) for 500 waiting run(s)" in log, log[-3000:]
    executions = Marker.objects.filter(run_id__in=[r.id for r in runs])
    assert executions.count() == 500, "a run was executed twice or not at all"
    assert set(JobRun.objects.values_list("attempts", flat=True)) == {1}


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

"""Runs through a real `rundramatiq` process: the whole recorded lifecycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.models import JobRun
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(120)]


def finished(run: JobRun, timeout: float = 30) -> JobRun:
    def check() -> JobRun | None:
        run.refresh_from_db()
        return run if run.is_finished else None

    wait_until(check, timeout, what=f"run {run.id} ({run.job}) to finish")
    return run


def test_a_job_succeeds_with_its_result_recorded(worker: Path, broker: RedisBroker) -> None:
    run = finished(jobs.enqueue("test.echo", {"value": [1, "two"]}))
    assert run.state == "succeeded"
    assert run.result == {"echo": [1, "two"]}
    assert run.attempts == 1 and run.progress == 100
    assert run.worker and run.started_at <= run.finished_at
    assert run.lease_expires_at is None


def test_a_failing_job_is_retried_with_backoff_then_succeeds(
    worker: Path, broker: RedisBroker
) -> None:
    run = finished(jobs.enqueue("test.flaky", {"fail_times": 2}))
    assert run.state == "succeeded"
    assert run.attempts == 3 and run.result == {"succeeded_on_attempt": 3}
    assert [h["attempt"] for h in run.history] == [1, 2]
    assert "planned failure on attempt 1" in run.history[0]["error"]


def test_the_last_failure_makes_the_run_dead_with_error_and_traceback(
    worker: Path, broker: Any
) -> None:
    run = finished(jobs.enqueue("test.always_fails"))
    assert run.state == "dead"
    assert run.attempts == 3  # max_retries=2
    assert run.error.startswith("ValueError: this job always fails")
    assert 'raise ValueError("this job always fails' in run.traceback
    assert len(run.history) == 3
    # The worker's log ties its lines to the run: Dramatiq's failure line and the alert's.
    alert = f"test.always_fails died after 3 attempt(s): run {run.id}"
    # The alert is logged just after the dead state commits: wait for the line, bounded.
    wait_until(lambda: alert in worker.read_text(), 10, what="the alert's log line")
    assert f"[test.always_fails {run.id} attempt 3]" in worker.read_text()

    # Dramatiq's dead-letter queue has the message too (nacked just after the run is recorded).
    if isinstance(broker, RedisBroker):

        def dead_lettered() -> bool:
            raw = broker.client.hvals(f"{broker.namespace}:default.XQ.msgs")
            return str(run.id) in {dramatiq.Message.decode(m).message_id for m in raw}

    else:  # RabbitMQ

        def dead_lettered() -> bool:
            return bool(broker.get_queue_message_counts("default")[2] >= 1)

    wait_until(dead_lettered, 10, what="the message in the dead-letter queue")


def test_a_time_limit_interrupts_the_job_and_says_so(worker: Path, broker: RedisBroker) -> None:
    run = finished(jobs.enqueue("test.too_slow", {"seconds": 30}))
    assert run.state == "dead"
    assert run.error == "Time limit exceeded: the job ran longer than 1 s and was interrupted."


def test_progress_is_visible_from_another_connection_while_running(
    worker: Path, broker: RedisBroker
) -> None:
    run = jobs.enqueue("test.sleepy", {"seconds": 4, "steps": 8})
    seen = wait_until(
        lambda: (
            JobRun.objects.filter(id=run.id, state="running", progress__gt=0, progress__lt=100)
            .values_list("progress", "progress_message")
            .first()
        ),
        timeout=20,
        interval=0.05,
        what="progress between 0 and 100",
    )
    assert seen[1].startswith("step ")
    assert finished(run).state == "succeeded"


def test_cancelling_a_running_run_stops_it_at_its_next_progress_call(
    worker: Path, broker: RedisBroker
) -> None:
    run = jobs.enqueue("test.sleepy", {"seconds": 60, "steps": 120})
    wait_until(
        lambda: JobRun.objects.filter(id=run.id, state="running").exists(), 20, what="running"
    )
    assert jobs.run_cancel(run=run) == "requested"
    run = finished(run, timeout=15)
    assert run.state == "cancelled"
    assert run.reason == "cancelled while running"
    assert run.finished_at is not None


def test_cancelling_a_queued_run_makes_the_worker_skip_it(
    worker: Path, broker: RedisBroker
) -> None:
    # Held back by a delay so it is still queued when cancelled, then delivered anyway.
    run = jobs.enqueue(
        "test.echo", {"value": "never"}, delay=__import__("datetime").timedelta(seconds=2)
    )
    run.refresh_from_db()
    assert run.state == "queued"
    assert jobs.run_cancel(run=run) == "cancelled"
    wait_until(
        lambda: f"dropping message for run {run.id}" in worker.read_text(), 20, what="the drop"
    )
    run.refresh_from_db()
    assert run.state == "cancelled" and run.result is None and run.attempts == 0


def test_a_duplicate_message_for_a_finished_run_is_dropped(
    worker: Path, broker: RedisBroker
) -> None:
    from jobs.runs.send import send_runs

    run = finished(jobs.enqueue("test.echo", {"value": 1}))
    send_runs([run.id], only_pending=False)  # the broker redelivers it
    wait_until(
        lambda: (
            f"dropping message for run {run.id}: duplicate delivery: the run is already succeeded"
            in worker.read_text()
        ),
        20,
        what="the duplicate to be dropped",
    )
    run.refresh_from_db()
    assert run.attempts == 1


def test_the_worker_uses_the_configured_broker(worker: Path, broker: Any) -> None:
    """`make test-rabbitmq` runs this module with BROKER_URL=amqp://...: prove it is RabbitMQ."""
    import os

    expected = (
        "RabbitmqBroker" if os.environ.get("BROKER_URL", "").startswith("amqp") else "RedisBroker"
    )
    assert type(broker).__name__ == expected
    run = finished(jobs.enqueue("test.echo", {"value": expected}))
    assert run.result == {"echo": expected}

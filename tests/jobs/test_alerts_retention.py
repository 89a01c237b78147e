from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail
from django.core.checks import run_checks
from django.test import override_settings
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.builtin_jobs import prune_runs
from jobs.models import JobRun, Schedule
from jobs.runs import transitions
from jobs.scheduling.loop import SchedulerLoop
from jobs.signals import run_dead, schedules_late
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on loopback that records what it is sent."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _running_run(**fields: Any) -> JobRun:
    return JobRun.objects.create(
        job="test.always_fails", state="running", attempts=1, worker="w:1", **fields
    )


def test_a_dead_run_sends_a_signal_a_mail_and_a_webhook(
    settings: Any, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    settings.JOBS_ALERT_WEBHOOK_URL = url
    settings.ADMINS = ["ops@example.com"]
    signalled: list[JobRun] = []

    def receiver(sender: Any, run: JobRun, **kwargs: Any) -> None:
        signalled.append(run)

    run_dead.connect(receiver)
    try:
        run = _running_run()
        died = _fail(run, error="ValueError: boom", traceback="tb")
    finally:
        run_dead.disconnect(receiver)
    assert died
    assert [r.id for r in signalled] == [run.id]
    wait_until(lambda: mail.outbox and received, 10, what="mail and webhook")
    assert "test.always_fails died after 1 attempt(s)" in mail.outbox[0].subject
    assert "ValueError: boom" in mail.outbox[0].body
    assert "test.always_fails died" in received[0]["text"]


def test_a_broken_webhook_never_fails_the_caller(settings: Any) -> None:
    settings.JOBS_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/unreachable"
    run = _running_run()
    assert _fail(run, error="E")
    run.refresh_from_db()
    assert run.state == "dead"


def test_a_stale_attempt_cannot_record_an_outcome() -> None:
    run = _running_run()
    JobRun.objects.filter(id=run.id).update(attempts=2)  # another worker took over
    assert not _fail(run, error="late")
    run.refresh_from_db()
    assert run.state == "running" and run.error == ""


def test_late_schedules_are_alerted_once(settings: Any, broker: RedisBroker) -> None:
    settings.ADMINS = ["ops@example.com"]
    Schedule.objects.all().delete()
    Schedule.objects.create(
        name="nightly",
        job="test.noop",
        cron="0 2 * * *",
        next_run_at=datetime.now(UTC) - timedelta(hours=3),
        misfire_grace_seconds=60,
    )
    late: list[list[Schedule]] = []

    def receiver(sender: Any, schedules: list[Schedule], **kwargs: Any) -> None:
        late.append(schedules)

    schedules_late.connect(receiver)
    try:
        loop = SchedulerLoop()
        loop.run_once()
        loop.run_once()
    finally:
        schedules_late.disconnect(receiver)
    assert [[s.name for s in batch] for batch in late] == [["nightly"]]
    wait_until(lambda: mail.outbox, 10, what="the late mail")
    assert "1 schedule(s) late by up to 3:00" in mail.outbox[0].subject


def test_prune_deletes_only_old_finished_runs() -> None:
    now = datetime.now(UTC)

    def run(state: str, age_days: float) -> JobRun:
        return JobRun.objects.create(
            job="test.noop", state=state, finished_at=now - timedelta(days=age_days)
        )

    keep = [run("succeeded", 5), run("dead", 60), run("skipped", 89)]
    JobRun.objects.create(job="test.noop", state="running")  # unfinished: never pruned
    gone = [run("succeeded", 15), run("dead", 91), run("cancelled", 200)]
    assert prune_runs.fn() == {"succeeded": 1, "failed": 2}
    remaining = set(JobRun.objects.values_list("id", flat=True))
    assert {r.id for r in keep} <= remaining
    assert not {r.id for r in gone} & remaining
    assert JobRun.objects.count() == 4


def test_prune_is_one_delete_per_batch_oldest_first_and_unlinks_referring_runs(
    settings: Any,
) -> None:
    """Nothing is loaded into Python: each batch is one DELETE along the finished_at index,
    and the retries and reports that refer to a pruned run are set NULL by the database."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.JOBS_RETENTION_BATCH_SIZE = 2
    now = datetime.now(UTC)
    old = [
        JobRun.objects.create(
            job="test.noop", state="succeeded", finished_at=now - timedelta(days=30 + i)
        )
        for i in range(5)
    ]
    retry = JobRun.objects.create(job="test.noop", state="succeeded", retry_of=old[0])
    with CaptureQueriesContext(connection) as queries:
        assert prune_runs.fn() == {"succeeded": 5, "failed": 0}
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3 + 3, deletes  # 2 + 2 + 1 succeeded; one empty batch per failed state
    assert all('ORDER BY "U0"."finished_at" ASC LIMIT 2' in sql for sql in deletes), deletes[0]
    assert not [q for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    retry.refresh_from_db()
    assert retry.retry_of_id is None


def test_the_retention_schedule_is_seeded_by_a_migration() -> None:
    from importlib import import_module

    from django.apps import apps

    seed = import_module("jobs.migrations.0002_seed_prune_schedule")
    Schedule.objects.filter(job="jobs.prune_runs").delete()
    seed.seed(apps, None)
    schedule = Schedule.objects.get(job="jobs.prune_runs")
    assert schedule.enabled and schedule.next_run_at > datetime.now(UTC)
    assert schedule.cron == "30 3 * * *"


def test_retry_of_a_dead_run_is_a_new_linked_run(broker: RedisBroker) -> None:
    dead = JobRun.objects.create(
        job="test.echo", payload={"value": 1}, state="dead", attempts=3, error="boom"
    )
    retry = jobs.run_retry(run=dead)
    retry.refresh_from_db()
    dead.refresh_from_db()
    assert (
        retry.retry_of_id == dead.id and retry.state == "queued" and retry.payload == {"value": 1}
    )
    assert dead.state == "dead" and dead.error == "boom", "history is kept"
    with pytest.raises(ValueError, match="Only dead, cancelled or skipped runs"):
        jobs.run_retry(run=retry)


def test_cancel_says_what_it_did(broker: RedisBroker) -> None:
    queued = jobs.enqueue("test.noop")
    running = JobRun.objects.create(job="test.noop", state="running", attempts=1)
    done = JobRun.objects.create(job="test.noop", state="succeeded")
    assert jobs.run_cancel(run=queued) == "cancelled"
    assert jobs.run_cancel(run=running) == "requested"
    assert jobs.run_cancel(run=done) == "finished"
    running.refresh_from_db()
    assert running.cancel_requested and running.state == "running"
    assert JobRun.objects.get(id=queued.id).state == "cancelled"
    assert JobRun.objects.filter(id=uuid.uuid4()).count() == 0


MIDDLEWARE = [
    "dramatiq.middleware.AgeLimit",
    "jobs.worker.middleware.RunRecorder",
    "dramatiq.middleware.Retries",
]


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"JOBS_LEASE_SECONDS": 0}, "jobs.E002"),
        ({"JOBS_TICK_BATCH_SIZE": "500"}, "jobs.E002"),
        ({"JOBS_SWEEP_INTERVAL_SECONDS": 30, "JOBS_LEASE_SECONDS": 15}, "jobs.W001"),
        ({"DRAMATIQ_BROKER": {"MIDDLEWARE": ["dramatiq.middleware.Retries"]}}, "jobs.E003"),
        (
            {
                "DRAMATIQ_BROKER": {
                    "MIDDLEWARE": [
                        "jobs.worker.middleware.RunRecorder",
                        "dramatiq.middleware.Retries",
                    ]
                }
            },
            "jobs.E004",
        ),
        (
            {"DRAMATIQ_BROKER": {"MIDDLEWARE": [MIDDLEWARE[0], MIDDLEWARE[2], MIDDLEWARE[1]]}},
            "jobs.E005",
        ),
        (
            {
                "DRAMATIQ_BROKER": {
                    "MIDDLEWARE": [*MIDDLEWARE, "django_dramatiq.middleware.AdminMiddleware"]
                }
            },
            "jobs.W002",
        ),
    ],
)
def test_misconfiguration_is_reported_by_system_checks(
    overrides: dict[str, Any], expected_id: str
) -> None:
    with override_settings(**overrides):
        ids = {message.id for message in run_checks()}
    assert expected_id in ids


def test_the_shipped_configuration_passes_the_checks() -> None:
    assert [m for m in run_checks() if m.id and m.id.startswith("jobs.")] == []


def test_a_dead_run_of_a_schedule_without_a_slot_is_alerted_and_logged(
    settings: Any, webhook: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    """ "Run now" and retried runs belong to a schedule but have no slot."""
    url, received = webhook
    settings.JOBS_ALERT_WEBHOOK_URL = url
    schedule = Schedule.objects.create(
        name="nightly <b>", job="test.always_fails", kind="interval", interval_seconds=60
    )
    run = _running_run(schedule=schedule)
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 1000 + "ValueError: boom"
    with caplog.at_level("ERROR", logger="jobs.alerts"):
        assert _fail(run, error="ValueError: boom", traceback=traceback)
    wait_until(lambda: received, 10, what="the webhook")
    assert "died after 1 attempt(s) (schedule 'nightly <b>')" in received[0]["text"]
    assert received[0]["text"].endswith("ValueError: boom"), "the traceback's tail is kept"
    assert len(received[0]["text"]) < 2700
    assert f"run {run.id}: ValueError: boom" in caplog.text


def _fail(run: JobRun, *, error: str, traceback: str = "") -> bool:
    """Attempt 1 of the run fails for good."""
    return transitions.fail(
        run_id=run.id,
        attempt=1,
        state=JobRun.State.DEAD,
        error=error,
        traceback=traceback,
        exception_class="builtins.ValueError",
    )

"""The background thread that marks runs sent by `jobs.enqueue()` as queued (jobs/marks.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import override_settings
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.marks import queued_marks
from jobs.models import JobRun
from tests.conftest import queued_message_ids

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def background_marks() -> Iterator[None]:
    with override_settings(JOBS_MARK_SENT_IN_BACKGROUND=True):
        yield
    # The thread holds its own connection; the test database cannot be dropped while it does.
    queued_marks.stop()


def wait_for_state(ids: list[object], state: str, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        count = JobRun.objects.filter(id__in=ids, state=state).count()
        if count == len(ids) or time.monotonic() > deadline:
            return count


def test_runs_are_sent_at_commit_and_marked_queued_by_the_thread(
    broker: RedisBroker, background_marks: None
) -> None:
    with transaction.atomic():
        runs = [jobs.enqueue("test.noop") for _ in range(5)]
    ids = [run.id for run in runs]
    assert sorted(queued_message_ids(broker)) == sorted(str(i) for i in ids), "sent at commit"
    assert wait_for_state(ids, "queued") == 5
    assert all(r.enqueued_at for r in JobRun.objects.filter(id__in=ids))


def test_stop_writes_what_is_waiting_and_closes_the_thread(
    broker: RedisBroker, background_marks: None
) -> None:
    run = jobs.enqueue("test.noop")  # autocommit: sent at once, mark handed to the thread
    queued_marks.stop()
    run.refresh_from_db()
    assert run.state == "queued"
    assert queued_marks._thread is not None and not queued_marks._thread.is_alive()


def test_a_mark_never_overwrites_a_run_a_worker_already_claimed(broker: RedisBroker) -> None:
    # The worker may claim a run before the thread marks it (the claim accepts pending).
    claimed = JobRun.objects.create(job="test.noop", state="running", attempts=1)
    waiting = JobRun.objects.create(job="test.noop", state="pending")
    queued_marks._ids.extend([claimed.id, waiting.id])
    assert queued_marks.flush() == 1
    claimed.refresh_from_db()
    waiting.refresh_from_db()
    assert (claimed.state, waiting.state) == ("running", "queued")

"""A run whose worker keeps dying (killed, out of memory) is handed out again a bounded number
of times, then dead with an error that says so, instead of being re-sent for ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker

from jobs.models import JobRun
from jobs.scheduling.sweep import sweep
from tests.conftest import queued_message_ids

pytestmark = pytest.mark.django_db(transaction=True)

LOST = {"attempt": 1, "worker": "w:1", "error": "worker lost: its lease expired (process killed)"}


def expired_run(losses_before: int) -> JobRun:
    return JobRun.objects.create(
        job="test.echo",
        state="running",
        attempts=losses_before + 1,
        worker="w:9",
        started_at=timezone.now() - timedelta(minutes=5),
        lease_expires_at=timezone.now() - timedelta(minutes=1),
        history=[LOST] * losses_before,
        worker_losses=losses_before,
    )


def test_a_lost_worker_hands_the_run_out_again(broker: RedisBroker) -> None:
    run = expired_run(losses_before=1)
    assert sweep()["expired"] == 1
    run.refresh_from_db()
    assert run.state == "queued" and len(run.history) == 2
    assert queued_message_ids(broker) == [str(run.id)]


def test_the_third_lost_worker_makes_the_run_dead(broker: RedisBroker, settings: Any) -> None:
    settings.ADMINS = []
    run = expired_run(losses_before=2)
    assert sweep()["expired"] == 0
    run.refresh_from_db()
    assert run.state == "dead" and run.finished_at is not None and run.lease_expires_at is None
    assert run.error.startswith("worker lost 3 times") and len(run.history) == 3
    assert queued_message_ids(broker) == [], "not handed out again"


def test_the_bound_is_a_setting(broker: RedisBroker, settings: Any) -> None:
    settings.JOBS_MAX_WORKER_LOSSES = 5
    run = expired_run(losses_before=2)
    sweep()
    run.refresh_from_db()
    assert run.state == "queued"

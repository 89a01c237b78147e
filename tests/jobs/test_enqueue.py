from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.models import JobRun
from tests.conftest import queued_message_ids

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueue_records_a_pending_run_and_sends_it_on_commit(broker: RedisBroker) -> None:
    with transaction.atomic():
        run = jobs.enqueue("test.typed", {"tenant_id": "7"})
        assert queued_message_ids(broker) == [], "nothing is sent before the commit"
    run.refresh_from_db()
    assert run.state == "queued"
    assert run.payload == {"tenant_id": 7, "note": ""}, "the schema normalised the payload"
    assert queued_message_ids(broker) == [str(run.id)]


def test_a_rolled_back_enqueue_leaves_nothing(broker: RedisBroker) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.enqueue("test.noop")
        raise RuntimeError("the caller's transaction fails")
    assert JobRun.objects.count() == 0
    assert queued_message_ids(broker) == []


def test_a_payload_that_does_not_fit_the_schema_names_the_field(broker: RedisBroker) -> None:
    with pytest.raises(jobs.PayloadError) as info:
        jobs.enqueue("test.typed", {"tenant_id": "seven", "extra": 1})
    assert (
        "tenant_id",
        "Input should be a valid integer, unable to parse string as an integer",
    ) in info.value.errors
    assert any(path == "extra" for path, _ in info.value.errors)
    assert "tenant_id:" in str(info.value)
    assert JobRun.objects.count() == 0


def test_a_missing_field_is_reported_with_its_path(broker: RedisBroker) -> None:
    with pytest.raises(jobs.PayloadError, match="tenant_id: Field required"):
        jobs.enqueue("test.typed", {})


def test_a_payload_over_the_size_limit_is_refused(broker: RedisBroker, settings) -> None:
    settings.JOBS_MAX_PAYLOAD_BYTES = 100
    with pytest.raises(jobs.PayloadError, match="the limit is 100 bytes"):
        jobs.enqueue("test.echo", {"value": "x" * 200})


def test_an_unknown_job_is_refused_by_name(broker: RedisBroker) -> None:
    with pytest.raises(jobs.UnknownJob, match="'nope.nothing'"):
        jobs.enqueue("nope.nothing")


def test_the_same_key_returns_the_existing_run(broker: RedisBroker) -> None:
    first = jobs.enqueue("test.echo", {"value": 1}, key="report:1:2026-10")
    second = jobs.enqueue("test.echo", {"value": 2}, key="report:1:2026-10")
    assert second.id == first.id and second.payload == {"value": 1}
    assert JobRun.objects.count() == 1
    assert queued_message_ids(broker) == [str(first.id)]


def test_concurrent_enqueues_with_one_key_create_one_run(broker: RedisBroker) -> None:
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def request() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                ids.append(str(jobs.enqueue("test.noop", key="once-only").id))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert JobRun.objects.filter(key="once-only").count() == 1
    assert queued_message_ids(broker) == ids[:1]


def test_a_delay_defers_the_message(broker: RedisBroker) -> None:
    run = jobs.enqueue("test.noop", delay=timedelta(minutes=5))
    run.refresh_from_db()
    assert run.run_after is not None and run.run_after > run.created_at + timedelta(minutes=4)
    assert broker.client.llen(f"{broker.namespace}:default.DQ") == 1
    assert broker.client.llen(f"{broker.namespace}:default") == 0

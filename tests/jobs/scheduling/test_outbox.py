"""A broker outage loses nothing: runs wait in `pending` and go out once when it is back."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.models import JobRun, Schedule
from jobs.runs import transitions
from jobs.scheduling.sweep import sweep
from jobs.scheduling.tick import tick
from tests.conftest import queued_message_ids
from tests.redis_server import PrivateRedis, private_redis

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def outage_broker(tmp_path: Path) -> Iterator[tuple[PrivateRedis, RedisBroker]]:
    """The process's broker pointed at a private Redis the test can stop."""
    previous = dramatiq.get_broker()
    with private_redis(tmp_path) as server:
        broker = RedisBroker(url=server.url, socket_connect_timeout=0.5, socket_timeout=2)
        for name in previous.get_declared_queues():
            broker.declare_queue(name)
        dramatiq.set_broker(broker)
        try:
            yield server, broker
        finally:
            dramatiq.set_broker(previous)


def test_ticks_during_an_outage_leave_runs_pending_and_the_sweep_sends_each_once(
    outage_broker: tuple[PrivateRedis, RedisBroker],
) -> None:
    server, broker = outage_broker
    Schedule.objects.all().delete()
    Schedule.objects.bulk_create(
        Schedule(
            name=f"s{i}",
            job="test.noop",
            cron="* * * * *",
            misfire_grace_seconds=3600,
            next_run_at=T0 + timedelta(minutes=1),
            created_at=T0,
        )
        for i in range(20)
    )
    tick(T0 + timedelta(minutes=1))
    assert JobRun.objects.filter(state="queued").count() == 20

    server.stop()
    for minute in (2, 3):
        result = tick(T0 + timedelta(minutes=minute))
        assert (result.fired, result.sent) == (20, 0)
    assert JobRun.objects.filter(state="pending").count() == 40
    assert (
        sweep(datetime.now(UTC) + timedelta(minutes=1))["pending"] == 0
    )  # still down: nothing lost

    server.start()  # an empty Redis again: only what is re-sent is there
    counts = sweep(datetime.now(UTC) + timedelta(minutes=1))
    # The 40 pending runs are sent; the 20 queued before the outage lost their messages with
    # Redis and are re-sent too.
    assert (counts["pending"], counts["lost"]) == (40, 20)
    assert JobRun.objects.filter(state="queued").count() == 60
    ids = queued_message_ids(broker)
    assert Counter(ids).most_common(1)[0][1] == 1, "a run was sent twice"
    assert set(ids) == {str(i) for i in JobRun.objects.values_list("id", flat=True)}
    again = sweep(datetime.now(UTC) + timedelta(minutes=1))
    assert (again["pending"], again["lost"]) == (0, 0), "every message is in Redis now"


def test_enqueue_commits_even_when_the_broker_is_down(
    outage_broker: tuple[PrivateRedis, RedisBroker],
) -> None:
    server, broker = outage_broker
    server.stop()
    run = jobs.enqueue("test.echo", {"value": 1})
    run.refresh_from_db()
    assert run.state == "pending"
    server.start()
    assert sweep(datetime.now(UTC) + timedelta(seconds=30))["pending"] == 1
    assert queued_message_ids(broker) == [str(run.id)]


def test_a_bulk_send_survives_a_flushed_script_cache_and_keeps_delays(broker: RedisBroker) -> None:
    """The bulk send writes Dramatiq's dispatch script calls itself: after SCRIPT FLUSH it must
    load the script again, and a delayed message must land on the delay queue with its eta."""
    from jobs.broker.bulk_send import enqueue_many

    broker.client.script_flush()
    now = datetime.now(UTC)
    messages = [
        (
            dramatiq.Message(
                queue_name="default", actor_name="x", args=(), kwargs={"n": n}, options={}
            ),
            None,
        )
        for n in range(3)
    ]
    delayed = dramatiq.Message(queue_name="default", actor_name="x", args=(), kwargs={}, options={})
    enqueue_many(broker, [*messages, (delayed, 60_000)])

    assert sorted(queued_message_ids(broker)) == sorted(
        [m.message_id for m, _ in messages] + [delayed.message_id]
    )
    raw_ids = broker.client.lrange(f"{broker.namespace}:default.DQ", 0, -1)
    assert len(raw_ids) == 1
    stored = dramatiq.Message.decode(
        broker.client.hget(f"{broker.namespace}:default.DQ.msgs", raw_ids[0])
    )
    assert stored.message_id == delayed.message_id
    assert stored.options["eta"] >= now.timestamp() * 1000 + 59_000
    assert stored.options["redis_message_id"] == raw_ids[0].decode()


def test_a_bulk_sent_message_decodes_to_what_dramatiq_would_have_stored(
    broker: RedisBroker,
) -> None:
    """The bulk send encodes the members its messages share once per batch; what a worker
    reads back must still be each message exactly, options and non-ASCII payloads included."""
    from jobs.broker.bulk_send import enqueue_many

    shared = {"note": 'naïve "quoted" \\ ✓', "values": [1, 2.5, None, True]}
    messages = [
        dramatiq.Message(
            queue_name="default",
            actor_name="x",
            args=(),
            kwargs=shared,
            options={"max_retries": 3, "time_limit": 1000 * n},
        )
        for n in range(1, 3)
    ]
    messages.append(
        dramatiq.Message(queue_name="default", actor_name="y", args=(), kwargs={}, options={})
    )
    enqueue_many(broker, [(m, None) for m in messages])

    stored = {}
    for raw in broker.client.hvals(f"{broker.namespace}:default.msgs"):
        message = dramatiq.Message.decode(raw)
        assert json.loads(raw) == json.loads(message.encode())
        stored[message.message_id] = json.loads(raw)
    assert len(stored) == len(messages)
    for message in messages:
        read_back = stored[message.message_id]
        assert read_back["options"].pop("redis_message_id")
        assert read_back == json.loads(message.encode())


@pytest.mark.parametrize("count", [1, 3])
def test_the_sent_mark_queues_only_the_given_pending_runs(count: int) -> None:
    """One run (a web request's enqueue) and several (a tick) take different statements."""
    sent = [JobRun.objects.create(job="jobs.noop") for _ in range(count)]
    other = JobRun.objects.create(job="jobs.noop")
    running = JobRun.objects.create(job="jobs.noop", state=JobRun.State.RUNNING)
    before = timezone.now()

    assert transitions.mark_sent([r.id for r in sent]) == count
    assert transitions.mark_sent([running.id]) == 0  # not pending: left as it is

    for run in sent:
        run.refresh_from_db()
        assert run.state == JobRun.State.QUEUED
        assert (
            before - timedelta(seconds=5) < run.enqueued_at < timezone.now() + timedelta(seconds=5)
        )
    other.refresh_from_db()
    running.refresh_from_db()
    assert other.state == JobRun.State.PENDING
    assert running.state == JobRun.State.RUNNING

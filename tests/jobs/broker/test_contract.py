"""The contract of jobs/broker.py's bulk send with the installed Dramatiq and redis-py: it
must leave in Redis exactly what RedisBroker.enqueue leaves, message for message. If one of
these fails after an upgrade, re-check _enqueue_pipelined against the new RedisBroker."""

from __future__ import annotations

import json
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from jobs.broker.bulk_send import _MessageJSON, enqueue_many

CHECKED_DRAMATIQ = "2.2"  # the minor version whose RedisBroker the adapter copies


def message(**fields: Any) -> dramatiq.Message[Any]:
    values: dict[str, Any] = {
        "queue_name": "contract",
        "actor_name": "test.noop",
        "args": (),
        "kwargs": {"tenant_id": 7, "note": "zürich ✓", "nested": {"a": [1, 2.5, None]}},
        "options": {"max_retries": 3, "retries": 0},
    }
    values.update(fields)
    return dramatiq.Message(**values)


def stored(broker: RedisBroker, queue: str) -> list[dict[str, Any]]:
    """The messages a queue holds in Redis, in order, as Dramatiq's workers will read them."""
    ids = broker.client.lrange(f"{broker.namespace}:{queue}", 0, -1)
    raw = broker.client.hmget(f"{broker.namespace}:{queue}.msgs", ids) if ids else []
    return [json.loads(r) for r in raw]


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in data["options"].items() if k not in {"redis_message_id", "eta"}}
    return {**data, "options": options, "queue_name": data["queue_name"]}


def test_the_adapter_was_checked_against_the_installed_dramatiq() -> None:
    assert dramatiq.__version__.startswith(CHECKED_DRAMATIQ + "."), (
        f"Dramatiq {dramatiq.__version__}: re-check jobs/broker.py's _enqueue_pipelined against "
        "RedisBroker.enqueue and do_dispatch, then update CHECKED_DRAMATIQ"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"args": (1, "two"), "kwargs": {}},
        {"options": {"max_retries": 0, "retries": 2, "time_limit": 3000}},
        {"kwargs": {"emoji": "🙂", "quote": '"x"\\n'}},
    ],
)
def test_the_batch_encoder_writes_what_message_encode_writes(fields: dict[str, Any]) -> None:
    sample = message(**fields)
    assert _MessageJSON()(sample) == sample.encode()


def test_a_bulk_send_stores_what_enqueue_stores_due_and_delayed(broker: RedisBroker) -> None:
    if not isinstance(broker, RedisBroker):
        pytest.skip("the adapter is for Redis")
    due, later = message(), message(actor_name="test.echo")
    broker.declare_queue("contract")
    broker.enqueue(due)
    broker.enqueue(later, delay=60_000)
    by_enqueue = stored(broker, "contract"), stored(broker, "contract.DQ")
    broker.client.flushdb()

    enqueue_many(broker, [(due, None), (later, 60_000)])
    by_bulk = stored(broker, "contract"), stored(broker, "contract.DQ")

    assert [len(q) for q in by_bulk] == [1, 1]
    for one, other in zip(by_enqueue, by_bulk, strict=True):
        assert [comparable(m) for m in one] == [comparable(m) for m in other]
    delayed = by_bulk[1][0]
    assert delayed["queue_name"] == "contract.DQ" and delayed["options"]["eta"] > 0
    # A worker reads them as the messages that were sent.
    assert dramatiq.Message.decode(json.dumps(by_bulk[0][0]).encode()).message_id == due.message_id


def test_a_bulk_send_calls_each_enqueue_hook_once_per_message(broker: RedisBroker) -> None:
    if not isinstance(broker, RedisBroker):
        pytest.skip("the adapter is for Redis")
    seen: list[tuple[str, str, int | None]] = []

    class Recorder(dramatiq.Middleware):
        def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
            seen.append(("before", message.message_id, delay))

        def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
            seen.append(("after", message.message_id, delay))

    recorder = Recorder()
    broker.middleware.append(recorder)
    try:
        first, second = message(), message()
        enqueue_many(broker, [(first, None), (second, 5000)])
    finally:
        broker.middleware.remove(recorder)
    assert seen == [
        ("before", first.message_id, None),
        ("before", second.message_id, 5000),
        ("after", first.message_id, None),
        ("after", second.message_id, 5000),
    ]

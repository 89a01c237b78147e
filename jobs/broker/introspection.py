"""What jobs asks of a broker besides sending: is it up, what does a queue hold, and what
its outages look like. Works for every Dramatiq broker we support (Redis, RabbitMQ, stub)."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import dramatiq.errors
import redis.exceptions
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name

# What "the broker is unavailable" looks like; anything else raised by a send is a bug.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    dramatiq.errors.BrokerConnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
try:
    import pika.exceptions

    BROKER_ERRORS += (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelClosed)
except ImportError:  # pragma: no cover - pika comes with dramatiq[rabbitmq]
    pass


def broker_ping(broker: dramatiq.Broker | None = None) -> None:
    """Raise if the broker does not answer; return quietly if it does."""
    broker = broker or dramatiq.get_broker()
    if isinstance(broker, StubBroker):
        return  # in-process: always there
    client = getattr(broker, "client", None)
    if client is not None:  # Redis
        client.ping()
        return
    # RabbitMQ: opening the (per-thread) channel proves the server answers.
    getattr(broker, "channel")  # noqa: B009 - the attribute access opens the connection


def messages_held(broker: dramatiq.Broker, queue_name: str) -> int | None:
    """How many messages the broker holds for a queue, its delay queue included, as a lower
    bound on the runs it can still deliver; None where it cannot be known (the stub).

    Redis counts the messages not yet acknowledged, so those fetched by a worker and still
    running count too (Dramatiq's `qsize`, as its `join()` uses it). RabbitMQ counts only the
    messages ready for delivery: the caller leaves the running runs out and allows for those a
    worker has fetched and not started (its prefetch).
    """
    broker.declare_queue(queue_name)
    if isinstance(broker, RedisBroker):
        return int(broker.do_qsize(queue_name))
    counts = getattr(broker, "get_queue_message_counts", None)
    if counts is None:
        return None
    ready, delayed, _dead = counts(queue_name)
    return int(ready) + int(delayed)


def queue_lengths(
    broker: dramatiq.Broker, queue_names: Sequence[str]
) -> list[tuple[str, int, int, int]] | None:
    """(queue, waiting, delayed, dead letters) for every declared queue and `queue_names`, in
    one Redis round trip; None for brokers that do not expose their lengths. Raises the
    broker's errors when it does not answer."""
    if not isinstance(broker, RedisBroker):
        return None
    names = sorted(
        {q for q in [*broker.get_declared_queues(), *queue_names] if not q.endswith((".DQ", ".XQ"))}
    )
    pipe = broker.client.pipeline(transaction=False)
    for name in names:
        # Dramatiq's Redis layout: a list per queue and per delay queue, a sorted set of dead
        # letters.
        pipe.llen(f"{broker.namespace}:{name}")
        pipe.llen(f"{broker.namespace}:{dq_name(name)}")
        pipe.zcard(f"{broker.namespace}:{xq_name(name)}")
    counts = pipe.execute()
    return [
        (name, int(counts[3 * i]), int(counts[3 * i + 1]), int(counts[3 * i + 2]))
        for i, name in enumerate(names)
    ]


def counts_unacknowledged(broker: dramatiq.Broker) -> bool:
    """Whether messages_held() includes the messages workers have fetched but not finished."""
    return isinstance(broker, RedisBroker)

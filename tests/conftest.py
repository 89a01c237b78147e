from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise pytest.UsageError(
            "The tests run against real PostgreSQL and Redis: use `make test`, which sets "
            "DATABASE_URL and REDIS_URL to the local servers."
        )


@pytest.fixture
def broker() -> Iterator[Any]:
    """The real broker of the test settings (Redis, or RabbitMQ when BROKER_URL says so),
    emptied before and after the test."""
    broker = dramatiq.get_broker()
    _empty(broker)
    yield broker
    _empty(broker)


def _empty(broker: dramatiq.Broker) -> None:
    if isinstance(broker, RedisBroker):
        broker.client.flushdb()
    else:
        broker.flush_all()


def queued_message_ids(broker: RedisBroker, queue: str = "default") -> list[str]:
    """Message ids currently waiting in a queue (including its delay queue), in Redis itself."""
    ids = []
    for name in (queue, f"{queue}.DQ"):
        redis_ids = broker.client.lrange(f"{broker.namespace}:{name}", 0, -1)
        if redis_ids:
            for raw in broker.client.hmget(f"{broker.namespace}:{name}.msgs", redis_ids):
                ids.append(dramatiq.Message.decode(raw).message_id)
    return ids


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Each test starts with an empty cache (the overview keeps counts of past hours in it)."""
    from django.core.cache import cache

    cache.clear()
    yield

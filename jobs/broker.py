"""Broker helpers that work for every Dramatiq broker we support."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker


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

"""The no-op actors the throughput benchmark runs: one plain Dramatiq actor, one recorded job."""

from __future__ import annotations

import dramatiq

import jobs


@dramatiq.actor(actor_name="bench.raw_noop", queue_name="bench", max_retries=0)
def raw_noop() -> None:
    """A plain Dramatiq actor: nothing recorded."""


@jobs.job(name="bench.noop", queue="bench", max_retries=0)
def noop() -> None:
    """The same no-op as a recorded job: claimed and finished in PostgreSQL."""

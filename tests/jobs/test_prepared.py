"""Django turns psycopg's prepared statements off by default; the site turns them on
(saas/env.py) so that the statements jobs runs for every request and every message are
planned once per connection. Without that, `prepare=True` is silently ignored."""

from __future__ import annotations

import pytest
from django.db import connection
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs import transitions

pytestmark = pytest.mark.django_db(transaction=True)


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_enqueue_insert_and_the_workers_claim_are_prepared(broker: RedisBroker) -> None:
    run = jobs.enqueue("test.noop")
    assert transitions.claim(run_id=run.id, worker="test:1", lease_seconds=15) == 1

    statements = prepared_statements()
    assert any("INSERT INTO jobs_jobrun" in s for s in statements), statements
    assert any("SET state = 'running'" in s for s in statements), statements

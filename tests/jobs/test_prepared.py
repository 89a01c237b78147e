"""Django turns psycopg's prepared statements off by default; the site turns them on
(saas/env.py) so that the statements jobs runs for every request and every message are
planned once per connection. Without that, `prepare=True` is silently ignored."""

from __future__ import annotations

import pytest
from django.db import connection
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.runs import run_claim

pytestmark = pytest.mark.django_db(transaction=True)


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_enqueue_insert_and_the_workers_claim_are_prepared(broker: RedisBroker) -> None:
    run = jobs.enqueue("test.noop")
    claim, why_not = run_claim(run_id=run.id, job="test.noop", worker="test:1")
    assert claim is not None, why_not

    statements = prepared_statements()
    assert any("INSERT INTO jobs_jobrun" in s for s in statements), statements
    assert any("SET state = 'running'" in s for s in statements), statements

"""Django turns psycopg's prepared statements off by default; the site turns them on
(saas/env.py) so that the statements jobs runs for every request and every message are
planned once per connection. Without that, `prepare=True` is silently ignored."""

from __future__ import annotations

import pytest
from django.db import connection
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs import transitions
from jobs.models import JobRun

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


def test_a_batch_sent_mark_is_planned_per_call_and_a_single_one_is_prepared_on_the_key() -> None:
    """Prepared, `id = ANY(%s)` gets a generic plan that walks the pending-runs index (every
    pending run of a tick) instead of the primary key: 14.7 s against 7.0 s for a wave of
    10,000 in bench/scheduler.py. So a batch is not prepared, and the one-id form, which is,
    must use the primary key under a generic plan while a wave is pending."""
    batch = [jobs.enqueue("test.noop") for _ in range(3)]
    single = jobs.enqueue("test.noop")  # sent on commit by itself: the one-id form
    for _ in range(8):  # psycopg prepares a statement after five runs unless told not to
        transitions.mark_sent([r.id for r in batch])
    marks = [s for s in prepared_statements() if "SET state = 'queued'" in s]
    assert len(marks) == 1 and "WHERE id = $1 AND" in marks[0], marks

    # A wave in flight: thousands of pending runs, and statistics that know it.
    JobRun.objects.bulk_create(JobRun(job="test.noop") for _ in range(5000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_jobrun")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(f"PREPARE jobs_test_mark(uuid) AS {marks[0]}")  # our own statement
            cursor.execute("EXPLAIN EXECUTE jobs_test_mark(%s)", [single.id])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE jobs_test_mark")
            cursor.execute("RESET plan_cache_mode")
    assert "jobs_jobrun_pkey" in plan, plan

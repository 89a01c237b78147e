"""Django turns psycopg's prepared statements off by default; the site turns them on
(saas/env.py) so that the statements jobs runs for every request and every message are
planned once per connection. Without that, `prepare=True` is silently ignored."""

from __future__ import annotations

import pytest
from django.db import connection
from dramatiq.brokers.redis import RedisBroker

import jobs
from jobs.models import JobRun
from jobs.runs import transitions

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


def _realistic_history() -> None:
    """Row counts like a busy site's, with statistics that know them: plans chosen on an empty
    table say nothing about production."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_schedule (name, job, payload, kind, cron, timezone, enabled,
                paused_reason, misfire_policy, misfire_grace_seconds, overlap_policy,
                jitter_seconds, queue, priority, created_at, updated_at, next_run_at)
            SELECT 'plan-' || i, 'test.noop', '{}', 'cron', '* * * * *', 'UTC', true, '',
                'skip', 60, 'allow', 0, '', 0, now(), now(),
                now() + (i % 600) * interval '1 second'
            FROM generate_series(1, 5000) AS i
            """
        )
        cursor.execute(
            """
            INSERT INTO jobs_jobrun (id, job, payload, state, reason, queue, priority,
                max_retries, attempts, created_at, progress, progress_message, error, traceback,
                cancel_requested, worker, history, worker_losses, schedule_id, scheduled_for,
                finished_at, enqueued_at, started_at, lease_expires_at)
            SELECT gen_random_uuid(), 'test.noop', '{}',
                (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded',
                       'succeeded', 'pending', 'queued', 'running', 'retrying'])[i % 10 + 1],
                '', 'default', 0, 3, 1, now() - i * interval '1 second', 0, '', '', '', false,
                '', '[]', 0, NULL, NULL, now(), now(), now(), now() + interval '15 seconds'
            FROM generate_series(1, 60000) AS i
            """
        )
        cursor.execute("ANALYZE jobs_jobrun")
        cursor.execute("ANALYZE jobs_schedule")


def _generic_plan(statement: str, parameter_types: list[str]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            types = ", ".join(parameter_types)
            cursor.execute(f"PREPARE jobs_test_plan({types}) AS {statement}")
            nulls = ", ".join("NULL" for _ in parameter_types)
            cursor.execute(f"EXPLAIN EXECUTE jobs_test_plan({nulls})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")


def test_every_prepared_hot_path_statement_finds_its_rows_by_index_under_a_generic_plan(
    broker: RedisBroker,
) -> None:
    """A prepared statement gets a generic plan after five runs, planned without its values:
    each one the tick and the worker prepare must still reach its rows through an index
    condition, never by scanning a table or filtering a whole index (the 4.6 s tick)."""
    from jobs.scheduling.tick import tick

    _realistic_history()
    run = jobs.enqueue("test.noop")  # the run INSERT and the one-id sent mark
    attempt = transitions.claim(run_id=run.id, worker="test:1", lease_seconds=15)
    assert attempt == 1
    transitions.report_progress(run_id=run.id, attempt=1, percent=5, message="")
    transitions.succeed(run_id=run.id, attempt=1, result=None)
    other = jobs.enqueue("test.noop")
    transitions.claim(run_id=other.id, worker="test:1", lease_seconds=15)
    transitions.fail(
        run_id=other.id,
        attempt=1,
        state="dead",
        error="boom",
        traceback="",
        exception_class="RuntimeError",
    )
    tick()  # the schedule claim

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, parameter_types::text[] FROM pg_prepared_statements"
            " WHERE statement ~ 'jobs_jobrun|jobs_schedule'"
        )
        prepared = cursor.fetchall()
    texts = "\n".join(statement for statement, _ in prepared)
    for expected in (
        "INSERT INTO jobs_jobrun",  # record (enqueue)
        "SET state = 'queued'",  # mark_sent, one id
        "SET state = 'running'",  # claim
        "SET progress = ",  # report_progress (renews the lease)
        "SET state = 'succeeded'",  # succeed
        "SET state = %s",  # fail
        "FROM jobs_schedule",  # the tick's claim of due schedules
    ):
        assert expected.replace("%s", "$1") in texts, f"{expected!r} is not prepared"
    for statement, types in prepared:
        plan = _generic_plan(statement, types)
        assert "Seq Scan on jobs_" not in plan, f"{statement}\n{plan}"
        scans = plan.count("Index Scan using") + plan.count("Index Only Scan using")
        assert plan.count("Index Cond") >= scans, f"an index walked without a condition:\n{plan}"

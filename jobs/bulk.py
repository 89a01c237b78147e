"""Set-based writes for the scheduler's hot path.

On PostgreSQL each helper is one statement over arrays (`unnest`), because Django's
bulk_create/bulk_update spend most of a large tick compiling SQL; elsewhere (the embedded
SQLite default) they fall back to the ORM.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection
from psycopg.types.json import Jsonb

from jobs.db import no_flush_wait
from jobs.models import JobRun, Schedule

_INSERT_RUNS = """
INSERT INTO jobs_jobrun (
    id, job, payload, schedule_id, scheduled_for, state, reason, queue, priority, max_retries,
    time_limit_seconds, created_at, run_after, finished_at, key,
    attempts, worker, progress, progress_message, error, traceback, cancel_requested, history
)
SELECT u.id, u.job, u.payload, u.schedule_id, u.scheduled_for, u.state, u.reason, u.queue,
       u.priority, u.max_retries, u.time_limit_seconds, u.created_at, u.run_after, u.finished_at,
       u.key, 0, '', 0, '', '', '', false, '[]'::jsonb
FROM unnest(
    %s::uuid[], %s::text[], %s::jsonb[], %s::bigint[], %s::timestamptz[], %s::text[], %s::text[],
    %s::text[], %s::smallint[], %s::smallint[], %s::integer[], %s::timestamptz[],
    %s::timestamptz[], %s::timestamptz[], %s::text[]
) AS u(id, job, payload, schedule_id, scheduled_for, state, reason, queue, priority, max_retries,
       time_limit_seconds, created_at, run_after, finished_at, key)
ON CONFLICT DO NOTHING
RETURNING id
"""

# The same columns for one run (`jobs.enqueue()`, once per web request that enqueues): plain
# VALUES, prepared once per connection, costs a third of the array form for a single row.
_INSERT_ONE_RUN = """
INSERT INTO jobs_jobrun (
    id, job, payload, schedule_id, scheduled_for, state, reason, queue, priority, max_retries,
    time_limit_seconds, created_at, run_after, finished_at, key,
    attempts, worker, progress, progress_message, error, traceback, cancel_requested, history
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
        0, '', 0, '', '', '', false, '[]'::jsonb)
ON CONFLICT DO NOTHING
RETURNING id
"""

_UPDATE_SCHEDULES = """
UPDATE jobs_schedule AS s
SET next_run_at = u.next_run_at, last_fired_at = u.last_fired_at, enabled = u.enabled,
    paused_reason = u.paused_reason
FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::boolean[], %s::text[])
    AS u(id, next_run_at, last_fired_at, enabled, paused_reason)
WHERE s.id = u.id
"""


def raw_cursor() -> psycopg.Cursor[Any]:
    """A plain psycopg cursor on Django's connection (same transaction). Django's own cursor
    binds parameters client-side, which costs more than the statement for arrays of
    thousands of values; psycopg's binds them on the server."""
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("raw_cursor() needs the psycopg 3 PostgreSQL backend")
    return psycopg.Cursor(raw)


def insert_runs(runs: Sequence[Any]) -> set[uuid.UUID]:
    """Insert runs (JobRun or scheduler.NewRun), silently skipping any whose slot or key already has a run; returns the ids
    that were inserted."""
    if not runs:
        return set()
    if connection.vendor != "postgresql":
        models = [r if isinstance(r, JobRun) else r.as_model() for r in runs]
        JobRun.objects.bulk_create(models, ignore_conflicts=True)
        return set(JobRun.objects.filter(id__in=[r.id for r in runs]).values_list("id", flat=True))
    if len(runs) == 1:
        with raw_cursor() as cursor:
            cursor.execute(_INSERT_ONE_RUN, _row(runs[0]), prepare=True)
            return {row[0] for row in cursor.fetchall()}
    columns: list[list[object]] = [[] for _ in range(15)]
    for r in runs:
        for column, value in zip(columns, _row(r), strict=True):
            column.append(value)
    with raw_cursor() as cursor:
        cursor.execute(_INSERT_RUNS, columns)
        return {row[0] for row in cursor.fetchall()}


def _row(r: Any) -> tuple[object, ...]:
    return (
        r.id,
        r.job,
        Jsonb(r.payload),
        r.schedule_id,
        r.scheduled_for,
        r.state,
        r.reason,
        r.queue,
        r.priority,
        r.max_retries,
        r.time_limit_seconds,
        r.created_at,
        r.run_after,
        r.finished_at,
        getattr(r, "key", None),
    )


def update_schedules(schedules: Sequence[Schedule]) -> None:
    """Write back what a tick changed on each schedule."""
    if connection.vendor != "postgresql":
        Schedule.objects.bulk_update(
            schedules, ["next_run_at", "last_fired_at", "enabled", "paused_reason"]
        )
        return
    with raw_cursor() as cursor:
        cursor.execute(
            _UPDATE_SCHEDULES,
            [
                [s.id for s in schedules],
                [s.next_run_at for s in schedules],
                [s.last_fired_at for s in schedules],
                [s.enabled for s in schedules],
                [s.paused_reason for s in schedules],
            ],
        )


def mark_queued(run_ids: Sequence[uuid.UUID], now: object) -> int:
    """pending -> queued for runs just handed to the broker."""
    if connection.vendor != "postgresql":
        return JobRun.objects.filter(id__in=list(run_ids), state=JobRun.State.PENDING).update(
            state=JobRun.State.QUEUED, enqueued_at=now
        )
    with raw_cursor() as cursor:
        cursor.execute(
            f"UPDATE jobs_jobrun SET state = 'queued', enqueued_at = %s {no_flush_wait()} "  # noqa: S608 - a constant fragment, values bound
            "WHERE id = ANY(%s::uuid[]) AND state = 'pending'",
            [now, list(run_ids)],
        )
        return int(cursor.rowcount)

"""Small database helpers that keep state changes to one statement on every backend."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection
from django.utils import timezone


def no_flush_wait() -> str:
    """A FROM item that lets this one-statement transaction commit without waiting for the WAL
    flush (PostgreSQL; empty elsewhere). Only for bookkeeping whose loss in a database *server*
    crash costs at most a re-execution: the claim, the outcome of a non-atomic job (whose own
    writes were committed, durably, before), "sent" marks. Never inside a transaction, so never
    for an atomic job's writes and outcome, nor for a newly recorded run. Measured: worker
    throughput +10 to +20 % at 1 x 8 threads, +30 % at 2 x 8 (bench/throughput.py), because
    every job commits twice and each commit otherwise waits for its own fsync."""
    # Only in autocommit: inside a transaction the setting would last until its commit and
    # cover every other write in it.
    if connection.vendor != "postgresql" or not connection.get_autocommit():
        return ""
    return "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait"


def database_now() -> datetime:
    """The database's clock: leases, takeovers and due times are decided on it, never on a
    host's (the embedded SQLite default runs on this host's clock)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with _cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()", [], **_prepare())
        value: datetime = cursor.fetchone()[0]
    return value


def db_uuid(value: uuid.UUID) -> Any:
    """A UUID as the backend stores it (PostgreSQL: uuid; SQLite: 32 hex characters)."""
    return value if connection.vendor == "postgresql" else value.hex


def db_datetime(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def execute_returning(
    sql: str, params: list[Any], *, prepare: bool = True
) -> list[tuple[Any, ...]]:
    """Run one statement with a RETURNING clause on the default connection (`prepare` as in
    execute())."""
    with _cursor() as cursor:
        cursor.execute(sql, params, **_prepare(prepare))
        return [tuple(row) for row in cursor.fetchall()]


def execute(sql: str, params: list[Any], *, prepare: bool = True) -> int:
    """Run one statement; the number of rows it changed. `prepare=False` for a statement whose
    best plan depends on its values (a generic plan would be chosen after five runs)."""
    with _cursor() as cursor:
        cursor.execute(sql, params, **_prepare(prepare))
        return int(cursor.rowcount)


@contextlib.contextmanager
def _cursor() -> Iterator[Any]:
    """On PostgreSQL a plain psycopg cursor on Django's connection (same transaction), so the
    worker's per-message statements are prepared once per connection instead of planned every
    time; elsewhere Django's cursor. Errors are Django's either way."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    with connection.wrap_database_errors, raw_cursor() as cursor:
        yield cursor


def raw_cursor() -> psycopg.Cursor[Any]:
    """A plain psycopg cursor on Django's connection (same transaction). Django's own cursors
    (psycopg.ClientCursor) bind parameters client-side, which costs more than the statement
    for arrays of thousands of values, and never prepare; psycopg's bind on the server."""
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("raw_cursor() needs the psycopg 3 PostgreSQL backend")
    return psycopg.Cursor(raw)


def _prepare(prepare: bool = True) -> dict[str, Any]:
    """psycopg's `prepare`: True prepares now, False never; leaving it out would let psycopg
    prepare any statement after `prepare_threshold` runs, generic plan included."""
    return {"prepare": prepare} if connection.vendor == "postgresql" else {}

"""Statements billing runs on every request, prepared once per connection on PostgreSQL.

Django's cursors bind values client-side and never prepare; the statement for a report
request was planned every time, which cost PostgreSQL more than running it
(bench/report_endpoint.py, 2026-12-02: 0.72 of the signed-in baseline unprepared, 0.76 – 0.79 prepared). This
uses psycopg's own cursor on Django's connection (`connection.connection`), in Django's
transaction. tests/saas/test_prepared_requests.py checks that they are prepared.

Django's public switch, `DATABASES[...]["OPTIONS"]["server_side_binding"] = True`, is not the
same: it makes every cursor of the connection bind on the server, so psycopg would prepare
every ORM statement after `prepare_threshold` (5) runs and PostgreSQL could then give any of
them a generic plan, which jobs avoids on purpose for statements whose best plan depends on
their values (jobs.db's `prepare=False`). Here only the statements given to fetch_prepared are
prepared, from their first run; the ORM keeps binding client-side.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


def fetch_prepared(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement (`%s` placeholders), prepared on PostgreSQL."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]
    connection.ensure_connection()
    # psycopg.Cursor, not connection.connection.cursor(): Django makes the connection's
    # default cursor a ClientCursor, which binds client-side and never prepares.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return [tuple(row) for row in cursor.fetchall()]

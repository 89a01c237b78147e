"""Small database helpers that keep state changes to one statement on every backend."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models.sql import UpdateQuery


def update_returning(
    queryset: models.QuerySet[Any], returning: list[str], **values: Any
) -> list[tuple[Any, ...]]:
    """`queryset.update(**values)` that also returns `returning` columns of the updated rows.

    One conditional `UPDATE ... RETURNING` (PostgreSQL, SQLite >= 3.35) instead of an update
    followed by a read. Django has no public API for this yet; this follows QuerySet.update().
    """
    model = queryset.model
    query: Any = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    query.annotations = {}
    fields = [model._meta.get_field(name) for name in returning]
    with transaction.mark_for_rollback_on_error(using=queryset.db):
        rows = query.get_compiler(queryset.db).execute_returning_sql(fields)
    return [tuple(row) for row in rows]

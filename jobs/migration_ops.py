"""Migration operations for tables that may hold millions of rows."""

from __future__ import annotations

from typing import Any

from django.db import migrations


class _ConcurrentlyOnPostgreSQL:
    """database_forwards runs `concurrent_forwards` on PostgreSQL and the plain operation
    elsewhere; the migration needs `atomic = False` (CONCURRENTLY cannot run in a
    transaction)."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]
            return
        self.concurrent_forwards(app_label, schema_editor, from_state, to_state)

    def concurrent_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        raise NotImplementedError


class AddIndexWithoutBlockingWrites(_ConcurrentlyOnPostgreSQL, migrations.AddIndex):
    """CREATE INDEX CONCURRENTLY: the run table keeps taking writes (workers, the tick) while
    the index is built."""

    def concurrent_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        schema_editor.execute(self.index.create_sql(model, schema_editor, concurrently=True))


class RemoveIndexWithoutBlockingWrites(_ConcurrentlyOnPostgreSQL, migrations.RemoveIndex):
    """DROP INDEX CONCURRENTLY (see AddIndexWithoutBlockingWrites)."""

    def concurrent_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        schema_editor.execute(index.remove_sql(model, schema_editor, concurrently=True))

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("state", "dead")), fields=["-created_at"], name="jobs_run_dead_idx"
)


class AddIndexWithoutBlockingWrites(migrations.AddIndex):
    """On PostgreSQL, CREATE INDEX CONCURRENTLY: a run table of millions of rows keeps taking
    writes (workers, the tick) while the index is built. Elsewhere a plain AddIndex."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        schema_editor.execute(self.index.create_sql(model, schema_editor, concurrently=True))


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("jobs", "0007_db_set_null"),
    ]

    operations = [AddIndexWithoutBlockingWrites(model_name="jobrun", index=INDEX)]

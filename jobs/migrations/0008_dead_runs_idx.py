from django.db import migrations, models

from jobs.migration_ops import AddIndexWithoutBlockingWrites

INDEX = models.Index(
    condition=models.Q(("state", "dead")), fields=["-created_at"], name="jobs_run_dead_idx"
)


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("jobs", "0007_db_set_null"),
    ]

    operations = [AddIndexWithoutBlockingWrites(model_name="jobrun", index=INDEX)]

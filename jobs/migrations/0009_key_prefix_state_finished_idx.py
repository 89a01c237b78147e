from django.db import migrations, models

from jobs.migration_ops import AddIndexWithoutBlockingWrites, RemoveIndexWithoutBlockingWrites


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("jobs", "0008_dead_runs_idx"),
    ]

    # The new index first: retention and the overview always have one to use.
    operations = [
        AddIndexWithoutBlockingWrites(
            model_name="jobrun",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False)),
                fields=["state", "finished_at"],
                name="jobs_run_state_finished_idx",
            ),
        ),
        RemoveIndexWithoutBlockingWrites(model_name="jobrun", name="jobs_run_finished_idx"),
        AddIndexWithoutBlockingWrites(
            model_name="jobrun",
            index=models.Index(
                condition=models.Q(("key__isnull", False)),
                fields=["key"],
                name="jobs_run_key_prefix_idx",
                opclasses=["varchar_pattern_ops"],
            ),
        ),
    ]

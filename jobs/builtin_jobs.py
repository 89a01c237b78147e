"""Jobs that ship with the app."""

from __future__ import annotations

from datetime import timedelta

import pydantic
from django.utils import timezone

from jobs.conf import jobs_settings
from jobs.registry import job


class PruneRuns(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    succeeded_days: int | None = pydantic.Field(default=None, ge=1)
    failed_days: int | None = pydantic.Field(default=None, ge=1)


@job(name="jobs.prune_runs", schema=PruneRuns, queue="default", max_retries=3, time_limit=3600)
def prune_runs(succeeded_days: int | None = None, failed_days: int | None = None) -> dict[str, int]:
    """Delete finished runs older than the retention periods, in batches."""
    from jobs.models import JobRun
    from jobs.runtime import current_claim

    conf = jobs_settings()
    now = timezone.now()
    rules = {
        "succeeded": ([JobRun.State.SUCCEEDED], succeeded_days or conf.RETENTION_SUCCEEDED_DAYS),
        "failed": (
            [JobRun.State.DEAD, JobRun.State.SKIPPED, JobRun.State.CANCELLED],
            failed_days or conf.RETENTION_FAILED_DAYS,
        ),
    }
    deleted = {}
    for label, (states, days) in rules.items():
        cutoff = now - timedelta(days=days)
        total = 0
        while True:
            # Small batches keep each DELETE short, so workers and the admin never wait long.
            ids = list(
                JobRun.objects.filter(state__in=states, finished_at__lt=cutoff).values_list(
                    "id", flat=True
                )[: conf.RETENTION_BATCH_SIZE]
            )
            if not ids:
                break
            total += JobRun.objects.filter(id__in=ids).delete()[0]
            claim = current_claim()
            if claim is not None:
                claim.progress(50 if label == "succeeded" else 90, f"deleted {total} {label} runs")
        deleted[label] = total
    return deleted

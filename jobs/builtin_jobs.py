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
    from jobs.worker.claim import current_claim

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
        for state in states:  # one state at a time: one range of the (state, finished_at) index
            old = JobRun.objects.filter(state=state, finished_at__lt=cutoff)
            while True:
                # Oldest first along that index: each batch starts where the last one ended.
                # One DELETE per batch (the rows that refer to runs are set NULL by the
                # database), short enough that workers and the admin never wait long on it.
                batch = old.order_by("finished_at").values("id")[: conf.RETENTION_BATCH_SIZE]
                count = JobRun.objects.filter(id__in=batch).delete()[0]
                total += count
                claim = current_claim()
                if claim is not None and count:
                    percent = 50 if label == "succeeded" else 90
                    claim.progress(percent, f"deleted {total} {label} runs")
                if count < conf.RETENTION_BATCH_SIZE:
                    break
        deleted[label] = total
    return deleted

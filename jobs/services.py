"""Workflows of the jobs app: keyword-only functions that views, admin actions and commands call."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import dramatiq
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import schedules
from jobs.dispatch import send_runs
from jobs.errors import PayloadError, UnknownJob
from jobs.models import JobRun, Schedule
from jobs.registry import JobSpec, get_job
from jobs.runs import run_cancel_unstarted

logger = logging.getLogger(__name__)

State = JobRun.State

# ScheduleError.field -> the model field an operator edits.
TIMING_FIELDS = {
    "kind": "kind",
    "cron": "cron",
    "interval": "interval_seconds",
    "run_at": "run_at",
    "timezone": "timezone",
    "starts_at": "starts_at",
    "ends_at": "ends_at",
}


def enqueue(
    job: str | JobSpec,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    delay: timedelta | None = None,
    queue: str | None = None,
    priority: int = 0,
    schedule: Schedule | None = None,
) -> JobRun:
    """Record a run in the caller's transaction and send it to the broker when that commits.

    With `key`, a second call with the same key returns the first run instead of creating
    another (whatever its state). Raises UnknownJob or PayloadError before writing anything.
    """
    spec = job if isinstance(job, JobSpec) else get_job(job)
    clean = spec.validate(payload)
    now = timezone.now()
    run = JobRun(
        id=uuid.uuid4(),
        job=spec.name,
        payload=clean,
        key=key,
        schedule=schedule,
        queue=queue or spec.queue,
        priority=priority,
        max_retries=spec.max_retries,
        time_limit_seconds=spec.time_limit_seconds,
        created_at=now,
        run_after=now + delay if delay else None,
    )
    if key is None:
        run.save(force_insert=True)
    else:
        try:
            with transaction.atomic():
                run.save(force_insert=True)
        except IntegrityError:
            existing = JobRun.objects.filter(key=key).first()
            if existing is None:
                raise
            return existing
    transaction.on_commit(partial(send_runs, [run.id]))
    return run


def run_retry(*, run: JobRun) -> JobRun:
    """Run a dead, cancelled or skipped run again as a new run linked to it (history kept)."""
    if run.state not in (State.DEAD, State.CANCELLED, State.SKIPPED):
        raise ValueError(
            f"Only dead, cancelled or skipped runs can be retried; this one is {run.state}."
        )
    retry = JobRun(
        job=run.job,
        payload=run.payload,
        schedule=run.schedule,
        retry_of=run,
        queue=run.queue,
        priority=run.priority,
        max_retries=run.max_retries,
        time_limit_seconds=run.time_limit_seconds,
    )
    with transaction.atomic():
        retry.save(force_insert=True)
        transaction.on_commit(partial(send_runs, [retry.id]))
    return retry


def run_cancel(*, run: JobRun, reason: str = "cancelled by an operator") -> str:
    """Cancel a run: one not started yet is cancelled at once (the worker will skip it); a
    running one is asked to stop and raises jobs.Cancelled at its next progress call.
    Returns what happened: "cancelled", "requested" or "finished" (nothing to do)."""
    if run_cancel_unstarted(run_id=run.id, reason=reason):
        return "cancelled"
    if JobRun.objects.filter(id=run.id, state=State.RUNNING).update(
        cancel_requested=True, reason=reason
    ):
        return "requested"
    return "finished"


def schedule_validate(schedule: Schedule) -> None:
    """Raise ValidationError naming each bad field (timing, job, payload, queue)."""
    errors: dict[str, list[str]] = {}
    timing = schedule.timing()
    try:
        timing.validate()
    except schedules.ScheduleError as exc:
        errors.setdefault(TIMING_FIELDS.get(exc.field, "__all__"), []).append(str(exc))
    if schedule.kind == Schedule.Kind.CRON and "cron" not in errors and schedule.cron:
        schedule.cron = schedules.normalize_cron(schedule.cron)
    try:
        spec = get_job(schedule.job)
    except UnknownJob:
        known = ", ".join(sorted(_registered_names())) or "none"
        errors.setdefault("job", []).append(
            f"No job named {schedule.job!r} is registered. Known jobs: {known}."
        )
    else:
        try:
            schedule.payload = spec.validate(schedule.payload)
        except PayloadError as exc:
            errors.setdefault("payload", []).extend(
                f"{path}: {msg}" if path else f"The payload {msg}." for path, msg in exc.errors
            )
        if schedule.queue and schedule.queue not in dramatiq.get_broker().get_declared_queues():
            queues = ", ".join(sorted(dramatiq.get_broker().get_declared_queues()))
            errors.setdefault("queue", []).append(
                f"No worker listens to queue {schedule.queue!r}. Leave it empty or use one of: {queues}."
            )
    if errors:
        raise ValidationError(errors)


def _registered_names() -> list[str]:
    from jobs.registry import registered_jobs

    return list(registered_jobs())


def schedule_next_run(schedule: Schedule, now: datetime) -> datetime | None:
    if not schedule.enabled:
        return None
    return schedules.next_fire(schedule.timing(), now)


def schedule_save(*, schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Validate and save a schedule; its next run is recomputed so an edit takes effect at the
    next tick."""
    schedule_validate(schedule)
    now = now or timezone.now()
    schedule.next_run_at = schedule_next_run(schedule, now)
    schedule.save()
    return schedule

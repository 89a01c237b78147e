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

from jobs.errors import PayloadError, UnknownJob
from jobs.models import JobRun, Schedule
from jobs.registry import JobSpec, get_job, registered_jobs
from jobs.runs import transitions
from jobs.runs.send import send_and_mark
from jobs.timing import ScheduleError, next_fire, normalize_cron

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
    run, _ = enqueue_once(
        job, payload, key=key, delay=delay, queue=queue, priority=priority, schedule=schedule
    )
    return run


def enqueue_once(
    job: str | JobSpec,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    delay: timedelta | None = None,
    queue: str | None = None,
    priority: int = 0,
    schedule: Schedule | None = None,
) -> tuple[JobRun, bool]:
    """`enqueue()` that also says whether this call created the run (False: the key was in use)."""
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
    # INSERT ... ON CONFLICT DO NOTHING: a key in use inserts nothing (after waiting for a
    # concurrent inserter to commit), without the savepoint a caught IntegrityError needs.
    if run.id not in transitions.record([run]):
        existing = JobRun.objects.filter(key=key).first()
        if existing is None:
            raise IntegrityError(f"run {run.id} was not inserted and no run has key {key!r}")
        return existing, False
    transaction.on_commit(partial(send_and_mark, [run]))
    return run, True


def run_retry(*, run: JobRun) -> JobRun:
    """Run a dead, cancelled or skipped run again as a new run linked to it (history kept)."""
    if run.state not in (State.DEAD, State.CANCELLED, State.SKIPPED):
        raise ValueError(
            f"Only dead, cancelled or skipped runs can be retried; this one is {run.state}."
        )
    try:
        get_job(run.job)  # a removed job's message would only reach the dead-letter queue
    except UnknownJob:
        raise ValueError(
            f"Job {run.job!r} is no longer registered, so this run cannot be retried."
        ) from None
    if JobRun.objects.filter(retry_of=run).exclude(state__in=JobRun.FINISHED_STATES).exists():
        raise ValueError("This run has a retry that is still waiting or running.")
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
        # The row is in hand: send it as it is, no re-read after the commit.
        transaction.on_commit(partial(send_and_mark, [retry]))
    return retry


def run_cancel(*, run: JobRun, reason: str = "cancelled by an operator") -> str:
    """Cancel a run: one not started yet is cancelled at once (the worker will skip it); a
    running one is asked to stop and raises jobs.Cancelled at its next progress call.
    Returns what happened: "cancelled", "requested" or "finished" (nothing to do)."""
    if transitions.cancel_unstarted(run_id=run.id, reason=reason):
        return "cancelled"
    if transitions.request_cancel(run_id=run.id, reason=reason):
        return "requested"
    return "finished"


MIN_MISFIRE_GRACE_SECONDS = 5
"""A slot is always fired a moment after its time: a smaller grace would miss every slot."""


def schedule_validate(schedule: Schedule, now: datetime | None = None) -> None:
    """Raise ValidationError naming each bad field (timing, job, payload, queue, a schedule
    that is enabled but would never fire again after `now`)."""
    errors: dict[str, list[str]] = {}
    timing = schedule.timing()
    try:
        timing.validate()
    except ScheduleError as exc:
        errors.setdefault(TIMING_FIELDS.get(exc.field, "__all__"), []).append(str(exc))
    else:
        if schedule.enabled and next_fire(timing, now or timezone.now()) is None:
            field = "run_at" if schedule.kind == Schedule.Kind.ONCE else "ends_at"
            errors.setdefault(field, []).append(
                f"{field} is in the past, so this schedule would never run. Choose a later "
                "time, or untick Enabled to keep it only as a record."
            )
    if schedule.misfire_grace_seconds < MIN_MISFIRE_GRACE_SECONDS:
        errors.setdefault("misfire_grace_seconds", []).append(
            f"At least {MIN_MISFIRE_GRACE_SECONDS} seconds: the scheduler fires a slot a moment "
            "after its time, so a smaller grace would count every slot as missed."
        )
    if schedule.kind == Schedule.Kind.CRON and "cron" not in errors and schedule.cron:
        schedule.cron = normalize_cron(schedule.cron)
    try:
        spec = get_job(schedule.job)
    except UnknownJob:
        known = ", ".join(sorted(registered_jobs())) or "none"
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


def schedule_next_run(schedule: Schedule, now: datetime) -> datetime | None:
    if not schedule.enabled:
        return None
    return next_fire(schedule.timing(), now)


def schedule_save(*, schedule: Schedule, now: datetime | None = None) -> Schedule:
    """Validate and save a schedule; its next run is recomputed so an edit takes effect at the
    next tick."""
    now = now or timezone.now()
    schedule_validate(schedule, now)
    schedule.next_run_at = schedule_next_run(schedule, now)
    schedule.save()
    return schedule


# ---------------------------------------------------------------------------------------------
# Operator actions (the admin's buttons and actions call these)
# ---------------------------------------------------------------------------------------------


def schedule_pause(*, schedule: Schedule, reason: str) -> bool:
    """Stop a schedule firing until it is resumed, recording why. Returns False if it was
    already paused (its reason is left alone). Slots that pass while paused are not run."""
    reason = reason.strip()
    if not reason:
        raise ValueError("Give a reason for pausing the schedule; operators will see it.")
    now = timezone.now()
    # Conditional UPDATE: a tick that holds the row lock finishes first, then this wins.
    paused = Schedule.objects.filter(pk=schedule.pk, enabled=True).update(
        enabled=False, paused_reason=reason[:1000], next_run_at=None, updated_at=now
    )
    schedule.refresh_from_db(fields=["enabled", "paused_reason", "next_run_at", "updated_at"])
    return paused == 1


def schedule_resume(*, schedule: Schedule, now: datetime | None = None) -> bool:
    """Let a paused schedule fire again from its first slot after `now` (slots missed while it
    was paused are not run; backfill them if they are needed). Returns False if it was not
    paused. Raises ValueError when the schedule has no slot left (a past one-off, an ends_at
    in the past) or its timing is no longer valid: edit it first."""
    now = now or timezone.now()
    schedule.refresh_from_db()
    if schedule.enabled:
        return False
    try:
        get_job(schedule.job)
    except UnknownJob:
        raise ValueError(
            f"Schedule {schedule.name!r} runs job {schedule.job!r}, which is no longer "
            "registered: choose another job before resuming it."
        ) from None
    next_run = next_fire(schedule.timing(), now)
    if next_run is None:
        raise ValueError(
            f"Schedule {schedule.name!r} has no run left after {now:%Y-%m-%d %H:%M} UTC "
            "(its run_at or ends_at is in the past): change its timing before resuming it."
        )
    resumed = Schedule.objects.filter(pk=schedule.pk, enabled=False).update(
        enabled=True, paused_reason="", next_run_at=next_run, updated_at=timezone.now()
    )
    schedule.refresh_from_db(fields=["enabled", "paused_reason", "next_run_at", "updated_at"])
    return resumed == 1


def schedule_run_now(*, schedule: Schedule) -> JobRun:
    """Run a schedule's job once, now, outside its slot sequence.

    The run is linked to the schedule but takes no slot (scheduled_for is NULL), so the
    schedule's next slot still fires as planned. It goes through `enqueue` (sent when the
    caller's transaction commits) with the schedule's queue, priority, retries and time limit.
    Raises UnknownJob or PayloadError (nothing written) if the schedule no longer fits its job.
    """
    spec = get_job(schedule.job)
    with transaction.atomic():
        run = enqueue(
            spec,
            schedule.payload,
            schedule=schedule,
            queue=schedule.queue or None,
            priority=schedule.priority,
        )
        overrides: dict[str, Any] = {}
        if schedule.max_retries is not None:
            overrides["max_retries"] = schedule.max_retries
        if schedule.time_limit_seconds:
            overrides["time_limit_seconds"] = schedule.time_limit_seconds
        if overrides:
            # Before the commit, so the message sent on commit carries them.
            JobRun.objects.filter(id=run.id).update(**overrides)
            for name, value in overrides.items():
                setattr(run, name, value)
    return run


# Copied from the original; the rest (ids, timestamps, state) belongs to the original alone.
_DUPLICATED_FIELDS = (
    "job",
    "payload",
    "kind",
    "cron",
    "interval_seconds",
    "run_at",
    "timezone",
    "starts_at",
    "ends_at",
    "misfire_policy",
    "misfire_grace_seconds",
    "overlap_policy",
    "jitter_seconds",
    "queue",
    "priority",
    "max_retries",
    "time_limit_seconds",
)


def schedule_duplicate(*, schedule: Schedule) -> Schedule:
    """Copy a schedule (job, payload, timing, policies) under a free name "<name> (copy)".

    The copy starts paused, so two identical schedules never both fire by accident: the
    operator adjusts it (a different payload, usually) and resumes it. Raises ValidationError
    if the original no longer validates (e.g. its job was removed).
    """
    copy = Schedule(**{name: getattr(schedule, name) for name in _DUPLICATED_FIELDS})
    copy.name = _free_schedule_name(schedule.name)
    copy.enabled = False
    copy.paused_reason = f"Copy of {schedule.name!r}: review it, then resume it."[:1000]
    return schedule_save(schedule=copy)


def _free_schedule_name(name: str) -> str:
    limit = Schedule._meta.get_field("name").max_length or 200
    for n in range(1, 1000):
        suffix = " (copy)" if n == 1 else f" (copy {n})"
        candidate = name[: limit - len(suffix)] + suffix
        if not Schedule.objects.filter(name=candidate).exists():
            return candidate
    return f"{name[: limit - 40]} (copy {uuid.uuid4()})"

"""Backfill: record the runs of a schedule's slots in a past date range that have none."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs.ids import random_uuids
from jobs.models import JobRun, Schedule
from jobs.registry import get_job
from jobs.runs import transitions
from jobs.runs.send import send_runs
from jobs.timing import ScheduleError, fire_times

State = JobRun.State


BACKFILL_CAP = 500


@dataclass(frozen=True)
class BackfillPlan:
    """The slots of a schedule in a date range, and which of them already have a run."""

    slots: list[datetime]
    """Every slot in the range, oldest first."""
    existing: frozenset[datetime]
    """Slots that already have a run (run, skipped or queued): a backfill leaves them alone."""

    @property
    def new(self) -> list[datetime]:
        return [slot for slot in self.slots if slot not in self.existing]


@dataclass(frozen=True)
class BackfillResult:
    created: list[uuid.UUID]
    skipped_existing: int


def schedule_backfill_plan(
    *,
    schedule: Schedule,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    cap: int = BACKFILL_CAP,
) -> BackfillPlan:
    """The schedule's slots in [start, end] (both inclusive) and which already have a run.

    Raises ValidationError naming `start`/`end` for a reversed range, a range reaching into
    the future (the scheduler runs those slots) or one holding more than `cap` slots.
    """
    now = now or timezone.now()
    if end < start:
        raise ValidationError({"end": "The end of the range must not be before its start."})
    if end > now:
        raise ValidationError(
            {
                "end": "The range must end in the past: the scheduler runs future slots itself. "
                "Choose an end no later than now."
            }
        )
    try:
        slots = fire_times(schedule.timing(), start - timedelta(microseconds=1), cap + 1)
    except ScheduleError as exc:
        raise ValidationError(
            f"The schedule's timing is invalid ({exc}); fix the schedule first."
        ) from None
    slots = [slot for slot in slots if slot <= end]
    if len(slots) > cap:
        raise ValidationError(
            {
                "start": f"The range holds more than {cap} slots; a backfill creates at most "
                f"{cap} runs. Choose a shorter range (or backfill in parts)."
            }
        )
    existing = frozenset(
        slot
        for slot in JobRun.objects.filter(schedule=schedule, scheduled_for__in=slots).values_list(
            "scheduled_for", flat=True
        )
        if slot is not None
    )
    return BackfillPlan(slots=slots, existing=existing)


def schedule_backfill(
    *,
    schedule: Schedule,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    cap: int = BACKFILL_CAP,
) -> BackfillResult:
    """Create one run per slot of the schedule in [start, end], each with its slot as
    scheduled_for, sent when the caller's transaction commits.

    A slot that already has a run is not run again: UNIQUE(schedule, scheduled_for) refuses it
    (also when the scheduler or another backfill inserts it concurrently), and it is counted
    in `skipped_existing`. Raises ValidationError as schedule_backfill_plan does, and
    UnknownJob or PayloadError when the schedule no longer fits its job.
    """
    from jobs.scheduling.plan import NewRun

    plan = schedule_backfill_plan(schedule=schedule, start=start, end=end, now=now, cap=cap)
    spec = get_job(schedule.job)
    payload = spec.validate(schedule.payload)
    created_at = timezone.now()
    ids = random_uuids()
    runs = [
        NewRun(
            id=next(ids),
            schedule_id=schedule.pk,
            job=spec.name,
            payload=payload,
            scheduled_for=slot,
            state=State.PENDING,
            reason="",
            queue=schedule.queue or spec.queue,
            priority=schedule.priority,
            max_retries=schedule.max_retries
            if schedule.max_retries is not None
            else spec.max_retries,
            time_limit_seconds=schedule.time_limit_seconds or spec.time_limit_seconds,
            created_at=created_at,
            run_after=None,
            finished_at=None,
        )
        for slot in plan.new
    ]
    with transaction.atomic():
        inserted = transitions.record(runs)
        created = [run.id for run in runs if run.id in inserted]
        if created:
            transaction.on_commit(partial(send_runs, created))
    return BackfillResult(created=created, skipped_existing=len(plan.slots) - len(created))

"""Plan the runs of claimed schedules: which slots fire, which are skipped and why, and
what each new run looks like (its id, queue, options, delay and overlap handling)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobs.conf import jobs_settings
from jobs.errors import UnknownJob
from jobs.ids import random_uuids
from jobs.models import JobRun, Schedule
from jobs.registry import get_job
from jobs.timing import DuePlan, Timing, plan_due, slot_jitter

logger = logging.getLogger(__name__)

State = JobRun.State


@dataclass
class TickResult:
    schedules: int = 0
    fired: int = 0
    skipped: int = 0
    sent: int = 0
    lateness: list[float] = field(default_factory=list, repr=False)

    def add(self, other: TickResult) -> None:
        self.schedules += other.schedules
        self.fired += other.fired
        self.skipped += other.skipped
        self.sent += other.sent
        self.lateness.extend(other.lateness)


@dataclass(slots=True)
class DueSchedule:
    """A claimed schedule: the columns a tick reads and writes, without a model instance
    (building 500 Schedule instances per batch cost more CPU than planning them)."""

    id: int
    name: str
    job: str
    payload: Any
    kind: str
    cron: str
    interval_seconds: int | None
    run_at: datetime | None
    timezone: str
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    next_run_at: datetime | None  # set on every claimed row; None once a tick disables it
    misfire_policy: str
    misfire_grace_seconds: int
    overlap_policy: str
    jitter_seconds: int
    queue: str
    priority: int
    max_retries: int | None
    time_limit_seconds: int | None
    last_fired_at: datetime | None
    enabled: bool
    paused_reason: str

    def plan_key(self) -> tuple[Any, ...]:
        """What plan_due depends on: schedules with equal keys get the same plan."""
        return (
            self.kind,
            self.timezone,
            self.cron,
            self.interval_seconds,
            self.run_at,
            self.starts_at,
            self.ends_at,
            self.created_at if self.kind == Schedule.Kind.INTERVAL else None,
            self.next_run_at,
            self.misfire_policy,
            self.misfire_grace_seconds,
        )

    def timing(self) -> Timing:
        return Schedule.timing_of(self)


def plan_runs(
    batch: list[DueSchedule], now: datetime, result: TickResult, *, created_at: datetime
) -> list[NewRun]:
    """Decide, for each claimed schedule, which slots run and which are skipped, and advance it.
    `created_at` is the database's time (the sweep compares it with its clock to find sends
    that never happened); `now` may be a test's clock."""
    conf = jobs_settings()
    guarded = [s.id for s in batch if s.overlap_policy != Schedule.Overlap.ALLOW]
    active: dict[int, set[str]] = {}
    if guarded:
        for schedule_id, state in (
            JobRun.objects.active()
            .filter(schedule_id__in=guarded)
            .values_list("schedule_id", "state")
            .distinct()
        ):
            active.setdefault(schedule_id, set()).add(state)

    # Many schedules share a timing (every tenant's "0 2 * * *"): plan each distinct one once.
    plans: dict[tuple[Any, ...], DuePlan] = {}
    ids = random_uuids()
    runs: list[NewRun] = []
    for schedule in batch:
        key = schedule.plan_key()
        try:
            if (plan := plans.get(key)) is None:
                plan = plans[key] = plan_due(
                    schedule.timing(),
                    next_slot=schedule.next_run_at,  # type: ignore[arg-type] # claimed: it is set
                    now=now,
                    policy=schedule.misfire_policy,
                    grace=timedelta(seconds=schedule.misfire_grace_seconds),
                    cap=conf.MISFIRE_CAP,
                )
        except ValueError as exc:
            # One bad row (written around validation) must not stop every other schedule.
            logger.error("schedule %r disabled: its timing is invalid: %s", schedule.name, exc)
            schedule.enabled, schedule.next_run_at = False, None
            schedule.paused_reason = f"Disabled by the scheduler: invalid timing: {exc}"[:1000]
            continue
        fire, skip = _apply_overlap(
            schedule, list(plan.fire), list(plan.skip), active.get(schedule.id, set())
        )
        try:
            spec = get_job(schedule.job)
        except UnknownJob as exc:
            logger.error("schedule %r: %s Its slots are recorded as skipped.", schedule.name, exc)
            skip = [
                *(
                    (slot, f"{exc} Deploy the code that defines it, or fix the schedule.")
                    for slot in fire
                ),
                *skip,
            ]
            fire, spec = [], None
        for slot in fire:
            runs.append(_new_run(schedule, spec, slot, State.PENDING, now, created_at, next(ids)))
            result.lateness.append((now - slot).total_seconds())
        for slot, reason in skip:
            runs.append(
                _new_run(
                    schedule, spec, slot, State.SKIPPED, now, created_at, next(ids), reason=reason
                )
            )
        if plan.skipped_unrecorded:
            logger.warning(
                "schedule %r: %d more missed slot(s) not recorded (cap %d)",
                schedule.name,
                plan.skipped_unrecorded,
                conf.MISFIRE_CAP,
            )
        result.fired += len(fire)
        result.skipped += len(skip) + plan.skipped_unrecorded
        if fire:
            schedule.last_fired_at = now
        schedule.next_run_at = plan.next_slot
        if plan.next_slot is None:
            schedule.enabled = False  # a `once` schedule that fired, or one past its ends_at
    return runs


def _apply_overlap(
    schedule: DueSchedule,
    fire: list[datetime],
    skip: list[tuple[datetime, str]],
    active_states: set[str],
) -> tuple[list[datetime], list[tuple[datetime, str]]]:
    policy = schedule.overlap_policy
    if policy == Schedule.Overlap.ALLOW or not fire:
        return fire, skip
    waiting = active_states & {State.PENDING, State.QUEUED, State.RETRYING}
    if policy == Schedule.Overlap.SKIP and active_states:
        return [], [*skip, *((s, "previous run still active (overlap policy: skip)") for s in fire)]
    if policy == Schedule.Overlap.QUEUE_ONE and waiting:
        return [], [
            *skip,
            *((s, "a run is already queued (overlap policy: queue_one)") for s in fire),
        ]
    # Several due slots at once would overlap each other: run the latest, skip the rest.
    return fire[-1:], [
        *skip,
        *((s, f"would overlap (overlap policy: {policy})") for s in fire[:-1]),
    ]


@dataclass(slots=True)
class NewRun:
    """A run the tick is about to insert: the columns it sets, without a model instance (creating
    thousands of JobRun instances per tick cost more than writing them)."""

    schedule_id: int
    job: str
    payload: dict[str, Any]
    scheduled_for: datetime
    state: str
    reason: str
    queue: str
    priority: int
    max_retries: int
    time_limit_seconds: int | None
    created_at: datetime
    run_after: datetime | None
    finished_at: datetime | None
    id: uuid.UUID  # from jobs.ids.random_uuids(): uuid.uuid4() per run cost more than the rest
    attempts: int = 0

    def as_model(self) -> JobRun:
        return JobRun(**{name: getattr(self, name) for name in self.__slots__})


def _new_run(
    schedule: DueSchedule,
    spec: Any,
    slot: datetime,
    state: str,
    now: datetime,
    created_at: datetime,
    run_id: uuid.UUID,
    *,
    reason: str = "",
) -> NewRun:
    run_after = None
    if state == State.PENDING and schedule.jitter_seconds:
        run_after = slot + slot_jitter(schedule.id, slot, schedule.jitter_seconds)
    max_retries = (
        schedule.max_retries
        if schedule.max_retries is not None
        else spec.max_retries
        if spec
        else 0
    )
    return NewRun(
        schedule_id=schedule.id,
        job=schedule.job,
        payload=schedule.payload,
        scheduled_for=slot,
        state=state,
        reason=reason[:1000],
        queue=schedule.queue or (spec.queue if spec else "default"),
        priority=schedule.priority,
        max_retries=max_retries,
        time_limit_seconds=schedule.time_limit_seconds
        or (spec.time_limit_seconds if spec else None),
        created_at=created_at,
        run_after=run_after,
        finished_at=now if state == State.SKIPPED else None,
        id=run_id,
    )

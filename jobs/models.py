"""Schedules, job runs and process heartbeats.

Every state change of a run is one conditional statement in jobs/transitions.py;
the database refuses what must never happen: a slot fired twice, a key used twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone

from jobs import schedules


def default_timezone() -> str:
    return str(settings.TIME_ZONE or "UTC")


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def due(self, now: datetime) -> ScheduleQuerySet:
        """Enabled schedules whose next slot is at or before `now` (uses jobs_schedule_due_idx)."""
        return self.filter(enabled=True, next_run_at__lte=now)

    def late(self, now: datetime) -> list[Schedule]:
        """Due schedules whose slot is older than their misfire grace: no scheduler is firing
        them. (Compared in Python: interval arithmetic on a column is not portable to SQLite.)"""
        return [
            s
            for s in self.due(now).only("id", "name", "next_run_at", "misfire_grace_seconds")
            if s.next_run_at is not None and now - s.next_run_at > s.misfire_grace
        ]


class Schedule(models.Model):
    class Kind(models.TextChoices):
        CRON = "cron", "Cron expression"
        INTERVAL = "interval", "Fixed interval"
        ONCE = "once", "Once, at a given time"

    class Misfire(models.TextChoices):
        SKIP = "skip", "Skip missed slots"
        """After downtime, run nothing late; missed slots are recorded as skipped."""
        LATEST = "latest", "Run the latest missed slot once"
        ALL = "all", "Run every missed slot within the grace window"

    class Overlap(models.TextChoices):
        ALLOW = "allow", "Allow overlapping runs"
        SKIP = "skip", "Skip a slot while a run is queued or running"
        QUEUE_ONE = "queue_one", "Queue at most one run behind a running one"

    # Unique by a constraint in Meta, not unique=True, which on PostgreSQL adds a second
    # (varchar_pattern_ops) index for LIKE 'prefix%' lookups that nothing here makes, and
    # every index costs each tick's update of next_run_at.
    name = models.CharField(max_length=200)
    job = models.CharField(max_length=200, help_text="A registered job name.")
    payload = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CRON)
    cron = models.CharField(max_length=120, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default=default_timezone)
    enabled = models.BooleanField(default=True)
    paused_reason = models.TextField(blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    misfire_policy = models.CharField(max_length=10, choices=Misfire.choices, default=Misfire.SKIP)
    misfire_grace_seconds = models.PositiveIntegerField(default=60)
    overlap_policy = models.CharField(max_length=10, choices=Overlap.choices, default=Overlap.ALLOW)
    jitter_seconds = models.PositiveIntegerField(default=0)
    queue = models.CharField(max_length=100, blank=True, help_text="Empty: the job's queue.")
    priority = models.SmallIntegerField(default=0)
    max_retries = models.PositiveSmallIntegerField(null=True, blank=True)
    time_limit_seconds = models.PositiveIntegerField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    # Not auto_now_add: it is the interval anchor, and the service sets it before computing
    # the first slot.
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="jobs_schedule_due_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["name"], name="jobs_schedule_unique_name"),
            models.CheckConstraint(
                condition=~Q(kind="interval") | Q(interval_seconds__gt=0),
                name="jobs_schedule_interval_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind="once") | Q(run_at__isnull=False),
                name="jobs_schedule_once_has_run_at",
            ),
            models.CheckConstraint(
                condition=~Q(kind="cron") | ~Q(cron=""), name="jobs_schedule_cron_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True)
                | Q(starts_at__isnull=True)
                | Q(ends_at__gt=models.F("starts_at")),
                name="jobs_schedule_ends_after_starts",
            ),
        ]
        permissions = [
            ("run_schedule", "Can run a schedule now or backfill it"),
            ("pause_schedule", "Can pause and resume a schedule"),
        ]

    def __str__(self) -> str:
        return self.name

    def timing(self) -> schedules.Timing:
        """The pure description of when this schedule fires (see jobs/schedules.py)."""
        return self.timing_of(self)

    @classmethod
    def timing_of(cls, row: Any) -> schedules.Timing:
        """timing() of anything with a schedule's timing columns as attributes (the scheduler
        reads rows without building model instances)."""
        return schedules.Timing(
            kind=row.kind,
            timezone=row.timezone,
            cron=row.cron,
            interval=timedelta(seconds=row.interval_seconds) if row.interval_seconds else None,
            run_at=row.run_at,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            # Only intervals need an anchor; leaving it out of cron and once timings lets the
            # scheduler share one computation between schedules with the same timing.
            anchor=(row.created_at or dj_timezone.now()) if row.kind == cls.Kind.INTERVAL else None,
        )

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(seconds=self.misfire_grace_seconds)


class JobRunQuerySet(models.QuerySet["JobRun"]):
    def active(self) -> JobRunQuerySet:
        return self.filter(state__in=JobRun.ACTIVE_STATES)

    def finished(self) -> JobRunQuerySet:
        return self.filter(state__in=JobRun.FINISHED_STATES)

    # `now` is the database's clock (functions.Now()) except in tests.
    def stale_pending(self, now: Any, older_than: timedelta) -> JobRunQuerySet:
        """Committed runs whose send never happened (broker down, process killed): the outbox."""
        return self.filter(state=JobRun.State.PENDING, created_at__lt=now - older_than).filter(
            Q(run_after__isnull=True) | Q(run_after__lte=now)
        )

    def expired_leases(self, now: Any) -> JobRunQuerySet:
        """Runs whose worker stopped renewing its lease: it died or lost the database."""
        return self.filter(state=JobRun.State.RUNNING, lease_expires_at__lt=now)

    def lost_retries(self, now: Any, older_than: timedelta) -> JobRunQuerySet:
        """Retries that were due long ago but never started: their re-enqueue was lost."""
        return self.filter(state=JobRun.State.RETRYING, run_after__lt=now - older_than)


class JobRun(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        """Recorded, not yet handed to the broker (sent on commit; re-sent by the sweep)."""
        QUEUED = "queued", "Queued"
        """In the broker, waiting for a worker."""
        RUNNING = "running", "Running"
        """Claimed by a worker that holds a lease on it."""
        RETRYING = "retrying", "Retrying"
        """Failed; another attempt is scheduled at run_after."""
        SUCCEEDED = "succeeded", "Succeeded"
        DEAD = "dead", "Dead"
        """Failed on its last attempt; error and traceback say why."""
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped"
        """A slot not run (overlap, misfire, age limit); `reason` says why."""

    ACTIVE_STATES = (State.PENDING, State.QUEUED, State.RUNNING, State.RETRYING)
    FINISHED_STATES = (State.SUCCEEDED, State.DEAD, State.CANCELLED, State.SKIPPED)
    CANCELLABLE_STATES = (State.PENDING, State.QUEUED, State.RETRYING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    # Indexed by the partial jobs_run_schedule_idx, not a full FK index: ad-hoc runs need no
    # entry, and every index costs each inserted run and each state change (a state change is
    # never a HOT update here, because `state` is in the partial indexes' conditions).
    schedule = models.ForeignKey(
        Schedule,
        null=True,
        blank=True,
        # In the database, not in Python: deleting a schedule or pruning runs must not first
        # load the millions of rows that refer to them.
        on_delete=models.DB_SET_NULL,
        related_name="runs",
        db_index=False,
    )
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The slot; empty for ad-hoc runs."
    )
    # NULL, not "": many runs have no key, and UNIQUE must only bind the ones that do.
    key = models.CharField(max_length=255, null=True, blank=True, help_text="Deduplication key.")  # noqa: DJ001
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="retries",
        db_index=False,  # the partial jobs_run_retry_of_idx: most runs are not retries
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True, help_text="Why the run was skipped or cancelled.")
    queue = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0)
    max_retries = models.PositiveSmallIntegerField(default=3)
    time_limit_seconds = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)
    run_after = models.DateTimeField(
        null=True, blank=True, help_text="Not before (deferred run or next retry)."
    )
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # db_default: the scheduler's COPY of new runs leaves the column out.
    worker_losses = models.PositiveSmallIntegerField(
        default=0, db_default=0, help_text="Attempts lost with their worker (killed, stuck)."
    )
    history = models.JSONField(
        default=list, blank=True, help_text="Earlier attempts and their errors."
    )

    objects = JobRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Partial: ad-hoc and "run now" runs have no slot, and an index entry for them
            # would cost every write of such a run (each state change writes every index).
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                condition=Q(schedule__isnull=False, scheduled_for__isnull=False),
                name="jobs_run_unique_slot",
            ),
            models.UniqueConstraint(
                fields=["key"], condition=Q(key__isnull=False), name="jobs_run_unique_key"
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="jobs_run_progress_range"),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(state="pending"), name="jobs_run_pending_idx"
            ),
            models.Index(
                fields=["lease_expires_at"], condition=Q(state="running"), name="jobs_run_lease_idx"
            ),
            # Runs found by the start of their key (LIKE 'prefix%'): the unique index on key
            # cannot serve that under a non-C collation. Only runs with a key are in it.
            models.Index(
                fields=["key"],
                opclasses=["varchar_pattern_ops"],
                condition=Q(key__isnull=False),
                name="jobs_run_key_prefix_idx",
            ),
            # Dead runs, newest first: the overview's latest failures and the run list's
            # state=dead filter. Dead runs are rare, so the index is small and costs nothing
            # to the runs that succeed.
            models.Index(
                fields=["-created_at"], condition=Q(state="dead"), name="jobs_run_dead_idx"
            ),
            # The sweep's search for queued runs whose message the broker may have lost.
            models.Index(
                fields=["enqueued_at"], condition=Q(state="queued"), name="jobs_run_queued_idx"
            ),
            models.Index(
                fields=["run_after"], condition=Q(state="retrying"), name="jobs_run_retrying_idx"
            ),
            # Partial indexes: a row costs an index entry only while it matches, which keeps
            # the scheduler's bulk inserts and state changes cheap.
            models.Index(
                fields=["schedule"],
                condition=Q(
                    schedule__isnull=False, state__in=["pending", "queued", "running", "retrying"]
                ),
                name="jobs_run_active_idx",
            ),
            # Finished runs by state, then time: retention deletes the oldest of a state in
            # order (a walk by time alone would read past every kept failed run first), and
            # the overview counts per hour and state.
            models.Index(
                fields=["state", "finished_at"],
                condition=Q(finished_at__isnull=False),
                name="jobs_run_state_finished_idx",
            ),
            models.Index(fields=["-created_at"], name="jobs_run_created_idx"),
            # A schedule's runs, newest first (admin list, last run, sparkline), and the
            # SET_NULL when a schedule is deleted.
            models.Index(
                fields=["schedule", "-created_at"],
                condition=Q(schedule__isnull=False),
                name="jobs_run_schedule_idx",
            ),
            models.Index(
                fields=["retry_of"],
                condition=Q(retry_of__isnull=False),
                name="jobs_run_retry_of_idx",
            ),
        ]
        permissions = [
            ("retry_jobrun", "Can retry failed runs"),
            ("cancel_jobrun", "Can cancel runs"),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.id}"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES


class Heartbeat(models.Model):
    """The last sign of life of a scheduler or worker process, for health checks and the admin."""

    class Kind(models.TextChoices):
        SCHEDULER = "scheduler", "Scheduler"
        WORKER = "worker", "Worker"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=200, help_text="host:pid")
    seen_at = models.DateTimeField()
    started_at = models.DateTimeField()
    info = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="jobs_heartbeat_unique")
        ]
        indexes = [models.Index(fields=["kind", "-seen_at"], name="jobs_heartbeat_seen_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

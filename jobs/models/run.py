"""A job run: one execution of a job, with its state, attempts, progress, result and error.

Every state change of a run is one conditional statement in jobs/runs/transitions.py; the
database refuses a key used twice.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone

from jobs.models.schedule import Schedule


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

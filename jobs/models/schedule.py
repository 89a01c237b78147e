"""A schedule: when a job fires (cron, interval, once), with what payload, and its misfire policy.

The database refuses a slot fired twice; the scheduler claims due schedules with
jobs_schedule_due_idx.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone

from jobs.timing import Timing


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

    def timing(self) -> Timing:
        """The pure description of when this schedule fires (see jobs/timing/)."""
        return self.timing_of(self)

    @classmethod
    def timing_of(cls, row: Any) -> Timing:
        """timing() of anything with a schedule's timing columns as attributes (the scheduler
        reads rows without building model instances)."""
        return Timing(
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

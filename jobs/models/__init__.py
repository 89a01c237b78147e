"""The jobs app's tables: schedules, job runs and process heartbeats."""

from jobs.models.heartbeat import Heartbeat
from jobs.models.run import JobRun, JobRunQuerySet
from jobs.models.schedule import Schedule, ScheduleQuerySet, default_timezone

__all__ = [
    "Heartbeat",
    "JobRun",
    "JobRunQuerySet",
    "Schedule",
    "ScheduleQuerySet",
    "default_timezone",
]

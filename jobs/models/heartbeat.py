"""Process heartbeats: the last sign of life of a scheduler or worker process."""

from __future__ import annotations

from django.db import models


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

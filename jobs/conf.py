"""Settings of the jobs app, all prefixed JOBS_; override_settings works on them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class JobsSettings:
    LEASE_SECONDS: int = 15
    """How long a claimed run stays owned without a heartbeat; a dead worker's run is taken over after it."""
    SWEEP_INTERVAL_SECONDS: int = 5
    """How often a scheduler re-sends pending runs, expired leases and lost retries."""
    PENDING_RESEND_AFTER_SECONDS: int = 10
    """A run still `pending` this long after it was created is sent again (outbox)."""
    RETRY_RESEND_AFTER_SECONDS: int = 60
    """A `retrying` run whose retry message has not arrived this long after it was due is re-sent."""
    QUEUED_RESEND_AFTER_SECONDS: int = 30
    """A `queued` run may be re-sent once it has waited this long and its queue in the broker
    holds fewer messages than the database has runs waiting (the broker lost messages)."""
    PREFETCH_ALLOWANCE: int = 16
    """RabbitMQ only: messages a worker process may have fetched but not started, per queue
    (Dramatiq fetches twice its thread count: 16 for 8 threads), which the broker no longer
    counts as waiting."""
    HUNG_GRACE_SECONDS: int = 30
    """A run still executing this long past its time limit is stuck in a blocking call: it is
    ended as dead and its worker process is recycled."""
    TICK_BATCH_SIZE: int = 500
    """Schedules claimed per tick transaction."""
    MISFIRE_CAP: int = 100
    """At most this many missed slots are recorded (or caught up) per schedule and tick."""
    DEFAULT_MAX_RETRIES: int = 3
    DEFAULT_TIME_LIMIT_SECONDS: int = 600
    MAX_PAYLOAD_BYTES: int = 64 * 1024
    ERROR_MAX_CHARS: int = 4_000
    TRACEBACK_MAX_CHARS: int = 20_000
    RETENTION_SUCCEEDED_DAYS: int = 14
    RETENTION_FAILED_DAYS: int = 90
    RETENTION_BATCH_SIZE: int = 5_000
    ALERT_WEBHOOK_URL: str = ""
    """Slack-compatible incoming webhook for dead runs and late schedules; empty to disable."""
    ALERT_EMAIL_ADMINS: bool = True
    WORKER_SEEN_SECONDS: int = 60
    ADMIN_INDEX_LINK: bool = False
    """Make admin/jobs/site_index.html (the admin index plus a link to the jobs overview) the
    admin site's index template, unless the project set one. Off: the admin site is left as
    Django sets it, and the overview is linked from the jobs app's page."""
    MAX_WORKER_LOSSES: int = 3
    """Attempts a run may lose with its worker (killed, out of memory) before it is dead:
    a job that kills its worker every time must not be handed out for ever."""


_FIELDS = [f.name for f in fields(JobsSettings)]


@cache
def jobs_settings() -> JobsSettings:
    """The current JOBS_* settings over their defaults. Read once (a worker asks for every
    message; reading 20 settings through Django's lazy settings cost 0.1 ms each time) and read
    again when a test changes one (override_settings sends setting_changed)."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if hasattr(settings, f"JOBS_{name}"):
            values[name] = getattr(settings, f"JOBS_{name}")
    return JobsSettings(**values)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("JOBS_"):
        jobs_settings.cache_clear()

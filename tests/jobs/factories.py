from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.models import Schedule
from jobs.services import schedule_save


def make_schedule(now: datetime | None = None, **fields: Any) -> Schedule:
    """A valid schedule saved through the service (so next_run_at is computed as in the admin)."""
    now = now or datetime.now(UTC)
    values: dict[str, Any] = {
        "name": f"schedule-{Schedule.objects.count() + 1}-{now.timestamp()}",
        "job": "test.noop",
        "kind": Schedule.Kind.CRON,
        "cron": "* * * * *",
        "timezone": "UTC",
        "created_at": now - timedelta(seconds=1),
    }
    values.update(fields)
    return schedule_save(schedule=Schedule(**values), now=now)

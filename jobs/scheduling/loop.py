"""The long-running scheduler loop behind `manage.py runscheduler` (and `runall`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from jobs.alerts import alert_schedules_late
from jobs.conf import jobs_settings
from jobs.db.connection import database_now
from jobs.health import is_database_outage, outage, process_name, write_heartbeat
from jobs.models import Heartbeat, Schedule
from jobs.scheduling.plan import TickResult
from jobs.scheduling.sweep import sweep
from jobs.scheduling.tick import next_due_in, tick

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def fake_clock(start: datetime, speed: float) -> Clock:
    """A clock that starts at `start` and runs `speed` times faster than real time (tests)."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=(time.monotonic() - origin) * speed)


class SchedulerLoop:
    """Tick, sweep and heartbeat until stopped. An outage of the database or the broker is
    logged when it starts and when it ends, and the loop backs off meanwhile; any other failure
    is logged with its traceback and kept in the heartbeat."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_sleep: float = 1.0,
        name_suffix: str = "",
        stop_event: threading.Event | None = None,
    ) -> None:
        self.clock = clock  # None: the database's clock; a fake one in tests
        self.max_sleep = max_sleep
        self.name = process_name() + (f":{name_suffix}" if name_suffix else "")
        self.stop_event = stop_event or threading.Event()
        self.started_at = timezone.now()
        self.last_sweep = 0.0
        self.totals = TickResult()
        self.ticks = 0
        self.alerted_late: set[tuple[int, datetime]] = set()
        self.database = outage("database")
        self.failures = 0

    def stop(self, *_: Any) -> None:
        self.stop_event.set()

    def run_forever(self) -> None:
        logger.info("scheduler %s started", self.name)
        try:
            while not self.stop_event.is_set():
                result = self.run_once()
                if result is None:
                    # Back off after a failure: 1 s, 2 s, 4 s ... up to 30 s.
                    sleep = min(30.0, 2.0 ** (self.failures - 1))
                else:
                    try:
                        sleep = next_due_in(self._now(), self.max_sleep)
                    except DatabaseError:
                        sleep = self.max_sleep
                        connection.close()
                self.stop_event.wait(sleep)
        finally:
            logger.info(
                "scheduler %s stopped after %d ticks: %s", self.name, self.ticks, self.totals
            )
            connection.close()

    def _now(self) -> datetime:
        return self.clock() if self.clock is not None else database_now()

    def run_once(self) -> TickResult | None:
        error = ""
        result = None
        now = None
        try:
            now = self._now()
            self._alert_late(now)
            result = tick(now)
            self.totals.add(result)
            self.ticks += 1
            if result.fired or result.skipped:
                logger.info(
                    "tick %s: %d schedule(s), %d fired, %d skipped, %d sent",
                    now.isoformat(timespec="seconds"),
                    result.schedules,
                    result.fired,
                    result.skipped,
                    result.sent,
                )
            if time.monotonic() - self.last_sweep >= jobs_settings().SWEEP_INTERVAL_SECONDS:
                self.last_sweep = time.monotonic()
                sweep()
        except DatabaseError as exc:
            error = f"{type(exc).__name__}: {exc}".strip()
            self.failures += 1
            if is_database_outage(exc):
                self.database.failed(exc)
                connection.close()
                return None  # no heartbeat to write: the database is what is down
            logger.exception("scheduler tick failed")
            connection.close()  # the next tick starts on a fresh connection
            result = None
        except Exception as exc:
            logger.exception("scheduler tick failed")
            error = f"{type(exc).__name__}: {exc}".strip()
            self.failures += 1
            connection.close()
        else:
            self.failures = 0
            self.database.ok()
        self._heartbeat(now, result, error)
        return result

    def _alert_late(self, now: datetime) -> None:
        """Alert once per schedule and slot when slots wait longer than their grace: no
        scheduler was firing them (this one was down, or all were)."""
        late = [
            s for s in Schedule.objects.late(now) if (s.id, s.next_run_at) not in self.alerted_late
        ]
        if late:
            logger.warning(
                "%d schedule(s) are late: %s", len(late), ", ".join(s.name for s in late[:10])
            )
            alert_schedules_late(schedules=late, now=now)
            self.alerted_late.update((s.id, s.next_run_at) for s in late if s.next_run_at)

    def _heartbeat(self, now: datetime | None, result: TickResult | None, error: str) -> None:
        info: dict[str, Any] = {"ticks": self.ticks, "fired": self.totals.fired}
        if now is not None:
            info["clock"] = now.isoformat()
        if result is not None and result.lateness:
            info["last_lateness_s"] = round(max(result.lateness), 3)
        if error:
            info["failing_since_tick"] = self.ticks
        try:
            write_heartbeat(
                kind=Heartbeat.Kind.SCHEDULER,
                name=self.name,
                started_at=self.started_at,
                info=info,
                last_error=error,
            )
        except DatabaseError as exc:
            if is_database_outage(exc):
                self.database.failed(exc)
            else:
                logger.exception("could not write the scheduler heartbeat")
            connection.close()

"""The long-running scheduler loop behind `manage.py runscheduler` (and `runall`)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from jobs.alerts import alert_schedules_late
from jobs.conf import jobs_settings
from jobs.dispatch import sweep
from jobs.models import Heartbeat, Schedule
from jobs.scheduler import TickResult, next_due_in, tick

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def fake_clock(start: datetime, speed: float) -> Clock:
    """A clock that starts at `start` and runs `speed` times faster than real time (tests)."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=(time.monotonic() - origin) * speed)


class SchedulerLoop:
    """Tick, sweep and heartbeat until stopped; every failure is logged and kept in the heartbeat."""

    def __init__(
        self,
        *,
        clock: Clock = timezone.now,
        max_sleep: float = 1.0,
        name_suffix: str = "",
        stop_event: threading.Event | None = None,
    ) -> None:
        self.clock = clock
        self.max_sleep = max_sleep
        self.name = f"{socket.gethostname()}:{os.getpid()}" + (
            f":{name_suffix}" if name_suffix else ""
        )
        self.stop_event = stop_event or threading.Event()
        self.started_at = timezone.now()
        self.last_sweep = 0.0
        self.totals = TickResult()
        self.ticks = 0
        self.alerted_late: set[tuple[int, datetime]] = set()

    def stop(self, *_: Any) -> None:
        self.stop_event.set()

    def run_forever(self) -> None:
        logger.info("scheduler %s started", self.name)
        try:
            while not self.stop_event.is_set():
                result = self.run_once()
                try:
                    # After a failed tick, wait the full interval instead of retrying in a loop.
                    sleep = next_due_in(self.clock(), self.max_sleep) if result else self.max_sleep
                except Exception:
                    sleep = self.max_sleep
                    connection.close()
                self.stop_event.wait(sleep)
        finally:
            logger.info(
                "scheduler %s stopped after %d ticks: %s", self.name, self.ticks, self.totals
            )
            connection.close()

    def run_once(self) -> TickResult | None:
        now = self.clock()
        error = ""
        result = None
        try:
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
                sweep(timezone.now())
        except Exception as exc:
            logger.exception("scheduler tick failed")
            error = f"{type(exc).__name__}: {exc}"
            connection.close()  # the next tick starts on a fresh connection
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

    def _heartbeat(self, now: datetime, result: TickResult | None, error: str) -> None:
        info: dict[str, Any] = {
            "ticks": self.ticks,
            "fired": self.totals.fired,
            "clock": now.isoformat(),
        }
        if result is not None and result.lateness:
            info["last_lateness_s"] = round(max(result.lateness), 3)
        try:
            Heartbeat.objects.update_or_create(
                kind=Heartbeat.Kind.SCHEDULER,
                name=self.name,
                defaults={"seen_at": timezone.now(), "info": info, "last_error": error[:2000]},
                create_defaults={
                    "seen_at": timezone.now(),
                    "started_at": self.started_at,
                    "info": info,
                    "last_error": error[:2000],
                },
            )
        except Exception:
            logger.exception("could not write the scheduler heartbeat")
            connection.close()

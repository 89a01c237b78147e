"""The tick: turn due slots into recorded runs and send them, exactly once per slot.

`tick(now)` may run in any number of processes at once: due schedules are claimed with
`SELECT ... FOR UPDATE SKIP LOCKED`, so each is planned by one process at a time, and the
UNIQUE(schedule, scheduled_for) constraint makes a second run for a slot impossible anyway.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connection, transaction
from psycopg.types.datetime import TimestamptzLoader

from jobs.conf import jobs_settings
from jobs.db.bulk import update_schedules
from jobs.db.connection import database_now, raw_cursor
from jobs.models import JobRun, Schedule
from jobs.runs import transitions
from jobs.runs.send import send_and_mark
from jobs.scheduling.plan import DueSchedule, NewRun, TickResult, plan_runs

logger = logging.getLogger(__name__)

State = JobRun.State


def tick(
    now: datetime | None = None, *, batch_size: int | None = None, max_batches: int = 1000
) -> TickResult:
    """Fire every schedule due at `now` (the database's clock unless a test passes its own);
    returns what was done once every message is sent."""
    created_at = database_now()
    now = now or created_at
    batch_size = batch_size or jobs_settings().TICK_BATCH_SIZE
    total = TickResult()
    sender = _Sender(threaded=connection.vendor == "postgresql" and not connection.in_atomic_block)
    try:
        for _ in range(max_batches):
            result = _tick_batch(now, created_at, batch_size, sender)
            total.add(result)
            if result.schedules < batch_size:
                break
    finally:
        total.sent = sender.close()
    return total


def _tick_batch(
    now: datetime, created_at: datetime, batch_size: int, sender: _Sender
) -> TickResult:
    result = TickResult()
    with transaction.atomic():
        batch = _claim(now, batch_size)
        if not batch:
            return result
        runs = plan_runs(batch, now, result, created_at=created_at)
        inserted = transitions.record(runs)
        update_schedules(batch)
        to_send = [run for run in runs if run.state == State.PENDING and run.id in inserted]
        transaction.on_commit(partial(sender.submit, to_send))
    result.schedules = len(batch)
    return result


def _claim(now: datetime, batch_size: int) -> list[DueSchedule]:
    """Lock up to `batch_size` due schedules that no other scheduler holds, oldest slot first."""
    if connection.vendor != "postgresql":
        return [
            DueSchedule(*row)
            for row in Schedule.objects.due(now)
            .select_for_update(skip_locked=True)
            .order_by("next_run_at")
            .values_list(*DueSchedule.__slots__)[:batch_size]
        ]
    # The same query as above, with the payload as text: most schedules share a payload ("{}"),
    # so each distinct one is parsed once (Django parses every row's JSON on its own).
    payloads: dict[str, Any] = {}
    batch = []
    with raw_cursor() as cursor:
        # psycopg's own timestamptz loader (in C) instead of Django's wrapper, which calls it and
        # then replaces tzinfo in Python for every value: the connection's TimeZone is UTC
        # already (USE_TZ), so the values are the same instants.
        cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(_CLAIM, [now, batch_size], prepare=True)
        for row in cursor:
            schedule = DueSchedule(*row)
            text = schedule.payload
            if (payload := payloads.get(text)) is None:
                payload = payloads[text] = json.loads(text)
            schedule.payload = payload
            batch.append(schedule)
    return batch


class _Sender:
    """Sends each committed batch to the broker. On PostgreSQL a second thread does it while the
    next batch is planned and written (both mostly wait on I/O); elsewhere it is inline."""

    def __init__(self, *, threaded: bool) -> None:
        self.sent = 0
        self._queue: queue.SimpleQueue[list[NewRun] | None] = queue.SimpleQueue()
        self._thread = (
            threading.Thread(target=self._loop, name="jobs-tick-sender") if threaded else None
        )
        if self._thread is not None:
            self._thread.start()

    def submit(self, runs: list[NewRun]) -> None:
        if self._thread is None:
            self.sent += send_and_mark(runs)
        else:
            self._queue.put(runs)

    def close(self) -> int:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        return self.sent

    def _loop(self) -> None:
        try:
            while (runs := self._queue.get()) is not None:
                try:
                    self.sent += send_and_mark(runs)
                except Exception:
                    # The runs stay pending; the sweep sends them.
                    logger.exception("sending %d run(s) failed", len(runs))
        finally:
            connection.close()


_CLAIM = f"""
SELECT {", ".join("payload::text" if name == "payload" else name for name in DueSchedule.__slots__)}
FROM jobs_schedule
WHERE enabled AND next_run_at <= %s
ORDER BY next_run_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 - column names, no values


def next_due_in(now: datetime, cap: float) -> float:
    """Seconds until the next enabled schedule is due, at most `cap` (for the loop's sleep)."""
    nxt = (
        Schedule.objects.filter(enabled=True, next_run_at__isnull=False)
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )
    if nxt is None:
        return cap
    return max(0.0, min(cap, (nxt - now).total_seconds()))


def cron_tick() -> None:
    """Entry point for django-crontab (`CRONJOBS`): one tick and one sweep, failures logged
    and recorded in the heartbeat because django-crontab swallows exceptions."""
    from jobs.scheduling.loop import SchedulerLoop

    SchedulerLoop(name_suffix="cron").run_once()

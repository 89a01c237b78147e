"""Mark sent runs `queued` in batches, from a background thread, off the request's path.

`jobs.enqueue()` sends a run when the caller's transaction commits. Marking it `queued` right
there would be a second commit on every web request that enqueues; instead the run ids are
handed to one thread per process, which marks the ids gathered from all threads in one UPDATE
a few milliseconds later. Nothing depends on the mark being prompt: the worker's claim accepts a
`pending` run, and a mark lost in a crash only means the scheduler's sweep re-sends the run
after JOBS_PENDING_RESEND_AFTER_SECONDS, a duplicate message that the claim drops.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from jobs.bulk import mark_queued
from jobs.conf import jobs_settings

logger = logging.getLogger(__name__)

# Long enough to gather the marks of concurrent requests into one statement, short enough that
# the admin shows `queued` at once.
GATHER_SECONDS = 0.02


class QueuedMarks:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[uuid.UUID] = []
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, run_ids: Iterable[uuid.UUID]) -> None:
        """Have these sent runs marked `queued`: soon (background), or now (see the setting)."""
        if connection.vendor != "postgresql" or not jobs_settings().MARK_SENT_IN_BACKGROUND:
            # SQLite has one writer at a time: a second writing thread would only wait.
            mark_queued(list(run_ids), timezone.now())
            return
        with self._lock:
            self._ids.extend(run_ids)
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._loop, name="jobs-queued-marks", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> int:
        """Mark what is waiting now, on the calling thread's connection; the rows marked."""
        with self._lock:
            ids, self._ids = self._ids, []
        return mark_queued(ids, timezone.now()) if ids else 0

    def stop(self) -> None:
        """Write what is waiting and end the thread, closing its connection (at exit, and for
        tests, whose database cannot be dropped while the thread holds a connection)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            while not self._stopping:
                self._wake.wait()
                self._wake.clear()
                if not self._stopping:
                    threading.Event().wait(GATHER_SECONDS)
                try:
                    self.flush()
                except Exception:
                    # The runs stay `pending`: the sweep re-sends them, the claim drops the copy.
                    logger.warning("could not mark sent runs queued", exc_info=True)
                    connection.close()
        finally:
            connection.close()


queued_marks = QueuedMarks()
# A forked child (a gunicorn worker) inherits the ids and the lock but not the thread.
os.register_at_fork(after_in_child=queued_marks._reset)
atexit.register(queued_marks.stop)

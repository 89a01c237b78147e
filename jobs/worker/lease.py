"""The lease keeper: one thread per worker process that keeps its runs' leases alive."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from jobs.health import is_database_outage, outage, write_heartbeat
from jobs.worker.claim import Claim, worker_id

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """One thread per worker process: renews the leases of all its running runs in one UPDATE
    every third of a lease, ends attempts stuck past their time limit plus a grace, and writes
    the process's heartbeat for the admin."""

    HEARTBEAT_EVERY_SECONDS = 10.0

    def __init__(
        self,
        lease_seconds: int,
        *,
        hung_grace_seconds: int = 30,
        on_hung: Callable[[Claim], None] | None = None,
    ) -> None:
        self.lease_seconds = lease_seconds
        self.hung_grace_seconds = hung_grace_seconds
        self.on_hung = on_hung
        self.stuck: list[Claim] = []
        self._claims: dict[uuid.UUID, Claim] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = timezone.now()
        self._last_heartbeat = 0.0
        self._database = outage("database")

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="jobs-lease-keeper", daemon=True
                )
                self._thread.start()

    def add(self, claim: Claim, *, time_limit_seconds: float | None = None) -> None:
        """Keep `claim`'s lease alive; past `time_limit_seconds` plus the grace it is ended."""
        if time_limit_seconds:
            claim.deadline = time.monotonic() + time_limit_seconds + self.hung_grace_seconds
            claim.time_limit_seconds = time_limit_seconds
        with self._lock:
            self._claims[claim.run_id] = claim
        self.start()

    def remove(self, claim: Claim) -> None:
        with self._lock:
            if self._claims.get(claim.run_id) is claim:
                del self._claims[claim.run_id]

    def active(self) -> int:
        """Runs this process is executing whose lease it still renews."""
        with self._lock:
            return len(self._claims)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        try:
            while True:
                wait = interval
                try:
                    answered = self.renew()
                    if time.monotonic() - self._last_heartbeat >= self.HEARTBEAT_EVERY_SECONDS:
                        self.heartbeat()
                        answered = True
                    if answered:  # an idle round proves nothing about the database
                        self._database.ok()
                except DatabaseError as exc:
                    if is_database_outage(exc):
                        # Renew as soon as the database answers again: the leases run out.
                        wait = min(interval, self._database.failed(exc))
                    else:
                        logger.exception("lease renewal failed; trying again in %.1f s", wait)
                    connection.close()
                if self._stop.wait(wait):
                    break
        finally:
            connection.close()

    def heartbeat(self) -> None:
        from jobs.models import Heartbeat

        self._last_heartbeat = time.monotonic()
        info: dict[str, Any] = {"running": self.active()}
        if self.stuck:
            info["stuck_threads"] = len(self.stuck)
        write_heartbeat(
            kind=Heartbeat.Kind.WORKER, name=worker_id(), started_at=self._started_at, info=info
        )

    def renew(self) -> bool:
        """Renew the leases of the runs in hand; False if there were none (no statement ran)."""
        from jobs.runs import transitions

        with self._lock:
            claims = list(self._claims.values())
        if not claims:
            return False
        now = time.monotonic()
        for claim in claims:
            if claim.deadline is not None and now > claim.deadline:
                self._end_hung(claim)
        alive = [c for c in claims if not c.abandoned]
        cancelled = transitions.renew(
            run_ids=[c.run_id for c in alive], lease_seconds=self.lease_seconds
        )
        for claim in alive:
            if claim.run_id in cancelled:
                claim.cancel_requested = True
        return True

    def _end_hung(self, claim: Claim) -> None:
        from jobs.runs import transitions

        limit = claim.time_limit_seconds or 0
        error = (
            f"Did not return from a blocking call: still running {limit + self.hung_grace_seconds:g} s "
            f"after it started, past its time limit of {limit:g} s plus a grace of "
            f"{self.hung_grace_seconds} s. A time limit cannot interrupt a call that blocks "
            "outside Python (a socket read without a timeout, a lock); give such calls a "
            "timeout. The worker process holding the stuck thread is recycled."
        )
        ended = transitions.end_hung(run_id=claim.run_id, attempt=claim.attempt, error=error)
        claim.abandoned = True
        self.remove(claim)
        self.stuck.append(claim)
        logger.error(
            "run %s attempt %s (%s) is stuck in a blocking call past its time limit; %s",
            claim.run_id,
            claim.attempt,
            claim.job,
            "ended as dead" if ended else "it had already ended",
        )
        if self.on_hung is not None:
            self.on_hung(claim)

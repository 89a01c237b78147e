"""What a worker thread knows about the run it executes: the claim, progress, cancellation.

Every write is fenced on the attempt number this worker claimed, so a worker whose lease
expired and whose run was taken over can neither record an outcome nor report progress.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from jobs.db import db_datetime, db_uuid, execute, no_flush_wait, update_returning
from jobs.errors import Cancelled, LeaseLost

logger = logging.getLogger(__name__)

_local = threading.local()


def worker_id() -> str:
    """host:pid of this process (computed on use: Dramatiq forks its worker processes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Claim:
    """This thread owns attempt `attempt` of run `run_id` until its lease is lost."""

    run_id: uuid.UUID
    attempt: int
    job: str
    cancel_requested: bool = False
    recorded: bool = False
    retry_eta_ms: int | None = None

    def _mine(self) -> Any:
        from jobs.models import JobRun

        return JobRun.objects.filter(
            id=self.run_id, attempts=self.attempt, state=JobRun.State.RUNNING
        )

    def progress(self, percent: int, message: str = "") -> None:
        """Record progress (0-100) and raise `Cancelled` if someone asked to cancel the run."""
        percent = max(0, min(100, int(percent)))
        if connection.in_atomic_block:
            # Inside an atomic job the write would stay invisible until the job commits and
            # would lock the run row (blocking lease renewal and the sweep); only check for
            # cancellation.
            if self._mine().filter(cancel_requested=True).exists():
                self.cancel_requested = True
            self.check_cancelled()
            return
        updated = (
            self._mine()
            .filter(cancel_requested=False)
            .update(progress=percent, progress_message=message[:200])
        )
        if updated != 1:
            if self._mine().exists():
                self.cancel_requested = True
                raise Cancelled(f"run {self.run_id} was cancelled")
            raise LeaseLost(f"run {self.run_id} attempt {self.attempt} is no longer ours")
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the lease heartbeat saw a cancellation request (no query)."""
        if self.cancel_requested:
            raise Cancelled(f"run {self.run_id} was cancelled")

    def record_success(self, result: Any) -> None:
        """Mark the run succeeded; inside an atomic job this commits with the job's own writes."""
        # A plain statement on the hot path (see run_claim); fenced on the claimed attempt.
        updated = execute(
            "UPDATE jobs_jobrun SET state = 'succeeded', finished_at = %s, result = %s, "  # noqa: S608 - a constant fragment, values bound
            f"progress = 100, lease_expires_at = NULL {no_flush_wait()} "
            "WHERE id = %s AND attempts = %s AND state = 'running'",
            [
                db_datetime(timezone.now()),
                json.dumps(result, cls=DjangoJSONEncoder),
                db_uuid(self.run_id),
                self.attempt,
            ],
        )
        if updated != 1:
            raise LeaseLost(
                f"run {self.run_id} attempt {self.attempt} was taken over or cancelled; "
                "its outcome is not recorded"
            )
        self.recorded = True


def current_claim() -> Claim | None:
    return getattr(_local, "claim", None)


def set_claim(claim: Claim | None) -> None:
    _local.claim = claim


def current_run() -> Claim:
    """The run the calling job is executing: `jobs.current_run().progress(40, "Rendering")`."""
    claim = current_claim()
    if claim is None:
        raise RuntimeError("jobs.current_run() is only available inside a running job.")
    return claim


class LeaseKeeper:
    """One thread per worker process: renews the leases of all its running runs in one UPDATE
    every third of a lease, and writes the process's heartbeat for the admin."""

    HEARTBEAT_EVERY_SECONDS = 10.0

    def __init__(self, lease_seconds: int) -> None:
        self.lease_seconds = lease_seconds
        self._claims: dict[uuid.UUID, Claim] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = timezone.now()
        self._last_heartbeat = 0.0

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="jobs-lease-keeper", daemon=True
                )
                self._thread.start()

    def add(self, claim: Claim) -> None:
        with self._lock:
            self._claims[claim.run_id] = claim
        self.start()

    def remove(self, claim: Claim) -> None:
        with self._lock:
            if self._claims.get(claim.run_id) is claim:
                del self._claims[claim.run_id]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = max(self.lease_seconds / 3, 0.2)
        try:
            while True:
                try:
                    self.renew()
                    if time.monotonic() - self._last_heartbeat >= self.HEARTBEAT_EVERY_SECONDS:
                        self.heartbeat()
                except Exception:
                    logger.exception("lease renewal failed; trying again in %.1f s", interval)
                    connection.close()
                if self._stop.wait(interval):
                    break
        finally:
            connection.close()

    def heartbeat(self) -> None:
        from jobs.models import Heartbeat

        self._last_heartbeat = time.monotonic()
        now = timezone.now()
        with self._lock:
            running = len(self._claims)
        Heartbeat.objects.update_or_create(
            kind=Heartbeat.Kind.WORKER,
            name=worker_id(),
            defaults={"seen_at": now, "info": {"running": running}},
            create_defaults={
                "seen_at": now,
                "started_at": self._started_at,
                "info": {"running": running},
            },
        )

    def renew(self) -> None:
        from jobs.models import JobRun

        with self._lock:
            claims = list(self._claims.values())
        if not claims:
            return
        ids = [c.run_id for c in claims]
        expires = timezone.now() + timedelta(seconds=self.lease_seconds)
        with transaction.atomic():
            # SKIP LOCKED: a locked row is being finished by its own job's transaction right
            # now; waiting for it would delay every other lease behind it.
            lockable = (
                JobRun.objects.filter(id__in=ids, state=JobRun.State.RUNNING)
                .select_for_update(skip_locked=True)
                .values("id")
            )
            rows = update_returning(
                JobRun.objects.filter(id__in=lockable),
                ["id", "cancel_requested"],
                lease_expires_at=expires,
            )
        cancelled = {run_id for run_id, flag in rows if flag}
        for claim in claims:
            if claim.run_id in cancelled:
                claim.cancel_requested = True

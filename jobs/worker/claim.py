"""What a worker thread knows about the run it executes: the claim, progress, cancellation.

Every write is fenced on the attempt number this worker claimed, so a worker whose lease
expired and whose run was taken over can neither record an outcome nor report progress.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection

from jobs.errors import Cancelled, LeaseLost
from jobs.health import process_name

_local = threading.local()


worker_id = process_name


@dataclass
class Claim:
    """This thread owns attempt `attempt` of run `run_id` until its lease is lost."""

    run_id: uuid.UUID
    attempt: int
    job: str
    cancel_requested: bool = False
    recorded: bool = False
    retry_eta_ms: int | None = None
    deadline: float | None = None
    """time.monotonic() after which the attempt counts as hung (time limit + grace)."""
    time_limit_seconds: float | None = None
    abandoned: bool = False
    """Ended as hung: its lease is no longer renewed and its writes are fenced off."""

    def progress(self, percent: int, message: str = "") -> None:
        """Record progress (0-100) and raise `Cancelled` if someone asked to cancel the run."""
        from jobs.models import JobRun
        from jobs.runs import transitions

        percent = max(0, min(100, int(percent)))
        mine = JobRun.objects.filter(
            id=self.run_id, attempts=self.attempt, state=JobRun.State.RUNNING
        )
        if connection.in_atomic_block:
            # Inside an atomic job the write would stay invisible until the job commits and
            # would lock the run row (blocking lease renewal and the sweep); only check for
            # cancellation.
            if mine.filter(cancel_requested=True).exists():
                self.cancel_requested = True
            self.check_cancelled()
            return
        if not transitions.report_progress(
            run_id=self.run_id, attempt=self.attempt, percent=percent, message=message
        ):
            if mine.exists():
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
        from jobs.runs import transitions

        if not transitions.succeed(run_id=self.run_id, attempt=self.attempt, result=result):
            raise LeaseLost(
                f"run {self.run_id} attempt {self.attempt} was taken over, cancelled or ended "
                "as hung; its outcome is not recorded"
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

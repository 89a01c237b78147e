"""Run state transitions: each one conditional UPDATE, never read-then-write.

pending --sent--> queued --claimed--> running --ok--> succeeded
                                         |--error, retries left--> retrying --> running
                                         |--error, none left-----> dead
pending/queued/retrying --cancel--> cancelled      running --cancel--> cancelled
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.utils import timezone

from jobs.conf import jobs_settings
from jobs.db import db_datetime, db_uuid, execute_returning, no_flush_wait
from jobs.models import JobRun
from jobs.runtime import Claim

logger = logging.getLogger(__name__)

State = JobRun.State


def run_claim(*, run_id: uuid.UUID, job: str, worker: str) -> tuple[Claim | None, str]:
    """Take ownership of a run for one attempt: `queued|retrying|pending -> running`, or take
    over a `running` run whose lease expired. Returns (claim, "") or (None, why not)."""
    now = timezone.now()
    lease = now + timedelta(seconds=jobs_settings().LEASE_SECONDS)
    # One plain statement, not the ORM: this runs for every message a worker receives, and
    # compiling the query cost more than executing it. `pending` is claimable too: the worker
    # can receive a message before the sender has marked the run queued.
    rows = execute_returning(
        "UPDATE jobs_jobrun SET state = 'running', attempts = attempts + 1, started_at = %s, "  # noqa: S608 - a constant fragment, values bound
        f"finished_at = NULL, lease_expires_at = %s, worker = %s {no_flush_wait()} "
        "WHERE id = %s AND NOT cancel_requested AND (state IN ('pending', 'queued', 'retrying') "
        "OR (state = 'running' AND lease_expires_at < %s)) RETURNING attempts",
        [db_datetime(now), db_datetime(lease), worker[:200], db_uuid(run_id), db_datetime(now)],
    )
    if rows:
        return Claim(run_id=run_id, attempt=rows[0][0], job=job), ""
    return None, _why_not_claimed(run_id, now)


def _why_not_claimed(run_id: uuid.UUID, now: datetime) -> str:
    run = (
        JobRun.objects.filter(id=run_id)
        .only("state", "cancel_requested", "worker", "attempts")
        .first()
    )
    if run is None:
        return "no such run (never committed, or pruned)"
    if run.cancel_requested and run.state in JobRun.CANCELLABLE_STATES:
        run_cancel_unstarted(run_id=run_id)
        return "the run was cancelled before it started"
    if run.state == State.RUNNING:
        return f"duplicate delivery: attempt {run.attempts} is running on {run.worker} with a live lease"
    return f"duplicate delivery: the run is already {run.state}"


def run_record_failure(
    *,
    claim: Claim,
    error: str,
    traceback: str,
    exception_class: str = "builtins.Exception",
    cancelled: bool = False,
    retry_at: datetime | None = None,
) -> str | None:
    """Record a failed attempt; returns the new state, or None if the run is no longer ours."""
    conf = jobs_settings()
    now = timezone.now()
    mine = JobRun.objects.filter(id=claim.run_id, attempts=claim.attempt, state=State.RUNNING)
    run = mine.only("history", "worker", "started_at").first()
    if run is None:
        logger.warning(
            "run %s attempt %s: outcome not recorded, the run is no longer ours",
            claim.run_id,
            claim.attempt,
        )
        return None
    entry = {
        "attempt": claim.attempt,
        "exception": exception_class,
        "worker": run.worker,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": now.isoformat(),
        "error": error[:500],
    }
    if cancelled:
        state, extra = State.CANCELLED, {"finished_at": now, "reason": "cancelled while running"}
    elif retry_at is not None:
        state, extra = State.RETRYING, {"run_after": retry_at}
    else:
        state, extra = State.DEAD, {"finished_at": now}
    updated = mine.update(
        state=state,
        error=truncate(error, conf.ERROR_MAX_CHARS),
        traceback=truncate(traceback, conf.TRACEBACK_MAX_CHARS),
        lease_expires_at=None,
        history=[*run.history, entry],
        **extra,
    )
    if updated != 1:
        return None
    if state == State.DEAD:
        from jobs.alerts import alert_run_dead

        alert_run_dead(run_id=claim.run_id)
    return str(state)


def run_skip_unclaimed(*, run_id: uuid.UUID, reason: str) -> bool:
    return (
        JobRun.objects.filter(id=run_id, state__in=JobRun.CANCELLABLE_STATES).update(
            state=State.SKIPPED, reason=reason, finished_at=timezone.now()
        )
        == 1
    )


def run_cancel_unstarted(*, run_id: uuid.UUID, reason: str = "cancelled before it started") -> bool:
    return (
        JobRun.objects.filter(id=run_id, state__in=JobRun.CANCELLABLE_STATES).update(
            state=State.CANCELLED, cancel_requested=True, reason=reason, finished_at=timezone.now()
        )
        == 1
    )


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail (where the exception is) of a long text."""
    if len(text) <= limit:
        return text
    half = limit // 2 - 20
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"

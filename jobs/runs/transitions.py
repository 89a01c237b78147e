"""Every state change of a run, each one conditional statement, decided on the database's clock.

```
pending --mark_sent--> queued --claim--> running --succeed--> succeeded
   ^                     |  ^              |--fail (retries left)--> retrying --claim--> running
   |                     |  +--mark_resent (message lost)            |--fail (none left) / end_hung--> dead
   +--release_expired----(lease expired; dead after JOBS_MAX_WORKER_LOSSES)
pending/queued/retrying --cancel_unstarted / skip_unclaimed--> cancelled / skipped
pending --fail_unsent (a bug in the send path)--> dead
running --request_cancel--> (cancel_requested) --fail(cancelled)--> cancelled
```

Rules every function here keeps:
- One statement, conditioned on the state it leaves (and, after a claim, on the attempt number
  the worker claimed), so two processes racing for a run cannot both win, and a worker whose run
  was taken over can write nothing.
- Times come from the database (`statement_timestamp()` on PostgreSQL): leases, takeovers and
  "not before" are compared on one clock, whatever the hosts' clocks say.
- Entering `dead` alerts (jobs.alerts), wherever it happens.

`docs/worker.md` has the table of states: who enters and leaves each, and the repair that ends
it if its owner dies. A new transition belongs here and there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models.functions import Now

from jobs.conf import jobs_settings
from jobs.db.bulk import insert_runs
from jobs.db.connection import db_uuid, execute, execute_returning, no_flush_wait
from jobs.models import JobRun

State = JobRun.State


# -- SQL --------------------------------------------------------------------------------------
# Statements are written once with {now}, {lease} ... placeholders and completed per backend:
# PostgreSQL in production, SQLite for the embedded default (one process, so its clock is the
# database's). `%%` is a literal percent sign on both drivers.

_DIALECTS: dict[str, dict[str, str]] = {
    "postgresql": {
        "now": "statement_timestamp()",
        "lease": "statement_timestamp() + make_interval(secs => %s)",
        "text": "%s::text",
        "entry": "jsonb_build_array(jsonb_build_object({fields}))",
        "append": "history || {entry}",
        "skip_locked": (
            "AND id = (SELECT id FROM jobs_jobrun WHERE id = %s FOR UPDATE SKIP LOCKED)"
        ),
        "lockable": "FOR UPDATE SKIP LOCKED",
        "str": "::text",
    },
    "sqlite": {
        "now": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')",
        "lease": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '+' || %s || ' seconds')",
        "text": "%s",
        "entry": "json_object({fields})",
        "append": "json_insert(history, '$[#]', {entry})",
        # One process, no row locks: nothing else can be committing the row.
        "skip_locked": "AND id = %s",
        "lockable": "",
        "str": "",
    },
}


@cache
def _sql(vendor: str, template: str) -> str:
    d = _DIALECTS[vendor]
    entry = d["entry"].format(
        fields=(
            "'attempt', attempts, 'worker', worker, 'started_at', started_at, "
            f"'finished_at', {d['now']}, 'exception', {d['text']}, 'error', {d['text']}"
        )
    )
    return template.format(
        now=d["now"],
        lease=d["lease"],
        append_history=d["append"].format(entry=entry),
        skip_locked=d["skip_locked"],
        lockable=d["lockable"],
        str=d["str"],
        # Filled in per call: they depend on the connection's state and the ids.
        no_flush_wait="{no_flush_wait}",
        where="{where}",
    )


def _statement(template: str) -> str:
    return _sql(connection.vendor, template)


_CLAIM = """
UPDATE jobs_jobrun
SET state = 'running', attempts = attempts + 1, started_at = {now}, finished_at = NULL,
    lease_expires_at = {lease}, worker = %s {no_flush_wait}
WHERE id = %s AND NOT cancel_requested
  AND (run_after IS NULL OR run_after <= {now})
  AND (state IN ('pending', 'queued', 'retrying')
       OR (state = 'running' AND lease_expires_at < {now}))
RETURNING attempts
"""

_SUCCEED = """
UPDATE jobs_jobrun
SET state = 'succeeded', finished_at = {now}, result = %s, progress = 100,
    lease_expires_at = NULL {no_flush_wait}
WHERE id = %s AND attempts = %s AND state = 'running'
"""

_FAIL = """
UPDATE jobs_jobrun
SET state = %s, error = %s, traceback = %s, lease_expires_at = NULL,
    history = {append_history},
    run_after = CASE WHEN %s = 'retrying' THEN %s ELSE run_after END,
    finished_at = CASE WHEN %s = 'retrying' THEN NULL ELSE {now} END,
    reason = CASE WHEN %s = 'cancelled' THEN 'cancelled while running' ELSE reason END
WHERE id = %s AND attempts = %s AND state = 'running'
"""

_END_HUNG = """
UPDATE jobs_jobrun
SET state = 'dead', lease_expires_at = NULL, finished_at = {now},
    error = %s || CASE WHEN progress_message = '' THEN '' ELSE
        ' Last progress: ' || progress{str} || ' %%, "' || progress_message || '".' END,
    history = {append_history}
WHERE id = %s AND attempts = %s AND state = 'running'
"""

_RELEASE_EXPIRED = """
UPDATE jobs_jobrun
SET state = CASE WHEN worker_losses + 1 >= %s THEN 'dead' ELSE 'pending' END,
    finished_at = CASE WHEN worker_losses + 1 >= %s THEN {now} ELSE NULL END,
    error = CASE WHEN worker_losses + 1 >= %s
        THEN 'worker lost ' || (worker_losses + 1){str} || ' times: each attempt''s process was '
             || 'killed or stopped responding (out of memory? a crash in native code?); '
             || 'not handed out again'
        ELSE error END,
    worker_losses = worker_losses + 1, lease_expires_at = NULL,
    history = {append_history}
WHERE id = %s AND attempts = %s AND state = 'running' AND lease_expires_at < {now}
  {skip_locked}
RETURNING state
"""

_PROGRESS = """
UPDATE jobs_jobrun SET progress = %s, progress_message = %s, lease_expires_at = {lease}
WHERE id = %s AND attempts = %s AND state = 'running' AND NOT cancel_requested
"""

_RENEW = """
UPDATE jobs_jobrun SET lease_expires_at = {lease}
WHERE id IN (SELECT id FROM jobs_jobrun WHERE {where} AND state = 'running' {lockable})
RETURNING id, cancel_requested
"""

_FAIL_UNSENT = """
UPDATE jobs_jobrun SET state = 'dead', finished_at = {now}, error = %s
WHERE {where} AND state = 'pending'
RETURNING id
"""

_MARK_SENT = """
UPDATE jobs_jobrun SET state = 'queued', enqueued_at = {now} {no_flush_wait}
WHERE {where} AND state = 'pending'
"""


def _ids_where(run_ids: Sequence[uuid.UUID]) -> tuple[str, Any]:
    """A WHERE on primary keys, and its one parameter. One id: `id = %s` pins the primary key
    (with `= ANY(...)` a plan made while statistics said "few pending runs", on a new
    deployment, scanned every entry of the pending-runs index instead). Several on PostgreSQL:
    one comma-separated string, cheaper to adapt than a list of UUIDs."""
    if len(run_ids) == 1:
        return "id = %s", db_uuid(run_ids[0])
    if connection.vendor == "postgresql":
        return "id = ANY(string_to_array(%s, ',')::uuid[])", ",".join(map(str, run_ids))
    # SQLite: JSON is its array type.
    return "id IN (SELECT value FROM json_each(%s))", json.dumps([i.hex for i in run_ids])


def _for_ids(template: str, run_ids: Sequence[uuid.UUID]) -> tuple[str, Any]:
    """A statement on these runs for this backend, and the parameter of its WHERE on ids."""
    where, ids = _ids_where(run_ids)
    return _statement(template).replace("{where}", where), ids


# -- recorded and sent ------------------------------------------------------------------------


def record(runs: Sequence[Any]) -> set[uuid.UUID]:
    """(nothing) -> pending or skipped: insert runs, skipping any whose slot or key already has
    one (the UNIQUE constraints decide); the ids that were inserted."""
    return insert_runs(runs)


def mark_sent(run_ids: Sequence[uuid.UUID]) -> int:
    """pending -> queued, for runs whose messages the broker has accepted."""
    if not run_ids:
        return 0
    sql, ids = _for_ids(_MARK_SENT, run_ids)
    # Not prepared for a batch: a generic plan for `id = ANY(...)` walks the pending-runs index
    # (every pending run of the tick) instead of the primary key, which doubled the tick's time
    # for 10,000 runs (bench/scheduler.py: 14.7 s against 7.0 s).
    return execute(
        sql.replace("{no_flush_wait}", no_flush_wait()), [ids], prepare=len(run_ids) == 1
    )


def mark_resent(run_ids: Sequence[uuid.UUID]) -> int:
    """queued -> queued with a new enqueued_at, for runs whose lost message was sent again: the
    next repair of the same run waits a full period."""
    return JobRun.objects.filter(id__in=list(run_ids), state=State.QUEUED).update(enqueued_at=Now())


def fail_unsent(run_ids: Sequence[uuid.UUID], *, error: str) -> int:
    """pending -> dead: the send path raised something that is not a broker outage (a bug, a
    payload the encoder refuses). Re-sending would fail the same way for ever."""
    if not run_ids:
        return 0
    sql, ids = _for_ids(_FAIL_UNSENT, run_ids)
    error = truncate(error, jobs_settings().ERROR_MAX_CHARS)
    rows = execute_returning(sql, [error, ids], prepare=len(run_ids) == 1)
    _alert_dead([_run_id(row[0]) for row in rows])
    return len(rows)


# -- the worker's claim and outcome -----------------------------------------------------------


def claim(*, run_id: uuid.UUID, worker: str, lease_seconds: int) -> int | None:
    """pending|queued|retrying -> running, attempts + 1, with a lease; or take over a `running`
    run whose lease expired. Refused for a cancelled run and before the run's `run_after`.
    Returns the claimed attempt number, or None."""
    sql = _statement(_CLAIM).replace("{no_flush_wait}", no_flush_wait())
    rows = execute_returning(sql, [lease_seconds, worker[:200], db_uuid(run_id)])
    return int(rows[0][0]) if rows else None


def renew(*, run_ids: Sequence[uuid.UUID], lease_seconds: int) -> set[uuid.UUID]:
    """running -> running with a new lease, for the runs of one worker process; returns those
    whose cancellation was requested. Rows locked by their own job's commit are skipped (they
    are alive; the next renewal gets them)."""
    if not run_ids:
        return set()
    sql, ids = _for_ids(_RENEW, run_ids)
    # A batch is planned per call, as mark_sent's (a generic plan of `= ANY(...)` may walk an
    # index instead of the primary key).
    rows = execute_returning(sql, [lease_seconds, ids], prepare=len(run_ids) == 1)
    return {_run_id(run_id) for run_id, flag in rows if flag}


def _run_id(value: Any) -> uuid.UUID:
    """A run id as a statement returned it (PostgreSQL: a UUID; SQLite: 32 hex characters)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def report_progress(*, run_id: uuid.UUID, attempt: int, percent: int, message: str) -> bool:
    """running -> running with new progress and a new lease; False if the run was cancelled or
    is not ours. Renewing here too matters: the lease keeper skips a row that is locked, and a
    job reporting progress as often as the keeper renews could lock it at every renewal."""
    sql = _statement(_PROGRESS)
    lease = jobs_settings().LEASE_SECONDS
    return execute(sql, [percent, message[:200], lease, db_uuid(run_id), attempt]) == 1


def succeed(*, run_id: uuid.UUID, attempt: int, result: Any) -> bool:
    """running -> succeeded, fenced on the attempt; inside an atomic job it commits with the
    job's own writes."""
    sql = _statement(_SUCCEED).replace("{no_flush_wait}", no_flush_wait())
    result_json = json.dumps(result, cls=DjangoJSONEncoder)
    return execute(sql, [result_json, db_uuid(run_id), attempt]) == 1


def fail(
    *,
    run_id: uuid.UUID,
    attempt: int,
    state: str,
    error: str,
    traceback: str,
    exception_class: str,
    retry_at: datetime | None = None,
) -> bool:
    """running -> retrying (due at `retry_at`), dead or cancelled, fenced on the attempt; the
    attempt is appended to the run's history."""
    if state not in (State.RETRYING, State.DEAD, State.CANCELLED):
        raise ValueError(f"a failed attempt cannot make a run {state!r}")
    conf = jobs_settings()
    params = [
        str(state),
        truncate(error, conf.ERROR_MAX_CHARS),
        truncate(traceback, conf.TRACEBACK_MAX_CHARS),
        exception_class,
        error[:500],
        str(state),
        connection.ops.adapt_datetimefield_value(retry_at),
        str(state),
        str(state),
        db_uuid(run_id),
        attempt,
    ]
    changed = execute(_statement(_FAIL), params) == 1
    if changed and state == State.DEAD:
        _alert_dead([run_id])
    return changed


def end_hung(*, run_id: uuid.UUID, attempt: int, error: str) -> bool:
    """running -> dead for an attempt still running past its time limit plus a grace (a call
    that never returns): its lease is no longer renewed and its later writes are fenced off."""
    params = [error, "jobs.errors.HungJob", error[:500], db_uuid(run_id), attempt]
    changed = execute(_statement(_END_HUNG), params) == 1
    if changed:
        _alert_dead([run_id])
    return changed


# -- repairs (the scheduler's sweep) ----------------------------------------------------------


def release_expired(*, run_id: uuid.UUID, attempt: int) -> str | None:
    """running (lease expired) -> pending, to be re-sent and taken over; dead once the run has
    lost JOBS_MAX_WORKER_LOSSES attempts with their workers. None if a renewal won, the row is
    locked (its job is committing right now: it is alive) or the attempt is not the current one."""
    max_losses = jobs_settings().MAX_WORKER_LOSSES
    error = "worker lost: its lease expired (process killed or stuck)"
    params = [max_losses, max_losses, max_losses, "jobs.errors.WorkerLost", error]
    params += [db_uuid(run_id), attempt, db_uuid(run_id)]
    rows = execute_returning(_statement(_RELEASE_EXPIRED), params)
    if not rows:
        return None
    state = str(rows[0][0])
    if state == State.DEAD:
        _alert_dead([run_id])
    return state


def resend_retry(run_ids: Sequence[uuid.UUID]) -> int:
    """retrying -> retrying, due now: its delayed message was lost and has been sent again."""
    return JobRun.objects.filter(id__in=list(run_ids), state=State.RETRYING).update(run_after=Now())


# -- cancel and skip --------------------------------------------------------------------------


def cancel_unstarted(*, run_id: uuid.UUID, reason: str = "cancelled before it started") -> bool:
    """pending|queued|retrying -> cancelled (the worker drops its message)."""
    return (
        JobRun.objects.filter(id=run_id, state__in=JobRun.CANCELLABLE_STATES).update(
            state=State.CANCELLED, cancel_requested=True, reason=reason, finished_at=Now()
        )
        == 1
    )


def request_cancel(*, run_id: uuid.UUID, reason: str) -> bool:
    """running: ask the job to stop; it raises jobs.Cancelled at its next progress() call and
    the worker records `cancelled` (fail)."""
    return (
        JobRun.objects.filter(id=run_id, state=State.RUNNING).update(
            cancel_requested=True, reason=reason
        )
        == 1
    )


def skip_unclaimed(*, run_id: uuid.UUID, reason: str) -> bool:
    """pending|queued|retrying -> skipped (another middleware refused the message: age limit)."""
    return (
        JobRun.objects.filter(id=run_id, state__in=JobRun.CANCELLABLE_STATES).update(
            state=State.SKIPPED, reason=reason, finished_at=Now()
        )
        == 1
    )


# -- helpers ----------------------------------------------------------------------------------


def _alert_dead(run_ids: Sequence[uuid.UUID]) -> None:
    from jobs.alerts import alert_run_dead

    for run_id in run_ids:
        alert_run_dead(run_id=run_id)


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail (where the exception is) of a long text."""
    if len(text) <= limit:
        return text
    half = limit // 2 - 20
    return f"{text[:half]}\n... [{len(text) - 2 * half} characters cut] ...\n{text[-half:]}"

"""Hand recorded runs to the broker: build their messages, send them, mark them sent.

A run's UUID is its Dramatiq message id, so every re-send of the same run is recognisable
and a duplicate delivery is dropped by the worker's claim.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.common import current_millis

from jobs.broker.bulk_send import enqueue_many
from jobs.broker.introspection import BROKER_ERRORS
from jobs.db.connection import database_now
from jobs.health import outage
from jobs.models import JobRun
from jobs.runs import transitions

logger = logging.getLogger(__name__)

SEND_FIELDS = (
    "id",
    "job",
    "payload",
    "queue",
    "max_retries",
    "time_limit_seconds",
    "attempts",
    "run_after",
)


def build_message(run: Any, now: datetime | None) -> tuple[dramatiq.Message[Any], int | None]:
    """The run's message, and its delay until `run.run_after` by `now` (the database's clock;
    None is fine for runs without a run_after)."""
    options: dict[str, Any] = {
        "max_retries": run.max_retries,
        # Retries counts retries already made; a re-sent run carries its attempts so far.
        "retries": run.attempts,
    }
    if run.time_limit_seconds:
        options["time_limit"] = run.time_limit_seconds * 1000
    delay = None
    if run.run_after and now is not None and run.run_after > now:
        delay = int((run.run_after - now).total_seconds() * 1000)
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=run.queue,
        actor_name=run.job,
        args=(),
        kwargs=run.payload,
        options=options,
        message_id=str(run.id),
        message_timestamp=current_millis(),
    )
    return message, delay


def send_runs(run_ids: Iterable[uuid.UUID], *, only_pending: bool = True) -> int:
    """Send these runs (those still pending, unless told otherwise) and mark them queued.

    Called after the transaction that recorded them has committed. A broker outage is logged,
    not raised: the runs stay `pending` and the scheduler's sweep sends them later.
    """
    ids = list(run_ids)
    if not ids:
        return 0
    query = JobRun.objects.filter(id__in=ids)
    if only_pending:
        query = query.filter(state=JobRun.State.PENDING)
    runs = list(query.only(*SEND_FIELDS))
    return send_and_mark(runs)


def send_and_mark(runs: Sequence[Any], *, now: datetime | None = None) -> int:
    """Send these runs' messages (JobRun or scheduler.NewRun) and mark the pending ones queued;
    0 if the broker is unavailable (they stay pending; the sweep re-sends them).

    `now` (the database's clock, when the caller has it) turns a run's `run_after` into the
    message's delay. Anything but a broker outage (a bug in the send path, a value the encoder
    refuses) is logged with its traceback and makes the runs dead with that error: re-sending
    would fail the same way for ever.
    """
    if not runs:
        return 0
    broker_state = outage("broker")
    if now is None and any(run.run_after for run in runs):
        now = database_now()
    try:
        items = [build_message(run, now) for run in runs]
        enqueue_many(dramatiq.get_broker(), items)
    except BROKER_ERRORS as exc:
        broker_state.failed(exc)
        logger.info("%d run(s) stay pending until the broker is back", len(runs))
        return 0
    except Exception as exc:
        logger.exception("sending %d run(s) failed; they are marked dead", len(runs))
        transitions.fail_unsent(
            [r.id for r in runs],
            error=f"Could not be sent to the broker: {type(exc).__name__}: {exc}",
        )
        return 0
    broker_state.ok()
    transitions.mark_sent([r.id for r in runs])
    return len(runs)

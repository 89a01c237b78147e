"""Hand recorded runs to the broker: build their messages, send them, mark them sent, and
repair what a crash or an outage left unsent (the sweep).

A run's UUID is its Dramatiq message id, so every re-send of the same run is recognisable
and a duplicate delivery is dropped by the worker's claim.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from django.db.models import Q
from django.db.models.functions import Now
from dramatiq.common import current_millis

from jobs import transitions
from jobs.broker import BROKER_ERRORS, counts_unacknowledged, enqueue_many, messages_held
from jobs.db import database_now
from jobs.health import outage
from jobs.models import JobRun

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


def sweep(now: datetime | None = None, *, limit: int = 1000) -> dict[str, int]:
    """Repair what a crash or a broker outage left behind; safe to run from every scheduler.

    - `pending` runs older than a few seconds: their send never happened (the outbox).
    - `running` runs whose lease expired: their worker died; put back to `pending` and re-sent,
      so the next worker takes over (attempts + 1).
    - `retrying` runs long past their retry time: Dramatiq's re-enqueue was lost.
    - `queued` runs whose message the broker lost (a restart without persistence, a flush, a
      purge): see resend_lost_messages().
    A re-send that duplicates a message still in the broker is harmless: the claim drops it.
    Times are the database's (`now` only for tests).
    """
    from jobs.conf import jobs_settings

    conf = jobs_settings()
    clock: Any = now or Now()
    started = time.monotonic()
    counts = {"pending": 0, "expired": 0, "retrying": 0, "lost": 0}

    pending = list(
        JobRun.objects.stale_pending(clock, timedelta(seconds=conf.PENDING_RESEND_AFTER_SECONDS))
        .order_by("created_at")
        .only(*SEND_FIELDS)[:limit]
    )
    counts["pending"] = send_and_mark(pending)

    expired = JobRun.objects.expired_leases(clock).values_list("id", "attempts")[:limit]
    released = [
        run_id
        for run_id, attempt in expired
        if transitions.release_expired(run_id=run_id, attempt=attempt) == JobRun.State.PENDING
    ]
    if released:
        logger.warning(
            "re-sending %d run(s) whose worker stopped renewing its lease", len(released)
        )
        counts["expired"] = send_runs(released)

    lost = list(
        JobRun.objects.lost_retries(clock, timedelta(seconds=conf.RETRY_RESEND_AFTER_SECONDS)).only(
            *SEND_FIELDS
        )[:limit]
    )
    if lost and _resend(lost):
        transitions.resend_retry([r.id for r in lost])
        counts["retrying"] = len(lost)
        logger.warning("re-sent %d retry(ies) whose re-enqueue was lost", len(lost))

    counts["lost"] = resend_lost_messages(clock, limit=limit)
    logger.debug("sweep took %.3f s: %s", time.monotonic() - started, counts)
    return counts


def resend_lost_messages(now: Any = None, *, limit: int = 1000) -> int:
    """Re-send `queued` runs whose message is no longer in the broker.

    Per queue that has runs queued for longer than JOBS_QUEUED_RESEND_AFTER_SECONDS, the broker's
    count of the messages it holds is compared with the database's count of the runs that
    should have one. Only the shortfall is re-sent, oldest first: 10,000 runs legitimately
    waiting behind busy workers have 10,000 messages and nothing is re-sent, while a broker
    that restarted empty holds fewer than the database expects, whatever new messages came
    since. The runs re-sent are stamped (enqueued_at) so that they wait a full period before
    they can be counted again. A message counted twice or a run re-sent needlessly costs at most
    a duplicate, which the claim drops.
    """
    from jobs.conf import jobs_settings

    conf = jobs_settings()
    clock: Any = now or Now()
    cutoff = clock - timedelta(seconds=conf.QUEUED_RESEND_AFTER_SECONDS)
    due = Q(run_after__isnull=True) | Q(run_after__lt=cutoff)
    old = JobRun.objects.filter(due, state=JobRun.State.QUEUED, enqueued_at__lt=cutoff)
    queues = list(old.order_by().values_list("queue", flat=True).distinct())
    if not queues:
        return 0
    broker = dramatiq.get_broker()
    exact = counts_unacknowledged(broker)
    if exact or not JobRun.objects.filter(state=JobRun.State.RUNNING).exists():
        # Unacknowledged messages are counted (Redis), or no worker is busy: a worker with a
        # free thread claims what it prefetched at once, and these runs waited for minutes.
        allowance = 0
    else:
        # RabbitMQ does not count the messages that busy workers prefetched and hold unacked.
        allowance = conf.PREFETCH_ALLOWANCE * _live_worker_processes()
    waiting_states = (
        [JobRun.State.QUEUED, JobRun.State.RETRYING, JobRun.State.RUNNING]
        if exact
        else [JobRun.State.QUEUED]
    )
    resent = 0
    for queue_name in queues:
        try:
            held = messages_held(broker, queue_name)
        except BROKER_ERRORS as exc:
            outage("broker").failed(exc)
            return resent
        if held is None:
            continue
        waiting = JobRun.objects.filter(queue=queue_name, state__in=waiting_states).count()
        missing = waiting - held - allowance
        if missing <= 0:
            continue
        runs = list(
            old.filter(queue=queue_name)
            .order_by("enqueued_at")
            .only(*SEND_FIELDS)[: min(missing, limit - resent)]
        )
        if runs and _resend(runs):
            transitions.mark_resent([r.id for r in runs])
            resent += len(runs)
            logger.warning(
                "queue %r: the broker holds %d message(s) for %d waiting run(s); re-sent the "
                "%d oldest, queued more than %d s ago",
                queue_name,
                held,
                waiting,
                len(runs),
                conf.QUEUED_RESEND_AFTER_SECONDS,
            )
        if resent >= limit:
            break
    return resent


def _resend(runs: Sequence[JobRun]) -> bool:
    """Send messages for runs that already left `pending`; False if the broker is down. They
    are all due (lost queued runs, overdue retries), so no clock is read for a delay."""
    try:
        enqueue_many(dramatiq.get_broker(), [build_message(r, None) for r in runs])
    except BROKER_ERRORS as exc:
        outage("broker").failed(exc)
        return False
    outage("broker").ok()
    return True


def _live_worker_processes() -> int:
    from jobs.conf import jobs_settings
    from jobs.models import Heartbeat

    seen = Now() - timedelta(seconds=jobs_settings().WORKER_SEEN_SECONDS)
    return Heartbeat.objects.filter(kind=Heartbeat.Kind.WORKER, seen_at__gte=seen).count()

"""The sweep: repair what a crash or an outage left unsent, lost or stuck.

Every scheduler runs it every JOBS_SWEEP_INTERVAL_SECONDS; it is safe to run in several at
once (each repair is one conditional statement in jobs/runs/transitions.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from django.db.models import Q
from django.db.models.functions import Now

from jobs.broker.bulk_send import enqueue_many
from jobs.broker.introspection import BROKER_ERRORS, counts_unacknowledged, messages_held
from jobs.health import outage
from jobs.models import JobRun
from jobs.runs import transitions
from jobs.runs.send import SEND_FIELDS, build_message, send_and_mark, send_runs

logger = logging.getLogger(__name__)


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

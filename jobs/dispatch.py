"""Hand recorded runs to the broker: build their messages and send them, pipelined on Redis.

A run's UUID is its Dramatiq message id, so every re-send of the same run is recognisable
and a duplicate delivery is dropped by the worker's claim.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any

import dramatiq
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.encoder import JSONEncoder
from dramatiq.middleware import Middleware

from jobs.bulk import mark_queued
from jobs.ids import random_uuid_strings
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


def build_message(run: Any, now: datetime) -> tuple[dramatiq.Message[Any], int | None]:
    options: dict[str, Any] = {
        "max_retries": run.max_retries,
        # Retries counts retries already made; a re-sent run carries its attempts so far.
        "retries": run.attempts,
    }
    if run.time_limit_seconds:
        options["time_limit"] = run.time_limit_seconds * 1000
    delay = None
    if run.run_after and run.run_after > now:
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


def send_messages(
    broker: dramatiq.Broker, items: Sequence[tuple[dramatiq.Message[Any], int | None]]
) -> None:
    """Enqueue messages; on Redis all of them in one pipelined round trip."""
    for message, _ in items:
        broker.declare_queue(message.queue_name)
    if not isinstance(broker, RedisBroker) or len(items) < 2:
        for message, delay in items:
            broker.enqueue(message, delay=delay)
        return
    _send_pipelined(broker, items)


def _send_pipelined(
    broker: RedisBroker, items: Sequence[tuple[dramatiq.Message[Any], int | None]]
) -> None:
    # The same steps as RedisBroker.enqueue for each message (a fresh redis_message_id, the
    # delay queue and eta, the enqueue hooks, the dispatch script's "enqueue" command), written
    # to one connection as a single buffer and answered in order. redis-py's pipeline packed
    # the same 14 arguments in Python for every message (19 us each, half the cost of a send);
    # here the 12 that do not change within a queue are encoded once. Hooks are called only on
    # the middleware that defines them.
    script = broker.scripts["dispatch"]
    before, after = _hooks(broker, "before_enqueue"), _hooks(broker, "after_enqueue")
    encode = (
        _MessageJSON() if type(dramatiq.get_encoder()) is JSONEncoder else dramatiq.Message.encode
    )
    now = current_millis()
    heads: dict[str, bytes] = {}
    # Loading the script first (a no-op when it is cached) keeps a flushed script cache from
    # failing the batch with NOSCRIPT.
    body = script.script
    body = body.encode() if isinstance(body, str) else bytes(body)
    buffer = [_resp_command(b"SCRIPT", b"LOAD", body)]
    sent = []
    redis_message_ids = random_uuid_strings()
    for message, delay in items:
        queue_name = message.queue_name
        redis_message_id = next(redis_message_ids)
        options: dict[str, Any] = {**message.options, "redis_message_id": redis_message_id}
        if delay is not None:
            queue_name = dq_name(queue_name)
            options["eta"] = now + delay
        message = dramatiq.Message(
            queue_name=queue_name,
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options=options,
            message_id=message.message_id,
            message_timestamp=message.message_timestamp,
        )
        for hook in before:
            hook(broker, message, delay)
        if (head := heads.get(queue_name)) is None:
            head = heads[queue_name] = _enqueue_head(broker, script.sha, queue_name, now)
        buffer.append(head + _resp_bulk(redis_message_id.encode()) + _resp_bulk(encode(message)))
        sent.append((message, delay))
    _exchange(broker, b"".join(buffer), replies=len(buffer))
    for message, delay in sent:
        for hook in after:
            hook(broker, message, delay)


def _enqueue_head(broker: RedisBroker, sha: str, queue_name: str, now: int) -> bytes:
    """EVALSHA of Dramatiq's dispatch script up to its last two arguments, as RedisBroker's
    do_dispatch("enqueue", ...) passes them (no maintenance inside a bulk send)."""
    args: list[object] = [
        "EVALSHA",
        sha,
        1,
        broker.namespace,
        "enqueue",
        now,
        queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        0,
        broker._max_unpack_size(),  # type: ignore[no-untyped-call]
    ]
    return b"*%d\r\n" % (len(args) + 2) + b"".join(_resp_bulk(str(a).encode()) for a in args)


def _resp_bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(_resp_bulk(a) for a in args)


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps builds one per call


class _MessageJSON:
    """What Message.encode() gives with Dramatiq's default JSONEncoder, for the messages of one
    batch: the members they share (queue, actor, args and the payload object) are encoded
    once, and only the options, id and timestamp per message. Encoding each whole message
    was the largest cost of a send."""

    def __init__(self) -> None:
        self._heads: dict[tuple[Any, ...], str] = {}

    def __call__(self, message: dramatiq.Message[Any]) -> bytes:
        # By id(): the messages of a batch share their kwargs objects, and hold them while
        # this encoder lives.
        key = (message.queue_name, message.actor_name, id(message.args), id(message.kwargs))
        if (head := self._heads.get(key)) is None:
            shared = {
                "queue_name": message.queue_name,
                "actor_name": message.actor_name,
                "args": message.args,
                "kwargs": message.kwargs,
            }
            head = self._heads[key] = _COMPACT_JSON.encode(shared)[:-1] + ',"options":'
        return (
            f"{head}{_COMPACT_JSON.encode(message.options)}"
            f',"message_id":{encode_basestring_ascii(message.message_id)}'
            f',"message_timestamp":{message.message_timestamp}}}'
        ).encode()


def _exchange(broker: RedisBroker, buffer: bytes, *, replies: int) -> None:
    """Write the commands in one go and read every reply; an error reply raises (after the
    commands before it took effect), and the connection is dropped rather than reused with
    replies still unread."""
    pool = broker.client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([buffer])
        for _ in range(replies):
            conn.read_response()
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def _hooks(broker: dramatiq.Broker, name: str) -> list[Any]:
    """Bound hook methods of the middleware that override `name` (the base ones do nothing)."""
    base = getattr(Middleware, name)
    return [getattr(m, name) for m in broker.middleware if getattr(type(m), name, base) is not base]


def send_runs(run_ids: Iterable[uuid.UUID], *, only_pending: bool = True) -> int:
    """Send these runs (those still pending, unless told otherwise) and mark them queued.

    Called after the transaction that recorded them has committed. A broker failure is
    logged, not raised: the runs stay `pending` and the scheduler's sweep sends them later.
    """
    ids = list(run_ids)
    if not ids:
        return 0
    query = JobRun.objects.filter(id__in=ids)
    if only_pending:
        query = query.filter(state=JobRun.State.PENDING)
    runs = list(query.only(*SEND_FIELDS))
    return send_and_mark(runs)


def send_and_mark(runs: Sequence[Any]) -> int:
    """Send these runs' messages (JobRun or scheduler.NewRun) and mark the pending ones queued;
    0 if the broker failed."""
    if not runs:
        return 0
    now = timezone.now()
    items = [build_message(run, now) for run in runs]
    try:
        send_messages(dramatiq.get_broker(), items)
    except Exception as exc:
        logger.warning(
            "broker unavailable (%s: %s); %d run(s) stay pending and will be re-sent",
            type(exc).__name__,
            exc,
            len(runs),
        )
        return 0
    mark_queued([r.id for r in runs], timezone.now())
    return len(runs)


def sweep(now: datetime | None = None, *, limit: int = 1000) -> dict[str, int]:
    """Repair what a crash or a broker outage left behind; safe to run from every scheduler.

    - `pending` runs older than a few seconds: their send never happened (the outbox).
    - `running` runs whose lease expired: their worker died; put back to `queued` and re-send,
      so the next worker takes over (attempts + 1).
    - `retrying` runs long past their retry time: Dramatiq's re-enqueue was lost.
    A re-send that duplicates a message still in the broker is harmless: the claim drops it.
    """
    from jobs.conf import jobs_settings

    conf = jobs_settings()
    now = now or timezone.now()
    started = time.monotonic()
    counts = {"pending": 0, "expired": 0, "retrying": 0}

    pending = list(
        JobRun.objects.stale_pending(now, timedelta(seconds=conf.PENDING_RESEND_AFTER_SECONDS))
        .order_by("created_at")
        .only(*SEND_FIELDS)[:limit]
    )
    counts["pending"] = send_and_mark(pending)

    expired = list(
        JobRun.objects.expired_leases(now).only(*SEND_FIELDS, "worker", "history", "started_at")[
            :limit
        ]
    )
    requeued = [run for run in expired if _requeue_expired(run, now, conf.MAX_WORKER_LOSSES)]
    if requeued:
        logger.warning(
            "re-sending %d run(s) whose worker stopped renewing its lease", len(requeued)
        )
        counts["expired"] = send_and_mark(requeued)

    lost = list(
        JobRun.objects.lost_retries(now, timedelta(seconds=conf.RETRY_RESEND_AFTER_SECONDS)).only(
            *SEND_FIELDS
        )[:limit]
    )
    if lost:
        try:
            send_messages(dramatiq.get_broker(), [build_message(r, now) for r in lost])
        except Exception as exc:
            logger.warning("broker unavailable for lost retries: %s", exc)
        else:
            JobRun.objects.filter(
                Q(id__in=[r.id for r in lost]), state=JobRun.State.RETRYING
            ).update(run_after=now)
            counts["retrying"] = len(lost)
            logger.warning("re-sent %d retry(ies) whose re-enqueue was lost", len(lost))
    logger.debug("sweep took %.3f s: %s", time.monotonic() - started, counts)
    return counts


def _requeue_expired(run: JobRun, now: datetime, max_losses: int) -> bool:
    """running (lease expired) -> pending, noting the lost attempt; dead instead once the run
    has lost `max_losses` attempts with their workers. False if a renewal won or the row is
    locked (its job is committing right now: it is alive), or the run is now dead."""
    losses = 1 + sum(entry.get("error", "").startswith("worker lost") for entry in run.history)
    history = [
        *run.history,
        {
            "attempt": run.attempts,
            "worker": run.worker,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": now.isoformat(),
            "error": "worker lost: its lease expired (process killed or stuck)",
        },
    ]
    if losses < max_losses:
        run.state = JobRun.State.PENDING
        return _update_if_expired(
            run, now, state=JobRun.State.PENDING, lease_expires_at=None, history=history
        )
    from jobs.alerts import alert_run_dead

    died = _update_if_expired(
        run,
        now,
        state=JobRun.State.DEAD,
        lease_expires_at=None,
        finished_at=now,
        error=f"worker lost {losses} times: each attempt's process was killed or stopped "
        "responding (out of memory? a crash in native code?); not handed out again",
        history=history,
    )
    if died:
        alert_run_dead(run_id=run.id)  # logged there, with the alerts
    return False


def _update_if_expired(run: JobRun, now: datetime, **values: Any) -> bool:
    """Update the run if this attempt's lease is still expired and its row is not locked."""
    with transaction.atomic():
        lockable = (
            JobRun.objects.expired_leases(now)
            .filter(id=run.id, attempts=run.attempts)
            .select_for_update(skip_locked=True)
            .values("id")
        )
        return JobRun.objects.filter(id__in=lockable).update(**values) == 1

"""How fast does one scheduler turn a wave of due schedules into messages in Redis?

    .venv/bin/python bench/scheduler.py --schedules 10000

All schedules are due at the same instant. Measured twice: the real `manage.py runscheduler`
process as users run it (from the due instant, by the database's clock, to the last run marked
sent after Redis took its message), and the tick called in this process (slots fired per
second, lateness p50/p99). Both are compared with the same number of prebuilt messages sent
raw through Dramatiq's Redis script in one pipeline, measured in the same run. Uses its own
database (saas_bench) and Redis db 14.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from _setup import ROOT, percentile, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="Runs of each measurement; the best is kept."
    )
    args = parser.parse_args()
    setup_django()

    import dramatiq

    raw = min(measure_raw_send(dramatiq.get_broker(), args.schedules) for _ in range(args.repeat))
    project = min(
        measure_project_send(dramatiq.get_broker(), args.schedules) for _ in range(args.repeat)
    )
    naive = measure_naive_send(dramatiq.get_broker(), min(args.schedules, 2000))
    process = min(measure_process(args.schedules) for _ in range(args.repeat))
    runs = [measure_tick(args.schedules) for _ in range(args.repeat)]
    elapsed, returned, lateness, cpu = min(runs, key=lambda r: r[0])

    slots_per_s = args.schedules / elapsed
    raw_per_s = args.schedules / raw
    print(f"schedules due at once:         {args.schedules}")
    print(
        f"runscheduler process: due to last message in Redis {process:.3f} s "
        f"({args.schedules / process:,.0f} slots/s)"
    )
    print(f"tick, all messages in Redis:   {elapsed:.3f} s  ({slots_per_s:,.0f} slots/s)")
    print(f"tick returned (last batch marked queued): {returned:.3f} s")
    print(
        f"lateness p50 / p99:            {percentile(lateness, 50):.3f} s / {percentile(lateness, 99):.3f} s"
    )
    print(f"tick CPU in Python:            {cpu:.3f} s  (both threads share one GIL)")
    print(f"raw pipelined Dramatiq sends:  {raw:.3f} s  ({raw_per_s:,.0f} messages/s)")
    print(
        f"this project's send path:      {project:.3f} s  ({args.schedules / project:,.0f} messages/s, same messages)"
    )
    print(f"one-by-one broker.enqueue:     {naive:,.0f} messages/s (for scale)")
    print(
        f"result: slots_per_s={slots_per_s:.0f} ratio={slots_per_s / raw_per_s:.2f} "
        f"process_s={process:.2f} process_ratio={raw / process:.2f}"
    )


def prebuilt_messages(count: int) -> list:  # type: ignore[type-arg]
    import dramatiq
    from dramatiq.common import current_millis

    return [
        dramatiq.Message(
            queue_name="default",
            actor_name="test.noop",
            args=(),
            kwargs={},
            options={"max_retries": 3, "retries": 0},
            message_timestamp=current_millis(),
        )
        for _ in range(count)
    ]


def measure_raw_send(broker, count: int) -> float:  # type: ignore[no-untyped-def]
    """The baseline: what RedisBroker.enqueue does for each message (copy it with a fresh
    redis_message_id, encode it, call the dispatch script's "enqueue"), with every call in one
    redis-py pipeline instead of a round trip each. Independent of jobs/scheduling/sweep.py, so that
    the baseline does not move when the project's own send path does."""
    from uuid import uuid4

    from dramatiq.common import current_millis
    from dramatiq.middleware import Middleware

    messages = prebuilt_messages(count)
    # Like RedisBroker.emit_before/emit_after, minus the middleware whose hook does nothing.
    before, after = (
        [
            getattr(m, name)
            for m in broker.middleware
            if getattr(type(m), name) is not getattr(Middleware, name)
        ]
        for name in ("before_enqueue", "after_enqueue")
    )
    broker.client.flushdb()
    broker.declare_queue("default")
    started = time.perf_counter()
    dispatch = broker.scripts["dispatch"]
    pipe = broker.client.pipeline(transaction=False)
    unpack_size = broker._max_unpack_size()
    sent = []
    for message in messages:
        message = message.copy(options={"redis_message_id": str(uuid4())})
        for hook in before:
            hook(broker, message, None)
        sent.append(message)
        args = [
            "enqueue",
            current_millis(),
            message.queue_name,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            0,  # no maintenance inside a bulk send
            unpack_size,
            message.options["redis_message_id"],
            message.encode(),
        ]
        dispatch(keys=[broker.namespace], args=args, client=pipe)
    pipe.execute()
    for message in sent:
        for hook in after:
            hook(broker, message, None)
    elapsed = time.perf_counter() - started
    assert broker.client.llen(f"{broker.namespace}:default") == count
    return elapsed


def measure_project_send(broker, count: int) -> float:  # type: ignore[no-untyped-def]
    """The same prebuilt messages through this project's send path (jobs.dispatch), for scale."""
    from jobs.broker.bulk_send import enqueue_many

    messages = [(message, None) for message in prebuilt_messages(count)]
    broker.client.flushdb()
    started = time.perf_counter()
    enqueue_many(broker, messages)
    elapsed = time.perf_counter() - started
    assert broker.client.llen(f"{broker.namespace}:default") == count
    return elapsed


def measure_naive_send(broker, count: int) -> float:  # type: ignore[no-untyped-def]
    import dramatiq

    broker.client.flushdb()
    broker.declare_queue("default")
    started = time.perf_counter()
    for _ in range(count):
        broker.enqueue(
            dramatiq.Message(queue_name="default", actor_name="x", args=(), kwargs={}, options={})
        )
    return count / (time.perf_counter() - started)


def _due_wave(count: int, lead_seconds: float) -> datetime:
    """Empty the tables and the queue; `count` every-minute schedules all due at one instant,
    `lead_seconds` from now. Returns that instant."""
    import dramatiq
    from django.db import connection

    from jobs.models import Schedule

    dramatiq.get_broker().client.flushdb()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_jobrun, jobs_schedule CASCADE")
    slot = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_seconds)
    Schedule.objects.bulk_create(
        Schedule(
            name=f"bench-{i:05d}",
            job="jobs.prune_runs",
            kind="cron",
            cron="* * * * *",
            timezone="UTC",
            payload={},
            next_run_at=slot,
            created_at=slot - timedelta(minutes=1),
        )
        for i in range(count)
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_schedule")
    return slot


def measure_process(count: int) -> float:
    """A real `manage.py runscheduler`, started before the wave is due and left to sleep until
    it is: seconds from the due instant to the last run marked sent (after Redis took it)."""
    from django.db.models import Max

    from jobs.models import JobRun

    slot = _due_wave(count, lead_seconds=8)
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    scheduler = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runscheduler"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 8 + 120
        while JobRun.objects.filter(state="queued").count() < count:
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"runscheduler did not send the wave ({scheduler.poll()=})")
            time.sleep(0.2)
    finally:
        scheduler.terminate()
        scheduler.wait(30)
    last = JobRun.objects.aggregate(last=Max("enqueued_at"))["last"]
    return (last - slot).total_seconds()


def measure_tick(count: int) -> tuple[float, float, list[float], float]:
    import dramatiq

    from jobs.models import JobRun
    from jobs.scheduling.tick import tick

    broker = dramatiq.get_broker()
    slot = _due_wave(count, lead_seconds=2)
    time.sleep(max(0.0, (slot - datetime.now(UTC)).total_seconds()))
    started, cpu_started = time.perf_counter(), time.process_time()
    started_at = datetime.now(UTC)
    result = tick(started_at)
    returned, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert result.fired == count and result.sent == count, result
    assert broker.client.llen(f"{broker.namespace}:default") == count
    sent = JobRun.objects.values_list("scheduled_for", "enqueued_at")
    lateness = [(enqueued - scheduled).total_seconds() for scheduled, enqueued in sent]
    # enqueued_at is taken when Redis has answered for the run's batch, before the batch is
    # marked queued; the tick returns after the last batch's mark.
    in_redis = (max(enqueued for _, enqueued in sent) - started_at).total_seconds()
    return in_redis, returned, lateness, cpu


if __name__ == "__main__":
    main()

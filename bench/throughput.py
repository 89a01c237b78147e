"""Recorded jobs per second through real worker processes, against raw Dramatiq no-ops.

    .venv/bin/python bench/throughput.py [--jobs 20000]

For 1 process x 8 threads and then 2 x 8: start the workers, push N messages in one pipelined
send, and time until every one is processed. "raw" is a plain Dramatiq actor (nothing
recorded); "tracked" is a @jobs.job no-op whose run is claimed (one UPDATE) and finished (one
UPDATE) in PostgreSQL. Uses its own database (saas_bench) and Redis db 14.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _setup import BENCH_CACHE, BENCH_DATABASE, BENCH_REDIS, ROOT, setup_django

QUEUE = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    setup_django()
    import bench.actors  # noqa: F401 - declares the actors in this process too

    results = {}
    for processes in (1, 2):
        raw = run_config("raw", processes, args.jobs)
        tracked = run_config("tracked", processes, args.jobs)
        results[processes] = (raw, tracked)
        print(
            f"{processes} x 8: raw {raw:,.0f} jobs/s, tracked {tracked:,.0f} jobs/s, "
            f"ratio {tracked / raw:.2f}"
        )
    raw1, tracked1 = results[1]
    print(
        f"commits per tracked job: 2 (claim UPDATE, success UPDATE), measured {commits_per_job():.2f}"
    )
    print(f"result: jobs_per_s={tracked1:.0f} ratio={tracked1 / raw1:.2f}")


_COMMITS: list[float] = []


def commits_per_job() -> float:
    return _COMMITS[-1] if _COMMITS else float("nan")


def run_config(kind: str, processes: int, count: int) -> float:
    import dramatiq
    from django.db import connection

    from jobs.models import JobRun

    broker = dramatiq.get_broker()
    broker.client.flushdb()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_jobrun CASCADE")
    log = Path(tempfile.gettempdir()) / f"bench-worker-{kind}-{processes}.log"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DATABASE_URL=BENCH_DATABASE,
        REDIS_URL=BENCH_REDIS,
        CACHE_URL=BENCH_CACHE,
        LOG_LEVEL="INFO",
    )
    command = [
        str(Path(sys.executable).parent / "dramatiq"),
        "django_dramatiq.setup",
        "bench.actors",
        "--processes",
        str(processes),
        "--threads",
        "8",
        "--queues",
        QUEUE,
    ]
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("is ready for action") < processes:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"workers did not start; see {log}")
            time.sleep(0.1)
        messages = prepare(kind, count)
        commits_before = database_commits()
        started = time.perf_counter()
        send(messages, kind)
        wait_done(kind, count)
        elapsed = time.perf_counter() - started
        if kind == "tracked":
            assert JobRun.objects.filter(state="succeeded").count() == count
            # The sender's own commits (one per 1,000-run batch) are not the workers'.
            _COMMITS.append((database_commits() - commits_before - count / 1000) / count)
        return count / elapsed
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def prepare(kind: str, count: int) -> list:  # type: ignore[type-arg]
    import dramatiq
    from dramatiq.common import current_millis

    from jobs.models import JobRun

    if kind == "raw":
        return [
            dramatiq.Message(
                queue_name=QUEUE,
                actor_name="bench.raw_noop",
                args=(),
                kwargs={},
                options={},
                message_timestamp=current_millis(),
            )
            for _ in range(count)
        ]
    runs = [
        JobRun(id=uuid.uuid4(), job="bench.noop", queue=QUEUE, max_retries=0) for _ in range(count)
    ]
    JobRun.objects.bulk_create(runs, batch_size=2000)
    return runs


def send(items: list, kind: str) -> None:  # type: ignore[type-arg]
    import dramatiq

    from jobs.broker.bulk_send import enqueue_many
    from jobs.runs.send import send_and_mark

    if kind == "raw":
        enqueue_many(dramatiq.get_broker(), [(m, None) for m in items])
    else:
        for start in range(0, len(items), 1000):
            send_and_mark(items[start : start + 1000])


def wait_done(kind: str, count: int) -> None:
    import dramatiq
    from django.db import connection

    broker = dramatiq.get_broker()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if kind == "tracked":
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM jobs_jobrun WHERE state = 'succeeded'")
                if cursor.fetchone()[0] >= count:
                    return
        else:
            waiting = broker.client.llen(f"{broker.namespace}:{QUEUE}")
            unacked = sum(
                broker.client.scard(k)
                for k in broker.client.scan_iter(f"{broker.namespace}:__acks__.*")
            )
            if waiting == 0 and unacked == 0:
                return
        time.sleep(0.05)
    raise SystemExit("jobs did not finish within 10 minutes")


def database_commits() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(cursor.fetchone()[0])


if __name__ == "__main__":
    main()

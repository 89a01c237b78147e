"""The jobs admin and the background steps on a big history, against an (almost) empty one.

    .venv/bin/python bench/scale.py [--runs 10000000] [--schedules 100000] [--skip-build]

Two data sets in the database saas_scale: "empty" (200 schedules, 2,000 runs, rebuilt in the
schema scale_empty on every invocation, so that --skip-build still compares against fresh
numbers) and "big" (--schedules and --runs over the last 14 days, in the schema public, built
with INSERT ... SELECT FROM generate_series in chunks of 1 M rows, every index in place;
--skip-build reuses it). On each: every admin page below (logged in as a superuser through
django.test.Client; median of 5 requests after one warm-up), one scheduler tick with 1,000
schedules due, the sweep (median of 5 after one warm-up that does the repairs), and the
retention job deleting the oldest ~10 % of the succeeded runs (at most 1 M, at most ~60 s).

The broker is Redis db 13; only its Dramatiq keys are cleared, never the whole db (the test
suite keeps its cache there). The cache is the per-process memory cache (sessions in the
database). The prune deletes rows for good: a --skip-build run measures what is left (printed).
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from unittest import mock

from _setup import ROOT, setup_django

DATABASE = "postgres://postgres@127.0.0.1:5432/saas_scale"
REDIS = "redis://127.0.0.1:6379/13"
EMPTY_SCHEMA = "scale_empty"
BIG_SCHEMA = "public"
EMPTY_SCHEDULES, EMPTY_RUNS = 200, 2_000
WINDOW = timedelta(days=14)
CHUNK = 1_000_000
REQUESTS = 5  # timed requests per page, after one warm-up
TICK_DUE = 1_000
TICK_REPEAT = 3  # timed ticks, after one warm-up
PRUNE_SHARE, PRUNE_MAX, PRUNE_BUDGET_S = 0.10, 1_000_000, 60.0
SLOW_PAGES = 3  # pages whose queries are printed
ERROR_TEXT = "upstream returned 503"
# Job names the admin has never heard of render too: test job names and made-up ones.
TEST_JOBS = [
    "test.noop",
    "test.echo",
    "test.typed",
    "test.flaky",
    "test.always_fails",
    "test.sleepy",
    "test.db_writer",
    "test.count",
]
MADE_UP_JOBS = [f"tenant.sync_{n:03d}" for n in range(290)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument(
        "--skip-build", action="store_true", help="Reuse the big history already in saas_scale."
    )
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE the slowest query of slow pages."
    )
    args = parser.parse_args()
    # cache_url "": the memory cache, so that nothing but the broker touches Redis.
    setup_django(database_url=DATABASE, redis_url=REDIS, cache_url="")
    print(f"code: {code_state()}")

    use_schema(EMPTY_SCHEMA, recreate=True)
    build_history(EMPTY_SCHEDULES, EMPTY_RUNS, quiet=True)
    empty = measure_phase("empty")

    use_schema(BIG_SCHEMA)
    if args.skip_build:
        check_big_history()
    else:
        build_history(args.schedules, args.runs, quiet=False)
    big = measure_phase("big")

    report(empty, big)
    if args.explain:
        explain_slowest(big)
    clear_broker()
    pages = [name for name in big.ms if name in big.pages]
    worst_ms = max(big.ms[name] for name in pages)
    worst_ratio = max(big.ms[name] / empty.ms[name] for name in pages)
    print(
        f"result: worst_page_ms={worst_ms:.1f} worst_page_ratio={worst_ratio:.2f} "
        f"tick_ratio={big.ms['tick'] / empty.ms['tick']:.2f} "
        f"prune_rows_per_s={big.prune_rows_per_s:.0f}"
    )


def code_state() -> str:
    """The commit measured, and whether the work tree differs from it (others work in it)."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    changed = ", ".join(line[3:] for line in dirty)
    return head + (f" + uncommitted changes to {changed}" if dirty else "")


# ---------------------------------------------------------------------------------------------
# Database and broker
# ---------------------------------------------------------------------------------------------


def use_schema(schema: str, *, recreate: bool = False) -> None:
    """Point every connection (this thread's and the tick's sender thread's) at `schema`.

    The connection settings are one dict shared by every thread's connection, so setting its
    search_path and closing the current connection is enough; the empty schema gets its own
    migrated tables."""
    from django.contrib.contenttypes.models import ContentType
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection, connections

    if recreate:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cursor.execute(f"CREATE SCHEMA {schema}")
    options = connections.settings["default"].setdefault("OPTIONS", {})
    options["options"] = f"-c search_path={schema}"
    connections.close_all()
    if recreate:
        call_command("migrate", verbosity=0)
    # Ids cached from the other schema's tables.
    ContentType.objects.clear_cache()
    cache.clear()


def execute(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def scalar(sql: str, params: Any = None) -> Any:
    return execute(sql, params)[0][0]


def clear_broker() -> None:
    """Delete the broker's keys in Redis db 13, and only those."""
    import dramatiq

    broker = dramatiq.get_broker()
    keys = [broker.namespace, *broker.client.scan_iter(f"{broker.namespace}:*", count=1000)]
    broker.client.delete(*keys)


def registered_job_names() -> list[str]:
    from jobs.registry import registered_jobs

    return sorted(registered_jobs())


# ---------------------------------------------------------------------------------------------
# Building a history (SQL only)
# ---------------------------------------------------------------------------------------------

# One schedule in five runs a registered job (the tick needs 1,000 it can fire); the rest
# spread over ~300 names. The same expression gives a run its schedule's job.
JOB_EXPR = """CASE WHEN mod({i}, 5) = 0
    THEN (%(registered)s::text[])[1 + mod({i} / 5, cardinality(%(registered)s::text[]))]
    ELSE (%(others)s::text[])[1 + mod({i}, cardinality(%(others)s::text[]))] END"""

SCHEDULES_SQL = f"""
INSERT INTO jobs_schedule (name, job, payload, kind, cron, interval_seconds, timezone, enabled,
    paused_reason, misfire_policy, misfire_grace_seconds, overlap_policy, jitter_seconds, queue,
    priority, next_run_at, last_fired_at, created_at, updated_at)
SELECT 'tenant-' || lpad(i::text, 7, '0') || ' ' || job, job, '{{}}'::jsonb,
    CASE WHEN mod(i, 20) = 7 THEN 'interval' ELSE 'cron' END,
    CASE WHEN mod(i, 20) = 7 THEN '' ELSE '* * * * *' END,
    CASE WHEN mod(i, 20) = 7 THEN 300 END,
    'UTC', mod(i, 50) <> 3, CASE WHEN mod(i, 50) = 3 THEN 'tenant on hold (bench)' ELSE '' END,
    'skip', 60, 'allow', 0, '', 0,
    CASE WHEN mod(i, 50) <> 3 THEN %(end)s + interval '1 day' END,
    %(end)s, %(start)s - interval '1 day', %(start)s - interval '1 day'
FROM (SELECT i, {JOB_EXPR.format(i="i")} AS job FROM generate_series(1, %(m)s) AS i) AS s
"""

# Run r (1..N) happens at start + r/N of the window, so the heap is in time order as in
# production. Most runs belong to schedule 1 + r mod M at the minute of that time: two runs
# of one schedule are M/N of the window apart (at least a minute), so UNIQUE(schedule,
# scheduled_for) holds. One run in ten is ad hoc; half of those have a key. The newest few
# hundred are still pending, queued or running.
RUNS_SQL = f"""
INSERT INTO jobs_jobrun (id, job, payload, schedule_id, scheduled_for, key, state, reason, queue,
    priority, max_retries, time_limit_seconds, attempts, created_at, run_after, enqueued_at,
    started_at, finished_at, lease_expires_at, worker, progress, progress_message, result, error,
    traceback, cancel_requested, history, retry_of_id, worker_losses)
SELECT gen_random_uuid(), job,
    CASE WHEN adhoc THEN jsonb_build_object('tenant_id', tenant) ELSE '{{}}'::jsonb END,
    CASE WHEN NOT adhoc THEN %(first_id)s + i - 1 END,
    CASE WHEN NOT adhoc THEN slot END,
    CASE WHEN adhoc AND mod(r, 20) = 19
        THEN 'report:tenant-' || lpad(tenant::text, 7, '0') || ':' || r END,
    state,
    CASE state WHEN 'skipped' THEN 'previous run still active (overlap policy: skip)'
        WHEN 'cancelled' THEN 'cancelled by an operator in the admin' ELSE '' END,
    'default', 0, 3, 600,
    CASE state WHEN 'succeeded' THEN 1 + (v > 0.97)::int WHEN 'dead' THEN 4
        WHEN 'running' THEN 1 ELSE 0 END,
    created, NULL,
    CASE WHEN state NOT IN ('pending', 'skipped') THEN created + interval '8 ms' END,
    started,
    CASE state WHEN 'succeeded' THEN started + v * interval '20 s'
        WHEN 'dead' THEN started + (1 + v * 60) * interval '1 s'
        WHEN 'skipped' THEN created WHEN 'cancelled' THEN created + interval '2 s' END,
    CASE WHEN state = 'running' THEN now() + interval '1 hour' END,
    CASE WHEN started IS NOT NULL THEN worker ELSE '' END,
    CASE WHEN state = 'succeeded' THEN 100 ELSE 0 END,
    CASE WHEN state = 'succeeded' THEN 'done' ELSE '' END,
    CASE WHEN state = 'succeeded' THEN jsonb_build_object('processed', mod(r, 500)) END,
    CASE WHEN state = 'dead' THEN error ELSE '' END,
    CASE WHEN state = 'dead' THEN %(traceback)s || error ELSE '' END,
    false,
    CASE WHEN state = 'dead' THEN jsonb_build_array(
            jsonb_build_object('attempt', 1, 'worker', worker, 'error', error,
                'started_at', started - interval '3 min', 'finished_at', started - interval '179 s'),
            jsonb_build_object('attempt', 2, 'worker', worker, 'error', error,
                'started_at', started - interval '2 min', 'finished_at', started - interval '119 s'),
            jsonb_build_object('attempt', 3, 'worker', worker, 'error', error,
                'started_at', started - interval '1 min', 'finished_at', started - interval '59 s'))
        WHEN state = 'succeeded' AND v > 0.97 THEN jsonb_build_array(
            jsonb_build_object('attempt', 1, 'worker', worker, 'error', error,
                'started_at', started - interval '1 min', 'finished_at', started - interval '59 s'))
        ELSE '[]'::jsonb END,
    NULL, 0
FROM (
    SELECT *,
        CASE WHEN state IN ('succeeded', 'dead', 'running')
            THEN created + (0.01 + v * 0.2) * interval '1 s' END AS started,
        'worker-' || mod(r, 16) || ':' || (4000 + mod(r, 8)) AS worker,
        'RuntimeError: {ERROR_TEXT} for tenant ' || tenant AS error
    FROM (
        SELECT *,
            CASE WHEN adhoc THEN t ELSE slot END + interval '3 ms' AS created,
            CASE WHEN r > %(active_from)s THEN (ARRAY['pending', 'queued', 'running'])[1 + mod(r, 3)]
                WHEN u < 0.02 THEN 'dead' WHEN u < 0.025 THEN 'skipped'
                WHEN u < 0.03 THEN 'cancelled' ELSE 'succeeded' END AS state
        FROM (
            SELECT *, date_trunc('minute', t) AS slot, {JOB_EXPR.format(i="i")} AS job
            FROM (
                SELECT r, 1 + mod(r, %(m)s) AS i, mod(r, 10) = 9 AS adhoc,
                    mod(r / 20, 1000) AS tenant, random() AS u, random() AS v,
                    %(start)s + (r::float8 / %(n)s) * %(window)s AS t
                FROM generate_series(%(lo)s, %(hi)s) AS r
            ) AS g
        ) AS j
    ) AS s
) AS w
"""


def traceback_text() -> str:
    """~3 KB of frames, like the tracebacks the worker records."""
    frames = [
        ("/srv/app/.venv/lib/python3.12/site-packages/dramatiq/worker.py", 502, "process_message"),
        ("/srv/app/.venv/lib/python3.12/site-packages/dramatiq/actor.py", 184, "__call__"),
        ("/srv/app/jobs/registry.py", 171, "execute"),
        ("/srv/app/jobs/registry.py", 190, "_execute"),
        ("/srv/app/billing/jobs.py", 52, "reconcile_day"),
        ("/srv/app/billing/services.py", 311, "reconcile"),
        ("/srv/app/billing/services.py", 268, "_charge_open_invoices"),
        ("/srv/app/billing/gateway.py", 97, "charge"),
        ("/srv/app/billing/gateway.py", 141, "_post"),
        ("/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py", 1144, "post"),
        ("/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py", 825, "request"),
        ("/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py", 914, "send"),
        (
            "/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py",
            942,
            "_send_handling_auth",
        ),
        (
            "/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py",
            979,
            "_send_handling_redirects",
        ),
        (
            "/srv/app/.venv/lib/python3.12/site-packages/httpx/_client.py",
            1015,
            "_send_single_request",
        ),
        (
            "/srv/app/.venv/lib/python3.12/site-packages/httpx/_transports/default.py",
            249,
            "handle_request",
        ),
        (
            "/srv/app/.venv/lib/python3.12/site-packages/httpcore/_sync/connection_pool.py",
            256,
            "handle_request",
        ),
        (
            "/srv/app/.venv/lib/python3.12/site-packages/httpcore/_sync/connection.py",
            103,
            "handle_request",
        ),
        ("/srv/app/billing/gateway.py", 160, "_raise_for_status"),
    ]
    lines = ["Traceback (most recent call last):"]
    for path, line, name in frames:
        lines.append(f'  File "{path}", line {line}, in {name}')
        lines.append(f"    result = {name}(request, timeout=self.timeout, retries=self.retries)")
        lines.append("             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^")
    return "\n".join(lines) + "\n"


def build_history(schedules: int, runs: int, *, quiet: bool) -> None:
    """Replace the jobs tables' contents (this schema) with a generated history, then VACUUM
    ANALYZE so that the planner knows the row counts, as it would on a real site."""
    from jobs.db.connection import database_now

    runs_per_schedule = runs * 0.9 / schedules
    if WINDOW / timedelta(minutes=1) < runs / schedules:
        raise SystemExit("too many runs per schedule: two would share a minute (a slot)")
    started = time.perf_counter()
    end = database_now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    start = end - WINDOW
    params: dict[str, Any] = {
        "registered": registered_job_names(),
        "others": TEST_JOBS + MADE_UP_JOBS,
        "start": start,
        "end": end,
        "window": WINDOW,
        "m": schedules,
        "n": runs,
        "traceback": traceback_text(),
        # A few hundred active runs, at the end (the last seconds of a big history).
        "active_from": runs - min(300, runs // 100),
    }
    # CASCADE: billing_report refers to runs (this database holds nothing else of value).
    execute("TRUNCATE jobs_jobrun, jobs_schedule, jobs_heartbeat CASCADE")
    # Nothing here needs to survive a server crash, so no commit waits for its WAL flush.
    # Every index and constraint stays in place, as on a live site: the build pays for them.
    execute("SET synchronous_commit = off")
    execute(SCHEDULES_SQL, params)
    first, last = execute("SELECT min(id), max(id) FROM jobs_schedule")[0]
    assert last - first + 1 == schedules, "schedule ids are not contiguous"
    params["first_id"] = first
    for lo in range(1, runs + 1, CHUNK):
        hi = min(runs, lo + CHUNK - 1)
        execute(RUNS_SQL, {**params, "lo": lo, "hi": hi})
        if not quiet:
            elapsed = time.perf_counter() - started
            print(f"  runs {hi:>12,} / {runs:,}  {elapsed:7.1f} s  ({hi / elapsed:,.0f} rows/s)")
    execute("RESET synchronous_commit")
    inserted = time.perf_counter() - started
    execute("VACUUM ANALYZE jobs_schedule")
    execute("VACUUM ANALYZE jobs_jobrun")
    total = time.perf_counter() - started
    if not quiet:
        print(
            f"build: {schedules:,} schedules, {runs:,} runs (~{runs_per_schedule:.0f} per "
            f"schedule) in {total:.1f} s (inserts {inserted:.1f} s, VACUUM ANALYZE "
            f"{total - inserted:.1f} s); jobs_jobrun is {table_size('jobs_jobrun')}"
        )
        states = execute("SELECT state, count(*) FROM jobs_jobrun GROUP BY 1 ORDER BY 2 DESC")
        print("  states: " + ", ".join(f"{state} {count:,}" for state, count in states))


def table_size(table: str) -> str:
    return scalar("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))", [table])


def check_big_history() -> None:
    runs = scalar("SELECT count(*) FROM jobs_jobrun")
    schedules = scalar("SELECT count(*) FROM jobs_schedule")
    if runs < 10 * EMPTY_RUNS:
        raise SystemExit(f"saas_scale holds {runs:,} runs: build it first (without --skip-build)")
    print(
        f"reusing {schedules:,} schedules, {runs:,} runs; jobs_jobrun is {table_size('jobs_jobrun')}"
    )
    started = time.perf_counter()
    execute("VACUUM ANALYZE jobs_jobrun")  # the last run's prune left dead rows
    print(f"  VACUUM ANALYZE jobs_jobrun: {time.perf_counter() - started:.1f} s")


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    ms: dict[str, float] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)  # rows a list page says it found
    pages: dict[str, str] = field(default_factory=dict)  # page name -> URL
    prune_rows: int = 0
    prune_rows_per_s: float = float("nan")


def measure_phase(name: str) -> Phase:
    schedules = scalar("SELECT count(*) FROM jobs_schedule")
    runs = scalar("SELECT count(*) FROM jobs_jobrun")
    print(f"{name}: measuring on {schedules:,} schedules and {runs:,} runs")
    phase = Phase(name)
    reset_state()
    client = logged_in_client()
    phase.pages = page_urls()
    for page, url in phase.pages.items():
        phase.ms[page], phase.found[page] = time_page(client, url)
    phase.ms["tick"] = measure_tick()
    phase.ms["sweep"] = measure_sweep()
    phase.prune_rows, phase.prune_rows_per_s = measure_prune()
    # ms per 1,000 rows: a time like the other rows of the table, so that the ratio compares.
    phase.ms["prune"] = 1e6 / phase.prune_rows_per_s if phase.prune_rows else float("nan")
    return phase


def reset_state() -> None:
    """What a healthy site looks like now: every schedule's next slot a day ahead (so that
    only the schedules the tick step sets due fire), a scheduler and workers beating."""
    from django.utils import timezone

    from jobs.models import Heartbeat

    execute(
        "UPDATE jobs_schedule SET next_run_at = now() + interval '1 day'"
        " + mod(id, 3600) * interval '1 s' WHERE enabled"
    )
    execute("VACUUM ANALYZE jobs_schedule")
    now = timezone.now()
    beats = [(Heartbeat.Kind.SCHEDULER, "bench-host:100", {"last_lateness_s": 0.04})]
    beats += [(Heartbeat.Kind.WORKER, f"worker-{n}:4000", {"running": 2}) for n in range(4)]
    for kind, beat_name, info in beats:
        Heartbeat.objects.update_or_create(
            kind=kind,
            name=beat_name,
            defaults={"seen_at": now, "started_at": now - timedelta(hours=1), "info": info},
        )
    clear_broker()


def logged_in_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench-admin").first()
    if user is None:
        user = user_model.objects.create_superuser("bench-admin", "bench@example.com", None)
    client = Client(raise_request_exception=True)
    client.force_login(user)
    return client


def page_urls() -> dict[str, str]:
    """The pages, with parameters taken from this schema's data."""
    from django.urls import reverse

    from jobs.models import JobRun, Schedule

    schedules = reverse("admin:jobs_schedule_changelist")
    runs = reverse("admin:jobs_jobrun_changelist")
    count = Schedule.objects.filter(name__startswith="tenant-").count()
    middle = Schedule.objects.filter(name__startswith="tenant-").order_by("name")[count // 2]
    prefix = middle.name[: len("tenant-") + 5]  # the 100 schedules around the middle one
    dead = (
        JobRun.objects.filter(state=JobRun.State.DEAD, schedule__isnull=False)
        .order_by("-created_at")
        .only("id", "schedule_id")
        .first()
    )
    assert dead is not None, "no dead run"
    keyed = JobRun.objects.filter(key__isnull=False).order_by("-created_at").only("key").first()
    assert keyed is not None and keyed.key is not None, "no run with a key"
    key_prefix = keyed.key.rsplit(":", 1)[0] + ":"  # every report run of that tenant
    job = "billing.reconcile_day"
    return {
        "schedule list": schedules,
        "schedule list ?q=<name prefix>": f"{schedules}?q={prefix}",
        "schedule list ?last_state=dead": f"{schedules}?last_state=dead",
        f"schedule list ?job={job}": f"{schedules}?job={job}",
        "run list": runs,
        "run list ?state__exact=dead": f"{runs}?state__exact=dead",
        f"run list ?job={job}": f"{runs}?job={job}",
        "run list ?q=<8 hex of an id>": f"{runs}?q={str(dead.id)[:8]}",
        "run list ?q=<key prefix>": f"{runs}?q={key_prefix}",
        f"run list ?q=error:{ERROR_TEXT}": f"{runs}?q=error:{ERROR_TEXT.replace(' ', '+')}",
        "run change (dead run)": reverse("admin:jobs_jobrun_change", args=[dead.id]),
        "schedule change": reverse("admin:jobs_schedule_change", args=[dead.schedule_id]),
        "overview": reverse("admin:jobs_overview"),
    }


def time_page(client: Any, url: str) -> tuple[float, int]:
    """Median ms of REQUESTS requests after one warm-up; and the row count a list shows."""
    timings = []
    response = None
    for attempt in range(1 + REQUESTS):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code)
        if attempt:
            timings.append(elapsed)
    changelist = (response.context_data or {}).get("cl") if response is not None else None
    return statistics.median(timings), (changelist.result_count if changelist else -1)


def measure_tick() -> float:
    """Median ms of one tick firing TICK_DUE schedules (registered jobs, so each is sent)."""
    import dramatiq

    from jobs.db.connection import database_now
    from jobs.models import JobRun
    from jobs.scheduling.tick import tick

    due = tick_candidates()
    broker = dramatiq.get_broker()
    timings = []
    first = database_now()
    for attempt in range(1 + TICK_REPEAT):
        clear_broker()
        execute("UPDATE jobs_schedule SET next_run_at = now() WHERE id = ANY(%s)", [due])
        now = database_now()
        started = time.perf_counter()
        result = tick(now)
        elapsed = (time.perf_counter() - started) * 1000
        assert result.fired == result.sent == TICK_DUE, result
        assert broker.client.llen(f"{broker.namespace}:default") == TICK_DUE
        if attempt:
            timings.append(elapsed)
    # The ticks' runs are not history: gone, the sweep has nothing of theirs to repair and a
    # --skip-build run finds the same history.
    JobRun.objects.filter(schedule_id__in=due, scheduled_for__gte=first).delete()
    execute(
        "UPDATE jobs_schedule SET next_run_at = now() + interval '1 day' WHERE id = ANY(%s)", [due]
    )
    clear_broker()
    return statistics.median(timings)


def tick_candidates() -> list[int]:
    """TICK_DUE enabled cron schedules of registered jobs; added when the schema has fewer
    (the empty one), so that both ticks do the same work."""
    sql = (
        "SELECT id FROM jobs_schedule WHERE enabled AND kind = 'cron' AND overlap_policy = 'allow'"
        " AND job = ANY(%s) ORDER BY id LIMIT %s"
    )
    registered = registered_job_names()
    ids = [row[0] for row in execute(sql, [registered, TICK_DUE])]
    missing = TICK_DUE - len(ids)
    if missing > 0:
        execute(
            "INSERT INTO jobs_schedule (name, job, payload, kind, cron, timezone, enabled,"
            " paused_reason, misfire_policy, misfire_grace_seconds, overlap_policy,"
            " jitter_seconds, queue, priority, next_run_at, created_at, updated_at)"
            " SELECT 'tick-' || lpad(i::text, 7, '0'), 'jobs.prune_runs', '{}', 'cron',"
            " '* * * * *', 'UTC', true, '', 'skip', 60, 'allow', 0, '', 0,"
            " now() + interval '1 day', now(), now() FROM generate_series(1, %s) AS i",
            [missing],
        )
        ids = [row[0] for row in execute(sql, [registered, TICK_DUE])]
    return ids


def measure_sweep() -> float:
    """Median ms of the sweep; the warm-up call does whatever the history left to repair."""
    from jobs.scheduling.sweep import sweep

    timings = []
    for attempt in range(1 + REQUESTS):
        started = time.perf_counter()
        sweep()
        if attempt:
            timings.append((time.perf_counter() - started) * 1000)
    clear_broker()
    return statistics.median(timings)


class _PruneBudgetSpent(Exception):
    pass


class _BudgetClaim:
    """Stands in for the worker's claim: prune_runs reports progress after each batch, which
    is where the measurement stops it once the budget is spent (its batches so far are
    committed)."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.monotonic() + budget_s

    def progress(self, percent: int, message: str = "") -> None:
        if time.monotonic() > self.deadline:
            raise _PruneBudgetSpent(message)


def measure_prune() -> tuple[int, float]:
    """The real jobs.prune_runs, with a retention that deletes ~PRUNE_SHARE of the succeeded
    runs (whole days: it takes days), stopped after PRUNE_BUDGET_S; (rows deleted, rows/s)."""
    from django.utils import timezone

    from jobs.builtin_jobs import prune_runs

    succeeded = scalar("SELECT count(*) FROM jobs_jobrun WHERE state = 'succeeded'")
    target = max(1, min(PRUNE_MAX, int(succeeded * PRUNE_SHARE)))
    # The finished_at of the target-th oldest succeeded run: keep runs newer than that.
    oldest = scalar(
        "SELECT finished_at FROM jobs_jobrun WHERE state = 'succeeded' AND finished_at IS NOT NULL"
        " ORDER BY finished_at OFFSET %s LIMIT 1",
        [target - 1],
    )
    now = timezone.now()
    days = max(1, round((now - oldest) / timedelta(days=1)))
    cutoff = now - timedelta(days=days)
    older = "SELECT count(*) FROM jobs_jobrun WHERE state = 'succeeded' AND finished_at < %s"
    before = scalar(older, [cutoff])
    claim = _BudgetClaim(PRUNE_BUDGET_S)
    started = time.perf_counter()
    stopped = False
    with mock.patch("jobs.worker.claim.current_claim", lambda: claim):
        try:
            prune_runs.fn(succeeded_days=days)
        except _PruneBudgetSpent:
            stopped = True
    elapsed = time.perf_counter() - started
    deleted = before - scalar(older, [cutoff])
    note = f", stopped after {PRUNE_BUDGET_S:.0f} s" if stopped else ""
    print(
        f"  prune: succeeded_days={days}: {deleted:,} of {before:,} rows in {elapsed:.1f} s{note}"
    )
    return deleted, deleted / elapsed if deleted else float("nan")


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def report(empty: Phase, big: Phase) -> None:
    """The table; "rows" is what a list page says it found, empty / big (a filtered list of
    the empty set shows fewer rows than a full page, which costs less to render)."""
    width = max(len(name) for name in big.ms) + 2
    print()
    print(f"{'page / step':<{width}} {'empty ms':>9} {'big ms':>9} {'ratio':>7}  rows")
    for name in big.ms:
        label = name if name != "prune" else "prune (ms per 1,000 rows)"
        ratio = big.ms[name] / empty.ms[name]
        rows = (
            f"{empty.found[name]:,} / {big.found[name]:,}" if big.found.get(name, -1) >= 0 else ""
        )
        print(f"{label:<{width}} {empty.ms[name]:>9.1f} {big.ms[name]:>9.1f} {ratio:>7.2f}  {rows}")
    print(
        f"prune: {empty.prune_rows_per_s:,.0f} rows/s empty ({empty.prune_rows:,} rows), "
        f"{big.prune_rows_per_s:,.0f} rows/s big ({big.prune_rows:,} rows)"
    )
    print()
    for name in slowest_pages(big):
        queries = page_queries(big.pages[name])
        in_sql = sum(ms for ms, _ in queries)
        print(
            f"slowest queries of {name!r} (big: {big.ms[name]:.0f} ms, of which "
            f"{len(queries)} queries {in_sql:.0f} ms):"
        )
        for ms, sql in queries[:2]:
            print(f"  {ms:8.1f} ms  {abbreviate(sql)}")


def slowest_pages(phase: Phase) -> list[str]:
    return sorted(phase.pages, key=lambda name: phase.ms[name], reverse=True)[:SLOW_PAGES]


def page_queries(url: str) -> list[tuple[float, str]]:
    """The page's queries, slowest first (one request with Django's query capture)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = logged_in_client()
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    timed = [(float(q["time"]) * 1000, q["sql"]) for q in queries.captured_queries]
    return sorted(timed, reverse=True)


def abbreviate(sql: str, limit: int = 240) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[: limit - 3] + "..."


def explain_slowest(phase: Phase) -> None:
    for name in slowest_pages(phase):
        ms, sql = page_queries(phase.pages[name])[0]
        print(f"EXPLAIN ANALYZE of the slowest query of {name!r} ({ms:.0f} ms):")
        for (line,) in execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"):
            print(f"  {line}")


if __name__ == "__main__":
    main()

"""The overview page: schedulers and workers seen, queue depths, runs per hour, late schedules."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dramatiq
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncHour
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from jobs.admin.html import seconds_text
from jobs.broker.introspection import queue_lengths
from jobs.conf import jobs_settings
from jobs.models import Heartbeat, JobRun, Schedule

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


logger = logging.getLogger(__name__)

State = JobRun.State
PREVIEW_COUNT = 10
SCHEDULER_STALE_SECONDS = 90
"""A scheduler heartbeat older than this is stale: the loop beats every tick (about once a
second) and the crontab trigger once a minute."""


@dataclass(frozen=True)
class QueueDepth:
    name: str
    ready: int
    delayed: int
    dead: int


def queue_depths(queue_names: Iterable[str] = ()) -> tuple[list[QueueDepth] | None, str]:
    """Messages waiting per queue, read from the broker: (rows, "") on Redis, (None, why) for
    other brokers or when Redis does not answer."""
    broker = dramatiq.get_broker()
    try:
        lengths = queue_lengths(broker, list(queue_names))
    except Exception as exc:  # the page must still show the database's view
        logger.warning("queue depths unavailable: %s", exc)
        return None, f"unavailable ({type(exc).__name__}: {exc})"
    if lengths is None:
        return None, f"n/a ({type(broker).__name__} does not expose queue lengths)"
    return [QueueDepth(*row) for row in lengths], ""


@dataclass(frozen=True)
class Bar:
    x: int
    ok_y: int
    ok_h: int
    bad_y: int
    bad_h: int
    label: str
    title: str
    show_label: bool


_HOUR_CACHE_SECONDS = 26 * 3600


def _hourly_counts(
    buckets: list[datetime], current: datetime, now: datetime
) -> dict[tuple[datetime, str], int]:
    """Finished runs per hour and state. A past hour's counts no longer change (a finished run
    stays finished), so each is counted once and kept in the cache; a page view counts only the
    current hour and any past hour not cached yet. On a busy site that is about 60,000 rows
    instead of 1.4 million."""
    # Cached once the hour ended a few minutes ago by this host's clock: finished_at is the
    # database's, and the two may differ a little.
    settled = current if now.minute >= 5 else current - timedelta(hours=1)
    keys = {hour: f"jobs:runs-per-hour:{hour:%Y%m%d%H}" for hour in buckets if hour < settled}
    cached = cache.get_many(list(keys.values()))
    counts: dict[tuple[datetime, str], int] = {}
    missing = [hour for hour in buckets if keys.get(hour) not in cached]
    for hour, key in keys.items():
        for state, n in cached.get(key, {}).items():
            counts[(hour, state)] = n
    if missing:
        rows = (
            JobRun.objects.filter(
                finished_at__gte=missing[0],
                finished_at__lt=missing[-1] + timedelta(hours=1),
                state__in=[State.SUCCEEDED, State.DEAD],
            )
            .annotate(hour=TruncHour("finished_at", tzinfo=UTC))
            .values("hour", "state")
            .annotate(n=Count("id"))
            .order_by()
        )
        fresh: dict[datetime, dict[str, int]] = {hour: {} for hour in missing}
        for row in rows:
            if row["hour"] in fresh:
                fresh[row["hour"]][row["state"]] = row["n"]
                counts[(row["hour"], row["state"])] = row["n"]
        cache.set_many(
            {keys[hour]: value for hour, value in fresh.items() if hour in keys},
            _HOUR_CACHE_SECONDS,
        )
    return counts


def runs_per_hour(now: datetime, hours: int = 24) -> tuple[list[Bar], int, int]:
    """Stacked bars of finished runs per hour (succeeded below, dead above) for the last
    `hours` hours, the current hour last; also the totals."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first = current - timedelta(hours=hours - 1)
    buckets = [first + timedelta(hours=i) for i in range(hours)]
    counts = _hourly_counts(buckets, current, now)
    peak = max(
        [
            1,
            *(
                counts.get((h, State.SUCCEEDED), 0) + counts.get((h, State.DEAD), 0)
                for h in buckets
            ),
        ]
    )
    height, width, gap = 100, 16, 4
    bars = []
    for i, hour in enumerate(buckets):
        ok = counts.get((hour, State.SUCCEEDED), 0)
        bad = counts.get((hour, State.DEAD), 0)
        ok_h = round(ok * height / peak)
        bad_h = round(bad * height / peak)
        local = timezone.localtime(hour)
        bars.append(
            Bar(
                x=i * (width + gap),
                ok_y=height - ok_h,
                ok_h=ok_h,
                bad_y=height - ok_h - bad_h,
                bad_h=bad_h,
                label=f"{local:%H}",
                title=f"{local:%Y-%m-%d %H:00}: {ok} succeeded, {bad} failed",
                show_label=i % 3 == 0 or i == hours - 1,
            )
        )
    total_ok = sum(v for (_, s), v in counts.items() if s == State.SUCCEEDED)
    total_bad = sum(v for (_, s), v in counts.items() if s == State.DEAD)
    return bars, total_ok, total_bad


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    seen_at: datetime
    source: str
    running: int | None
    clock_skew_s: float | None = None


def _skew(info: dict[str, Any]) -> float | None:
    """The host's clock minus the database's, as the process last measured it (seconds)."""
    skew = info.get("clock_skew_s")
    # + 0.0: a skew of -0.01 s reads "0.0 s", not "-0.0 s"
    return round(float(skew), 1) + 0.0 if isinstance(skew, int | float) else None


def workers_seen(now: datetime) -> list[WorkerSeen]:
    """Workers that showed a sign of life within JOBS_WORKER_SEEN_SECONDS: a heartbeat, or a
    run they started, finished or still hold a live lease on (older workers write no
    heartbeat). Both sources use indexes (running runs; finished_at)."""
    cutoff = now - timedelta(seconds=jobs_settings().WORKER_SEEN_SECONDS)
    seen: dict[str, WorkerSeen] = {}
    for beat in Heartbeat.objects.filter(kind=Heartbeat.Kind.WORKER, seen_at__gte=cutoff):
        info = beat.info if isinstance(beat.info, dict) else {}
        running = info.get("running")
        seen[beat.name] = WorkerSeen(
            beat.name,
            beat.seen_at,
            "heartbeat",
            running if isinstance(running, int) else None,
            _skew(info),
        )
    derived = (
        # Both arms through an index: running runs (the lease index), finished ones by state
        # and time (jobs_run_state_finished_idx).
        JobRun.objects.filter(
            Q(state=State.RUNNING) | Q(state__in=JobRun.FINISHED_STATES, finished_at__gte=cutoff)
        )
        .exclude(worker="")
        .filter(
            Q(started_at__gte=cutoff)
            | Q(finished_at__gte=cutoff)
            | Q(state=State.RUNNING, lease_expires_at__gte=now)
        )
        .values("worker")
        .annotate(
            last_start=Max("started_at"),
            last_finish=Max("finished_at"),
            running=Count("id", filter=Q(state=State.RUNNING, lease_expires_at__gte=now)),
        )
        .order_by()
    )
    for row in derived:
        name = row["worker"]
        stamps = [t for t in (row["last_start"], row["last_finish"]) if t is not None]
        last = max(stamps) if stamps else now
        if row["running"]:
            last = now  # a live lease is renewed by the worker right now
        if name in seen:
            if last > seen[name].seen_at:
                old = seen[name]
                seen[name] = WorkerSeen(name, last, old.source, old.running, old.clock_skew_s)
            continue
        seen[name] = WorkerSeen(name, last, "runs", row["running"])
    return sorted(seen.values(), key=lambda w: w.name)


def overview_context(now: datetime) -> dict[str, Any]:
    """Everything the overview page shows, each from one query (or one Redis pipeline)."""
    schedulers = list(
        Heartbeat.objects.filter(kind=Heartbeat.Kind.SCHEDULER).order_by("-seen_at")[:10]
    )
    latest = schedulers[0] if schedulers else None
    age = (now - latest.seen_at) if latest else None
    fresh = [b for b in schedulers if (now - b.seen_at).total_seconds() <= SCHEDULER_STALE_SECONDS]
    # A scheduler that still beats but whose last tick failed (say, a query error) is not
    # healthy, even when another one ticks fine.
    failing = [b for b in fresh if b.last_error]
    healthy = bool(fresh) and not failing
    lateness = (
        latest.info.get("last_lateness_s") if latest and isinstance(latest.info, dict) else None
    )
    late = sorted(Schedule.objects.late(now), key=lambda s: s.next_run_at or now)[:50]
    queues, queues_note = queue_depths(
        Schedule.objects.exclude(queue="").values_list("queue", flat=True).distinct()
    )
    bars, total_ok, total_bad = runs_per_hour(now)
    dead = list(
        JobRun.objects.filter(state=State.DEAD)
        .select_related("schedule")
        .only(
            "id", "job", "state", "error", "finished_at", "attempts", "schedule__name", "created_at"
        )
        .order_by("-created_at")[:15]  # jobs_run_dead_idx
    )
    return {
        "now": now,
        "schedulers": [
            {
                "beat": beat,
                "age": seconds_text(now - beat.seen_at),
                "fresh": (now - beat.seen_at).total_seconds() <= SCHEDULER_STALE_SECONDS,
                "clock_skew_s": _skew(beat.info if isinstance(beat.info, dict) else {}),
            }
            for beat in schedulers
        ],
        "scheduler_healthy": healthy,
        "schedulers_failing": failing,
        "scheduler_age": seconds_text(age) if age is not None else None,
        "scheduler_lateness": lateness,
        "stale_after": SCHEDULER_STALE_SECONDS,
        "workers": workers_seen(now),
        "worker_window": jobs_settings().WORKER_SEEN_SECONDS,
        "queues": queues,
        "queues_note": queues_note,
        "bars": bars,
        "chart_width": len(bars) * 20,
        "total_ok": total_ok,
        "total_bad": total_bad,
        "late": [
            {"schedule": s, "late_by": seconds_text(now - s.next_run_at) if s.next_run_at else "—"}
            for s in late
        ],
        "dead": dead,
    }


def overview_view(request: HttpRequest, model_admin: ModelAdmin[Schedule]) -> HttpResponse:
    """Scheduler health, workers, queues, throughput and failures on one page (staff who may
    view schedules or runs)."""
    user = request.user
    if not (
        model_admin.has_view_or_change_permission(request) or user.has_perm("jobs.view_jobrun")
    ):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Jobs overview",
        "opts": model_admin.opts,
        "can_view_runs": user.has_perm("jobs.view_jobrun"),
        **overview_context(timezone.now()),
    }
    return TemplateResponse(request, "admin/jobs/overview.html", context)

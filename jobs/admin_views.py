"""Admin pages beyond the model admins: the schedule preview endpoint and the overview page,
plus the small HTML pieces (badges, sparklines, charts) the admin shows.

Every user-supplied string reaches HTML through format_html or the template engine, so it is
escaped; nothing here builds markup by concatenating raw text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import dramatiq
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncHour
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from jobs import schedules
from jobs.broker import queue_lengths
from jobs.conf import jobs_settings
from jobs.forms import PreviewForm
from jobs.models import Heartbeat, JobRun, Schedule
from jobs.registry import registered_jobs
from jobs.services import TIMING_FIELDS

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

logger = logging.getLogger(__name__)

State = JobRun.State
PREVIEW_COUNT = 10
SCHEDULER_STALE_SECONDS = 90
"""A scheduler heartbeat older than this is stale: the loop beats every tick (about once a
second) and the crontab trigger once a minute."""

# ---------------------------------------------------------------------------------------------
# Small HTML pieces
# ---------------------------------------------------------------------------------------------

_BADGE_CLASS: dict[str, str] = {
    State.SUCCEEDED: "ok",
    State.DEAD: "bad",
    State.CANCELLED: "muted",
    State.SKIPPED: "muted",
    State.RUNNING: "active",
    State.RETRYING: "warn",
    State.QUEUED: "wait",
    State.PENDING: "wait",
}


def state_badge(state: str | None) -> SafeString:
    """A coloured badge for a run state (or a dash when there is none)."""
    if not state:
        return format_html('<span class="jobs-badge jobs-badge-none">{}</span>', "never run")
    label = State(state).label if state in State.values else state
    return format_html(
        '<span class="jobs-badge jobs-badge-{}" data-state="{}">{}</span>',
        _BADGE_CLASS.get(state, "muted"),
        state,
        label,
    )


_SPARK_COLOUR: dict[str, str] = {State.SUCCEEDED: "#2e7d32", State.DEAD: "#c62828"}
_ESCAPED_STATES: dict[str, str] = {str(state): str(escape(state)) for state in State.values}


def sparkline(runs: Sequence[Any], width: int = 30) -> SafeString:
    """Inline SVG of runs (newest last): one bar per run, green succeeded, red dead, grey
    anything else; each bar's tooltip names the run's state and time. A run is anything with
    `state`, `scheduled_for` and `created_at` (a JobRun, or a row of recent_runs())."""
    if not runs:
        return format_html('<span class="jobs-quiet">{}</span>', "no runs")
    bar, gap, height = 4, 1, 16
    ordered = list(reversed(runs[:width]))  # runs come newest first
    # A page of 100 schedules draws 3,000 bars: built as plain strings (each value escaped
    # once) rather than by format_html per bar, and each time converted with one tzinfo,
    # which together took more than half of the page's time.
    tz = timezone.get_current_timezone()
    rects = "".join(
        f'<rect x="{i * (bar + gap)}" y="0" width="{bar}" height="{height}" '
        f'fill="{_SPARK_COLOUR.get(run.state, "#9e9e9e")}" class="jobs-spark-{state}">'
        f"<title>{state} {_stamp_in(run.scheduled_for or run.created_at, tz)}</title></rect>"
        for i, run in enumerate(ordered)
        for state in (_ESCAPED_STATES.get(run.state) or escape(run.state),)
    )
    ok = sum(1 for r in ordered if r.state == State.SUCCEEDED)
    dead = sum(1 for r in ordered if r.state == State.DEAD)
    return format_html(
        '<svg class="jobs-sparkline" width="{}" height="{}" role="img" aria-label="{}">{}</svg>',
        len(ordered) * (bar + gap),
        height,
        f"last {len(ordered)} runs: {ok} succeeded, {dead} dead",
        mark_safe(rects),  # noqa: S308 - numbers, fixed colours, escaped states and times
    )


def _stamp_in(dt: datetime | None, tz: Any) -> str:
    """A time in `tz` (looked up once by a caller that formats many)."""
    if dt is None:
        return "—"
    try:
        return f"{dt.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"
    except OverflowError:  # a time next to year 1 or 9999, stored before it was refused
        return f"{dt:%Y-%m-%d %H:%M:%S} UTC"


def progress_bar(run: JobRun) -> SafeString:
    return format_html(
        '<progress class="jobs-progress" max="100" value="{}" title="{}">{}%</progress> '
        '<span class="jobs-quiet">{}</span>',
        run.progress,
        f"{run.progress}%",
        run.progress,
        run.progress_message,
    )


def _stamp(dt: datetime | None, tz: ZoneInfo | None = None) -> str:
    return _stamp_in(dt, tz or timezone.get_current_timezone())


def relative(dt: datetime | None, now: datetime | None = None) -> str:
    """'in 3 minutes' / '2 hours ago' (the largest unit only)."""
    if dt is None:
        return "—"
    now = now or timezone.now()
    seconds = abs((dt - now).total_seconds())
    if seconds < 60:  # timesince() would say "0 minutes"
        text = f"{int(seconds)}\xa0second{'' if int(seconds) == 1 else 's'}"
    else:
        text = timeuntil(dt, now, depth=1) if dt >= now else timesince(dt, now, depth=1)
    return f"in {text}" if dt >= now else f"{text} ago"


def when(dt: datetime | None, now: datetime | None = None) -> SafeString:
    """A time shown relative, with the absolute time next to it (and as a tooltip)."""
    if dt is None:
        return format_html("{}", "—")
    local = timezone.localtime(dt)
    return format_html(
        '<span class="jobs-when" title="{}">{}<br><span class="jobs-quiet">{}</span></span>',
        dt.astimezone(UTC).isoformat(),
        relative(dt, now),
        f"{local:%Y-%m-%d %H:%M %Z}",
    )


def seconds_text(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 60:
        return f"{sign}{total:.1f} s"
    minutes, seconds = divmod(int(total), 60)
    if minutes < 60:
        return f"{sign}{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours} h {minutes} min"
    return f"{sign}{hours // 24} d {hours % 24} h"


# ---------------------------------------------------------------------------------------------
# Describing and previewing a schedule's timing
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def describe_cron(expr: str) -> str:
    """cron-descriptor's English for a (normalised) cron expression; the expression itself if
    the descriptor does not understand it (cronsim accepts a few forms it does not)."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(ExpressionDescriptor(expr, options).get_description())
    except Exception:  # any descriptor failure: show the expression rather than fail the page
        return expr


def describe_interval(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return f"Every {seconds} seconds"  # pragma: no cover - size 1 always divides


def describe_timing(timing: schedules.Timing) -> str:
    """One line an operator can read: "At 02:30 (Europe/Berlin)", "Every 15 minutes"..."""
    try:
        tz = schedules.parse_timezone(timing.timezone)
    except schedules.ScheduleError:
        tz = ZoneInfo("UTC")
    if timing.kind == Schedule.Kind.CRON:
        try:
            expr = schedules.normalize_cron(timing.cron)
        except schedules.ScheduleError:
            return f"Invalid cron expression {timing.cron!r}"
        text = f"{describe_cron(expr)} ({tz.key})"
    elif timing.kind == Schedule.Kind.INTERVAL:
        seconds = int(timing.interval.total_seconds()) if timing.interval else 0
        text = describe_interval(seconds) if seconds > 0 else "No interval set"
    else:
        text = f"Once, at {_stamp(timing.run_at, tz)}" if timing.run_at else "Once (no time set)"
    if timing.starts_at:
        text += f", from {_stamp(timing.starts_at, tz)}"
    if timing.ends_at:
        text += f", until {_stamp(timing.ends_at, tz)}"
    return text


def describe_schedule(schedule: Schedule) -> str:
    return describe_timing(schedule.timing())


def timing_errors(timing: schedules.Timing) -> dict[str, list[str]]:
    """Field errors of a timing (form field names), checking the zone and the cron expression
    on their own so both are reported at once."""
    errors: dict[str, list[str]] = {}
    try:
        schedules.parse_timezone(timing.timezone)
    except schedules.ScheduleError as exc:
        errors["timezone"] = [exc.message]
    if timing.kind == Schedule.Kind.CRON:
        try:
            schedules.normalize_cron(timing.cron)
        except schedules.ScheduleError as exc:
            errors["cron"] = [exc.message]
    if not errors:
        try:
            timing.validate()
        except schedules.ScheduleError as exc:
            errors.setdefault(TIMING_FIELDS.get(exc.field, "__all__"), []).append(exc.message)
    return errors


def preview_data(
    timing: schedules.Timing, now: datetime, count: int = PREVIEW_COUNT
) -> dict[str, Any]:
    """The description and the next `count` fire times, local and UTC, with DST notes.
    The timing must be valid (see timing_errors)."""
    tz = schedules.parse_timezone(timing.timezone)
    slots = schedules.fire_times(timing, now, count)
    rows = []
    for slot in slots:
        local = slot.astimezone(tz)
        rows.append(
            {
                "utc_iso": slot.isoformat(),
                "local": f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}",
                "utc": f"{slot:%a %Y-%m-%d %H:%M} UTC",
                "relative": relative(slot, now),
                "note": schedules.dst_note(timing, slot) or "",
            }
        )
    return {
        "description": describe_timing(timing),
        "timezone": tz.key,
        "fire_times": rows,
        "empty": "" if rows else "No more runs: every slot of this timing is in the past.",
    }


def schedule_preview_html(schedule: Schedule, preview_url: str) -> SafeString:
    """The preview box of the schedule form (server-rendered; the script refreshes it)."""
    from django.template.loader import render_to_string

    timing = schedule.timing()
    blank = schedule.pk is None and not (
        schedule.cron or schedule.interval_seconds or schedule.run_at
    )
    errors = {} if blank else timing_errors(timing)
    data = None if blank or errors else preview_data(timing, timezone.now())
    return SafeString(
        render_to_string(
            "admin/jobs/schedule/preview.html",
            {
                "preview": data,
                "errors": [m for messages in errors.values() for m in messages],
                "preview_url": preview_url,
                "schedule": schedule,
                "paused": schedule.pk is not None and not schedule.enabled,
                "blank": blank,
            },
        )
    )


def _job_info(name: str) -> dict[str, Any] | None:
    spec = registered_jobs().get(name)
    if spec is None:
        return None
    return {
        "name": spec.name,
        "description": spec.description,
        "schema": spec.json_schema(),
    }


def schedule_preview_view(request: HttpRequest, model_admin: ModelAdmin[Schedule]) -> HttpResponse:
    """GET: the description and next fire times of the timing in the query string (the schedule
    form's fields), as JSON; 400 with {"errors": {field: [message]}} for bad input."""
    if not (
        model_admin.has_view_or_change_permission(request)
        or model_admin.has_add_permission(request)
    ):
        return JsonResponse({"errors": {"__all__": ["Permission denied."]}}, status=403)
    form = PreviewForm(request.GET)
    if not form.is_valid():
        errors = {field: [str(m) for m in messages] for field, messages in form.errors.items()}
        return JsonResponse({"errors": errors}, status=400)
    data = form.cleaned_data
    now = timezone.now()
    anchor = now
    if data["schedule"] is not None:
        created = (
            Schedule.objects.filter(pk=data["schedule"])
            .values_list("created_at", flat=True)
            .first()
        )
        anchor = created or now
    interval = data["interval_seconds"]
    timing = schedules.Timing(
        kind=data["kind"],
        timezone=data["timezone"],
        cron=data["cron"],
        interval=timedelta(seconds=interval) if interval else None,
        run_at=data["run_at"],
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
        anchor=anchor if data["kind"] == Schedule.Kind.INTERVAL else None,
    )
    job = _job_info(data["job"]) if data["job"] else None
    errors = timing_errors(timing)
    if errors:
        return JsonResponse({"errors": errors, "job": job}, status=400)
    try:
        body = preview_data(timing, now)
    except (ValueError, OverflowError) as exc:  # e.g. a bound near year 9999
        return JsonResponse({"errors": {"__all__": [str(exc)]}, "job": job}, status=400)
    body["job"] = job
    return JsonResponse(body)


# ---------------------------------------------------------------------------------------------
# Overview page
# ---------------------------------------------------------------------------------------------


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

"""The small HTML pieces the admin shows: state badges, sparklines, progress bars, times.

Every user-supplied string reaches HTML through format_html or the template engine, so it is
escaped; nothing here builds markup by concatenating raw text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from jobs.models import JobRun

if TYPE_CHECKING:
    pass


State = JobRun.State


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


def stamp(dt: datetime | None, tz: ZoneInfo | None = None) -> str:
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

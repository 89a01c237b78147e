"""One line an operator can read for a schedule's timing ("At 02:30 (Europe/Berlin)")."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jobs.admin.html import stamp
from jobs.models import Schedule
from jobs.timing import ScheduleError, Timing, normalize_cron, parse_timezone

if TYPE_CHECKING:
    pass


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


def describe_timing(timing: Timing) -> str:
    """One line an operator can read: "At 02:30 (Europe/Berlin)", "Every 15 minutes"..."""
    try:
        tz = parse_timezone(timing.timezone)
    except ScheduleError:
        tz = ZoneInfo("UTC")
    if timing.kind == Schedule.Kind.CRON:
        try:
            expr = normalize_cron(timing.cron)
        except ScheduleError:
            return f"Invalid cron expression {timing.cron!r}"
        text = f"{describe_cron(expr)} ({tz.key})"
    elif timing.kind == Schedule.Kind.INTERVAL:
        seconds = int(timing.interval.total_seconds()) if timing.interval else 0
        text = describe_interval(seconds) if seconds > 0 else "No interval set"
    else:
        text = f"Once, at {stamp(timing.run_at, tz)}" if timing.run_at else "Once (no time set)"
    if timing.starts_at:
        text += f", from {stamp(timing.starts_at, tz)}"
    if timing.ends_at:
        text += f", until {stamp(timing.ends_at, tz)}"
    return text


def describe_schedule(schedule: Schedule) -> str:
    return describe_timing(schedule.timing())

"""Billing periods: pure date arithmetic, no Django.

A subscription is billed in consecutive periods counted from its anchor date (the day it
started). Periods are inclusive date ranges ("2026-11-01/2026-11-30"), so "the period that
ended on D" is the one whose last day is D.

Month and year periods are computed from the anchor every time, never from the previous
period: a subscription anchored on 31 January runs Jan 31 - Feb 27, Feb 28 - Mar 30,
Mar 31 - Apr 29, ... (the day is clamped to the month's length, and comes back to 31 as soon
as the month has one), as payment providers do. Chaining from the previous period would drift
to the 28th forever after February.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = [
    "INTERVALS",
    "Period",
    "add_months",
    "nth_period",
    "period_containing",
    "period_ending_on",
]

INTERVALS = ("day", "week", "month", "year")
_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Period:
    """An inclusive range of dates: both `start` and `end` are billed days."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"a period cannot end ({self.end}) before it starts ({self.start})")

    def __str__(self) -> str:
        # ISO 8601 interval notation; used in idempotency keys, so never change it.
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def add_months(anchor: date, months: int) -> date:
    """`anchor` moved by `months` calendar months, its day clamped to the month's length."""
    years, month0 = divmod(anchor.month - 1 + months, 12)
    year = anchor.year + years
    day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
    return date(year, month0 + 1, day)


def _check(interval: str, count: int) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}")
    if count < 1:
        raise ValueError(f"interval_count must be at least 1, not {count}")


def _start(anchor: date, interval: str, count: int, index: int) -> date:
    if interval == "day":
        return anchor + timedelta(days=index * count)
    if interval == "week":
        return anchor + timedelta(days=7 * index * count)
    if interval == "month":
        return add_months(anchor, index * count)
    return add_months(anchor, 12 * index * count)


def nth_period(anchor: date, interval: str, count: int, index: int) -> Period:
    """Period number `index` (0 is the first) of a subscription anchored on `anchor`."""
    _check(interval, count)
    if index < 0:
        raise ValueError("period indexes start at 0")
    start = _start(anchor, interval, count, index)
    return Period(start, _start(anchor, interval, count, index + 1) - _DAY)


def period_containing(anchor: date, interval: str, count: int, day: date) -> Period | None:
    """The period that `day` falls in, or None before the anchor."""
    _check(interval, count)
    if day < anchor:
        return None
    if interval in ("day", "week"):
        length = count * (7 if interval == "week" else 1)
        index = (day - anchor).days // length
    else:
        step = count * (12 if interval == "year" else 1)
        months = (day.year - anchor.year) * 12 + day.month - anchor.month
        index = months // step
        # Clamping can put a period's start a few days either side of the naive estimate.
        while index > 0 and _start(anchor, interval, count, index) > day:
            index -= 1
        while _start(anchor, interval, count, index + 1) <= day:
            index += 1
    return nth_period(anchor, interval, count, index)


def period_ending_on(anchor: date, interval: str, count: int, day: date) -> Period | None:
    """The period whose last day is `day`, or None if no period ends that day."""
    period = period_containing(anchor, interval, count, day)
    return period if period is not None and period.end == day else None

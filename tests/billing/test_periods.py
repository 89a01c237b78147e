"""Billing periods: pure date arithmetic, checked by examples and properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.periods import (
    Period,
    add_months,
    nth_period,
    period_containing,
    period_ending_on,
)

anchors = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
intervals = st.sampled_from(["day", "week", "month", "year"])
counts = st.integers(min_value=1, max_value=3)


def test_a_monthly_period_anchored_on_the_31st_comes_back_to_the_31st() -> None:
    starts = [nth_period(date(2026, 1, 31), "month", 1, k).start for k in range(4)]
    assert starts == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    assert nth_period(date(2026, 1, 31), "month", 1, 0) == Period(
        date(2026, 1, 31), date(2026, 2, 27)
    )


def test_a_daily_period_is_one_day_and_ends_on_itself() -> None:
    assert period_ending_on(date(2026, 11, 1), "day", 1, date(2026, 11, 3)) == Period(
        date(2026, 11, 3), date(2026, 11, 3)
    )
    assert str(Period(date(2026, 11, 1), date(2026, 11, 30))) == "2026-11-01/2026-11-30"


def test_no_period_ends_mid_month_or_before_the_anchor() -> None:
    assert period_ending_on(date(2026, 11, 1), "month", 1, date(2026, 11, 15)) is None
    assert period_ending_on(date(2026, 11, 1), "month", 1, date(2026, 11, 30)) is not None
    assert period_containing(date(2026, 11, 1), "day", 1, date(2026, 10, 31)) is None


def test_bad_intervals_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown interval 'fortnight'"):
        nth_period(date(2026, 1, 1), "fortnight", 1, 0)
    with pytest.raises(ValueError, match="interval_count must be at least 1"):
        nth_period(date(2026, 1, 1), "day", 0, 0)
    with pytest.raises(ValueError, match="cannot end"):
        Period(date(2026, 1, 2), date(2026, 1, 1))


@given(anchor=anchors, months=st.integers(min_value=-240, max_value=240))
def test_add_months_keeps_the_anchor_day_when_the_month_has_it(anchor: date, months: int) -> None:
    moved = add_months(anchor, months)
    assert (moved.year * 12 + moved.month) - (anchor.year * 12 + anchor.month) == months
    assert moved.day == anchor.day or (moved.day < anchor.day and (moved + timedelta(1)).day == 1)


@given(anchor=anchors, interval=intervals, count=counts, index=st.integers(0, 40))
def test_periods_tile_the_calendar_without_gaps_or_overlaps(
    anchor: date, interval: str, count: int, index: int
) -> None:
    this = nth_period(anchor, interval, count, index)
    following = nth_period(anchor, interval, count, index + 1)
    assert following.start == this.end + timedelta(days=1)
    assert this.start >= anchor


@given(anchor=anchors, interval=intervals, count=counts, offset=st.integers(0, 2000))
def test_every_day_after_the_anchor_is_in_exactly_the_period_found_for_it(
    anchor: date, interval: str, count: int, offset: int
) -> None:
    day = anchor + timedelta(days=offset)
    period = period_containing(anchor, interval, count, day)
    assert period is not None and period.start <= day <= period.end
    ending = period_ending_on(anchor, interval, count, day)
    assert (ending is not None) == (period.end == day)

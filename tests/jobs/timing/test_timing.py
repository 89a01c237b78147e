"""Tests for jobs.timing, the scheduler's time engine.

The cron property tests compare against an independent brute-force oracle: it walks every real
UTC minute, converts it to the zone's wall clock with zoneinfo, and matches it against value
sets computed by the test's own expression generator (not by cronsim), applying the DST rules
of the spec:

* a schedule that fires in every hour of the day follows real time (every real instant whose
  wall time matches);
* any other schedule fires at the first occurrence of a repeated wall time, and a wall time
  skipped by a spring-forward fires once, at the instant the clocks jump.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from cronsim import CronSim
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jobs.timing import (
    CRON_ALIASES,
    DuePlan,
    ScheduleError,
    Timing,
    dst_note,
    fire_times,
    next_fire,
    normalize_cron,
    parse_timezone,
    plan_due,
    slot_jitter,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
ZONES = [BERLIN, NEW_YORK, LORD_HOWE]
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)

# (zone, local date, "spring" | "fall"). Verified against zoneinfo in test_dst_days_are_real.
DST_DAYS = [
    (BERLIN, date(2026, 3, 29), "spring"),
    (BERLIN, date(2026, 10, 25), "fall"),
    (NEW_YORK, date(2026, 3, 8), "spring"),
    (NEW_YORK, date(2026, 11, 1), "fall"),
    (LORD_HOWE, date(2026, 10, 4), "spring"),
    (LORD_HOWE, date(2026, 4, 5), "fall"),
]

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local_day_bounds(zone: str, day: date) -> tuple[datetime, datetime]:
    """UTC instants of local midnight starting `day` and the next day (midnight is never
    skipped or repeated in the three test zones)."""
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    nxt = day + DAY
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)
    return start, end


def slots_in(timing: Timing, lo: datetime, hi: datetime) -> list[datetime]:
    """All slots in [lo, hi), via the public API."""
    out: list[datetime] = []
    cursor = lo - TICK
    while True:
        batch = fire_times(timing, cursor, 500)
        for slot in batch:
            if slot >= hi:
                return out
            out.append(slot)
        if len(batch) < 500:
            return out
        cursor = batch[-1]


def gaps(slots: list[datetime]) -> list[timedelta]:
    # Subtract in UTC: Python subtracts aware datetimes sharing a tzinfo as wall-clock times.
    return [b.astimezone(UTC) - a.astimezone(UTC) for a, b in zip(slots, slots[1:], strict=False)]


def offset(dt: datetime, tz: ZoneInfo) -> timedelta:
    value = dt.astimezone(tz).utcoffset()
    assert value is not None
    return value


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """DST transition instants of `zone` in 2024-2030 (hourly scan, then bisection)."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    t = utc(2024, 1, 1)
    while t < utc(2031, 1, 1):
        nxt = t + HOUR
        if offset(t, tz) != offset(nxt, tz):
            lo, hi = t, nxt  # whole seconds, so the bisection lands exactly on the transition
            while hi - lo > timedelta(seconds=1):
                mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
                lo, hi = (mid, hi) if offset(mid, tz) == offset(lo, tz) else (lo, mid)
            found.append(hi)
        t = nxt
    return tuple(found)


# ---------------------------------------------------------------------------------------------
# Cron expression generator and brute-force oracle
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]  # 0 = Sunday, 7 folded into 0
    day_and: bool  # Debian: if either day field starts with "*", both must match

    @property
    def real_time(self) -> bool:
        return self.hours == frozenset(range(24))

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        dom_ok = wall.day in self.doms
        dow_ok = (wall.weekday() + 1) % 7 in self.dows
        return (dom_ok and dow_ok) if self.day_and else (dom_ok or dow_ok)


@st.composite
def cron_field(
    draw: st.DrawFn, lo: int, hi: int, hot: Iterable[int] = ()
) -> tuple[str, frozenset[int]]:
    values = st.integers(lo, hi)
    if hot:
        values = st.one_of(values, st.sampled_from(list(hot)))
    kind = draw(st.sampled_from(["star", "star", "step", "value", "range", "range_step", "list"]))
    if kind == "star":
        return "*", frozenset(range(lo, hi + 1))
    if kind == "step":
        step = draw(st.integers(2, hi - lo))
        return f"*/{step}", frozenset(range(lo, hi + 1, step))
    if kind == "value":
        v = draw(values)
        return str(v), frozenset({v})
    if kind == "list":
        items = draw(st.lists(values, min_size=2, max_size=4, unique=True))
        return ",".join(map(str, items)), frozenset(items)
    a = draw(values)
    b = draw(st.integers(a, hi))
    if kind == "range":
        return f"{a}-{b}", frozenset(range(a, b + 1))
    step = draw(st.integers(1, max(1, b - a)))
    return f"{a}-{b}/{step}", frozenset(range(a, b + 1, step))


@st.composite
def crons(draw: st.DrawFn) -> Cron:
    minute = draw(cron_field(0, 59, hot=[0, 15, 30, 45]))
    hour = draw(cron_field(0, 23, hot=[0, 1, 2, 3]))
    dom = draw(st.one_of(st.just(("*", frozenset(range(1, 32)))), cron_field(1, 31)))
    month = draw(st.one_of(st.just(("*", frozenset(range(1, 13)))), cron_field(1, 12)))
    dow = draw(st.one_of(st.just(("*", frozenset(range(7)))), cron_field(0, 7)))
    return Cron(
        text=" ".join(f[0] for f in (minute, hour, dom, month, dow)),
        minutes=minute[1],
        hours=hour[1],
        doms=dom[1],
        months=month[1],
        dows=frozenset(d % 7 for d in dow[1]),
        day_and=dom[0].startswith("*") or dow[0].startswith("*"),
    )


def oracle(cron: Cron, zone: str, lo: datetime, hi: datetime) -> list[datetime]:
    """Slots in (lo, hi] by brute force over every real minute (all DST shifts in the test zones
    happen on whole minutes)."""
    tz = ZoneInfo(zone)
    lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    t = lo.replace(second=0, microsecond=0)
    if t <= lo:
        t += MINUTE
    found: set[datetime] = set()
    while t <= hi:
        local = t.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if cron.matches(wall):
            repeated = (
                wall.replace(tzinfo=tz, fold=0).utcoffset()
                != wall.replace(tzinfo=tz, fold=1).utcoffset()
            )
            if cron.real_time or not (repeated and local.fold == 1):
                found.add(t)
        old, new = offset(t - MINUTE, tz), offset(t, tz)
        if new > old and not cron.real_time:
            # Clocks jumped forward at t: skipped wall times that match fire once, at t.
            assert offset(t - timedelta(seconds=1), tz) == old, "transition not on a minute"
            w = (t + old).replace(tzinfo=None)
            while w < (t + new).replace(tzinfo=None):
                if cron.matches(w):
                    found.add(t)
                    break
                w += MINUTE
        t += MINUTE
    return sorted(found)


@st.composite
def zone_and_start(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and an instant, usually within a couple of days of one of its DST transitions,
    expressed in UTC or in the zone itself (so `fold=1` inputs occur too)."""
    zone = draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 4)):
        base = draw(st.sampled_from(transitions(zone)))
        start = base + timedelta(seconds=draw(st.integers(-2 * 86400, 86400)))
    else:
        start = utc(2024, 1, 1) + timedelta(seconds=draw(st.integers(0, 6 * 365 * 86400)))
    start += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))
    if draw(st.booleans()):
        start = start.astimezone(ZoneInfo(zone))
    return zone, start


def valid_timing(cron: Cron, zone: str) -> Timing:
    timing = Timing("cron", zone, cron.text)
    try:
        timing.validate()
    except ScheduleError as exc:
        # The generator can produce e.g. "0 0 31 2 *"; nothing else may be rejected.
        assert exc.field == "cron"
        assert "never fires" in str(exc), str(exc)
        assume(False)
    return timing


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------


@PROPERTY
@given(cron=crons(), zs=zone_and_start())
def test_cron_slots_equal_brute_force_oracle(cron: Cron, zs: tuple[str, datetime]) -> None:
    zone, start = zs
    timing = valid_timing(cron, zone)
    window_end = start.astimezone(UTC) + 2 * DAY
    expected = oracle(cron, zone, start, window_end)

    got = fire_times(timing, start, len(expected) + 1)

    assert got[: len(expected)] == expected
    if len(got) > len(expected):
        assert got[-1] > window_end
    assert all(slot.tzinfo is UTC for slot in got)
    assert all(a < b for a, b in zip(got, got[1:], strict=False))
    assert next_fire(timing, start) == (got[0] if got else None)
    if got:
        assert got[0] > start


@PROPERTY
@given(cron=crons(), zs=zone_and_start())
def test_sparse_cron_slots_each_match_the_expression(cron: Cron, zs: tuple[str, datetime]) -> None:
    """Slots far beyond a brute-forceable window: each is strictly later than the previous one
    and is a slot by the oracle's rules (local wall time matches, or it is a DST shift)."""
    zone, start = zs
    timing = valid_timing(cron, zone)
    previous = start.astimezone(UTC)
    for slot in fire_times(timing, start, 8):
        assert slot > previous
        assert oracle(cron, zone, slot - MINUTE, slot) == [slot]
        assert next_fire(timing, previous) == slot
        previous = slot


@PROPERTY
@given(
    zone=st.sampled_from(ZONES),
    anchor_s=st.integers(0, 6 * 365 * 86400),
    interval=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=40)),
    after_delta=st.timedeltas(min_value=-timedelta(days=30), max_value=timedelta(days=400)),
    use_starts_at=st.booleans(),
)
def test_interval_slots_are_exactly_anchor_plus_k_interval(
    zone: str,
    anchor_s: int,
    interval: timedelta,
    after_delta: timedelta,
    use_starts_at: bool,
) -> None:
    anchor = utc(2024, 1, 1) + timedelta(seconds=anchor_s)
    # Pass the anchor in the schedule's zone: slots must still be absolute-time arithmetic.
    local_anchor = anchor.astimezone(ZoneInfo(zone))
    if use_starts_at:
        timing = Timing("interval", zone, interval=interval, starts_at=local_anchor)
    else:
        timing = Timing("interval", zone, interval=interval, anchor=local_anchor)
    after = anchor + after_delta

    got = fire_times(timing, after, 10)

    assert len(got) == 10
    first_k = 0 if after < anchor else (after - anchor) // interval + 1
    assert got == [anchor + (first_k + i) * interval for i in range(10)]
    assert got[0] > after
    assert got[0] == anchor or got[0] - interval <= after  # no slot skipped before the first
    assert all(slot.tzinfo is UTC for slot in got)


@PROPERTY
@given(cron=crons(), zs=zone_and_start(), data=st.data())
def test_plan_due_agrees_with_enumerating_slots(
    cron: Cron, zs: tuple[str, datetime], data: st.DataObject
) -> None:
    """Counts and choices of plan_due (which counts whole days arithmetically) equal what
    walking every slot gives, across DST days."""
    zone, start = zs
    timing = valid_timing(cron, zone)
    first = next_fire(timing, start)
    assume(first is not None)
    assert first is not None
    now = first + data.draw(st.timedeltas(timedelta(0), timedelta(days=5)), label="outage")
    grace = data.draw(st.sampled_from([timedelta(0), MINUTE, 3 * HOUR, 2 * DAY]), label="grace")
    policy = data.draw(st.sampled_from(["skip", "latest", "all"]), label="policy")
    cap = data.draw(st.sampled_from([1, 3, 100]), label="cap")
    due = slots_in(timing, first, now + TICK)
    assume(len(due) < 20_000)

    plan = plan_due(timing, next_slot=first, now=now, policy=policy, grace=grace, cap=cap)

    missed = [s for s in due if now - s > grace]
    on_time = [s for s in due if now - s <= grace]
    if policy == "latest" and missed and not on_time:
        expected_fire, skipped = [missed[-1]], missed[:-1]
    else:
        expected_fire, skipped = on_time[:cap], missed
    assert plan.fire == expected_fire
    assert [s for s, _ in plan.skip] == skipped[-cap:]
    assert all(reason.endswith(f"misfire policy {policy}") for _, reason in plan.skip)
    assert plan.skipped_unrecorded == len(skipped) - len(plan.skip)
    if len(on_time) > cap:
        assert plan.next_slot == on_time[cap]
    else:
        assert plan.next_slot == next_fire(timing, now)


# ---------------------------------------------------------------------------------------------
# DST days
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "day", "kind"), DST_DAYS)
def test_dst_days_are_real(zone: str, day: date, kind: str) -> None:
    tz = ZoneInfo(zone)
    start, end = local_day_bounds(zone, day)
    length = end - start
    shift = abs(offset(end, tz) - offset(start, tz))
    assert shift == (timedelta(minutes=30) if zone == LORD_HOWE else HOUR)
    assert length == (DAY - shift if kind == "spring" else DAY + shift)
    # The transitions also fall on the previous/next local day boundaries we count over.
    assert any(start < t < end for t in transitions(zone))


# Where "30 2 * * *" fires on each DST day (local wall time and UTC offset).
DAILY_0230 = {
    date(2026, 3, 29): ("03:00", "+0200"),  # 02:30 skipped in Berlin: shifted to the jump
    date(2026, 10, 25): ("02:30", "+0200"),  # 02:30 repeated in Berlin: first occurrence only
    date(2026, 3, 8): ("03:00", "-0400"),  # skipped in New York
    date(2026, 11, 1): ("02:30", "-0500"),  # New York repeats 01:00-02:00, 02:30 is normal
    date(2026, 10, 4): ("02:30", "+1100"),  # Lord Howe skips 02:00-02:30 only: 02:30 exists
    date(2026, 4, 5): ("02:30", "+1030"),  # Lord Howe repeats 01:30-02:00 only
}


@pytest.mark.parametrize(("zone", "day", "kind"), DST_DAYS)
def test_daily_0230_fires_exactly_once_on_dst_days(zone: str, day: date, kind: str) -> None:
    timing = Timing("cron", zone, "30 2 * * *")
    start, end = local_day_bounds(zone, day)

    slots = slots_in(timing, start, end)

    assert len(slots) == 1
    local = slots[0].astimezone(ZoneInfo(zone))
    assert (f"{local:%H:%M}", f"{local:%z}") == DAILY_0230[day]


@pytest.mark.parametrize(("zone", "day", "kind"), DST_DAYS)
def test_fixed_time_in_repeated_or_skipped_window_fires_once(
    zone: str, day: date, kind: str
) -> None:
    """The wall time inside each zone's transition window: 02:xx (Berlin/NY), 01:45 (Lord Howe
    fall), 02:15 (Lord Howe spring)."""
    window_time = {BERLIN: "15 2", NEW_YORK: "15 2" if kind == "spring" else "15 1"}.get(
        zone, "45 1" if kind == "fall" else "15 2"
    )
    timing = Timing("cron", zone, f"{window_time} * * *")
    start, end = local_day_bounds(zone, day)
    tz = ZoneInfo(zone)
    jump = next(t for t in transitions(zone) if start < t < end)

    slots = slots_in(timing, start, end)

    assert len(slots) == 1
    if kind == "spring":
        assert slots == [jump]  # shifted to the moment the clocks jump
    else:
        assert slots[0] < jump  # first occurrence, before the clocks go back
        wall = slots[0].astimezone(tz)
        assert f"{wall:%M %-H}" == window_time


@pytest.mark.parametrize(("zone", "day", "kind"), DST_DAYS)
def test_hourly_fires_every_real_hour(zone: str, day: date, kind: str) -> None:
    timing = Timing("cron", zone, "0 * * * *")
    tz = ZoneInfo(zone)
    start, end = local_day_bounds(zone, day)
    # Include the hours around the day so the transition is well inside the checked run.
    slots = slots_in(timing, start - 3 * HOUR, end + 3 * HOUR)

    assert all(s.astimezone(tz).minute == 0 for s in slots)
    assert len(set(slots)) == len(slots)
    if zone == LORD_HOWE:
        # A 30-minute shift puts two consecutive local :00 times 90 real minutes apart; every
        # other gap is exactly one hour.
        assert sorted(gaps(slots)) == [HOUR] * (len(slots) - 2) + [90 * MINUTE]
        in_day = [s for s in slots if start <= s < end]
        assert len(in_day) == (23 if kind == "spring" else 24)
    else:
        assert set(gaps(slots)) == {HOUR}
        in_day = [s for s in slots if start <= s < end]
        assert len(in_day) == (end - start) // HOUR  # 23 or 25


@pytest.mark.parametrize(("zone", "day", "kind"), DST_DAYS)
def test_every_15_minutes_fires_every_real_15_minutes(zone: str, day: date, kind: str) -> None:
    timing = Timing("cron", zone, "*/15 * * * *")
    start, end = local_day_bounds(zone, day)

    slots = slots_in(timing, start - HOUR, end + HOUR)

    assert set(gaps(slots)) == {15 * MINUTE}
    assert slots[0] == start - HOUR and slots[-1] == end + HOUR - 15 * MINUTE
    assert len([s for s in slots if start <= s < end]) == (end - start) // (15 * MINUTE)


def simple_cron(minutes: str, hours: str) -> Cron:
    """Cron for "<minutes> <hours> * * *" with numbers, lists, "*" and "*/n"."""

    def values(text: str, top: int) -> frozenset[int]:
        if text == "*":
            return frozenset(range(top))
        if text.startswith("*/"):
            return frozenset(range(0, top, int(text[2:])))
        return frozenset(int(v) for v in text.split(","))

    return Cron(
        text=f"{minutes} {hours} * * *",
        minutes=values(minutes, 60),
        hours=values(hours, 24),
        doms=frozenset(range(1, 32)),
        months=frozenset(range(1, 13)),
        dows=frozenset(range(7)),
        day_and=True,
    )


@pytest.mark.parametrize(
    "zone",
    [
        "America/Nuuk",  # jumps 23:00 -> 00:00: the shifted slot is the next day's first instant
        "America/Havana",  # 00:00 -> 01:00 and 01:00 -> 00:00
        "America/Santiago",  # 24:00 -> 01:00 and 24:00 -> 23:00
        "Asia/Beirut",
    ],
)
@pytest.mark.parametrize(
    "cron",
    [
        simple_cron("30", "23"),
        simple_cron("*", "23"),
        simple_cron("15", "0"),
        simple_cron("*/30", "*"),
    ],
    ids=lambda c: c.text,
)
def test_zones_with_transitions_at_midnight(zone: str, cron: Cron) -> None:
    """The per-day counting must not lose or double a slot when a transition sits on a day
    boundary; slots must match the oracle there too."""
    timing = Timing("cron", zone, cron.text)
    for jump in [t for t in transitions(zone) if t.year == 2026]:
        expected = oracle(cron, zone, jump - 6 * HOUR, jump + 6 * HOUR)
        assert fire_times(timing, jump - 6 * HOUR, len(expected)) == expected

        lo, now = jump - 5 * DAY, jump + 5 * DAY
        first = next_fire(timing, lo)
        assert first is not None
        result = plan_due(timing, next_slot=first, now=now, policy="skip", grace=timedelta(0))
        assert len(result.skip) + result.skipped_unrecorded == len(slots_in(timing, first, now))


def test_every_two_hours_is_a_wall_clock_schedule() -> None:
    """Deliberate deviation from Debian/cronsim (see module docstring): "0 */2" does not fire
    in every hour, so 02:00 fires once on the fall-back day and is shifted on spring-forward."""
    timing = Timing("cron", BERLIN, "0 */2 * * *")
    fall = slots_in(timing, *local_day_bounds(BERLIN, date(2026, 10, 25)))
    spring = slots_in(timing, *local_day_bounds(BERLIN, date(2026, 3, 29)))
    tz = ZoneInfo(BERLIN)

    assert [f"{s.astimezone(tz):%H:%M%z}" for s in fall[:3]] == [
        "00:00+0200",
        "02:00+0200",
        "04:00+0100",
    ]
    assert len(fall) == 12
    assert [f"{s.astimezone(tz):%H:%M%z}" for s in spring[:3]] == [
        "00:00+0100",
        "03:00+0200",
        "04:00+0200",
    ]


def test_cronsim_behaviour_we_work_around() -> None:
    """Canary: if cronsim changes these, revisit the workarounds in jobs/timing/."""
    tz = ZoneInfo(BERLIN)
    second_pass = utc(2026, 10, 25, 1, 10).astimezone(tz)  # 02:10 CET, after 02:30 CEST ran
    assert second_pass.fold == 1
    # cronsim returns a time *before* its start here ...
    assert next(CronSim("30 2 * * *", second_pass)).astimezone(UTC) < second_pass
    # ... we return the next day's run.
    assert next_fire(Timing("cron", BERLIN, "30 2 * * *"), second_pass) == utc(2026, 10, 26, 1, 30)
    # cronsim treats "0 */2" as a wildcard job (runs twice at 02:00 when clocks go back).
    start = datetime(2026, 10, 25, 1, 0, tzinfo=tz)
    it = CronSim("0 */2 * * *", start)
    assert [f"{next(it):%H:%M%z}" for _ in range(2)] == ["02:00+0200", "02:00+0100"]


def test_after_inside_first_pass_of_repeated_hour_still_sees_second_pass() -> None:
    tz = ZoneInfo(BERLIN)
    timing = Timing("cron", BERLIN, "*/20 * * * *")
    after = datetime(2026, 10, 25, 2, 50, tzinfo=tz)  # first pass (CEST), fold=0
    # 02:00 CET, the second pass; compared in UTC because PEP 495 makes == between zones
    # always False for repeated times.
    assert next_fire(timing, after) == utc(2026, 10, 25, 1, 0)


def test_interval_ignores_dst() -> None:
    tz = ZoneInfo(BERLIN)
    anchor = datetime(2026, 3, 28, 2, 30, tzinfo=tz)  # the day before clocks go forward
    timing = Timing("interval", BERLIN, interval=DAY, starts_at=anchor)

    slots = fire_times(timing, anchor, 2)

    real = anchor.astimezone(UTC)  # aware + timedelta in one zone is wall-clock arithmetic
    assert slots == [real + DAY, real + 2 * DAY]
    assert [f"{s.astimezone(tz):%H:%M}" for s in slots] == ["03:30", "03:30"]


def test_interval_does_not_drift() -> None:
    step = timedelta(minutes=7, seconds=13, microseconds=1)
    anchor = utc(2026, 1, 1)
    timing = Timing("interval", interval=step, anchor=anchor)

    slots = fire_times(timing, anchor, 10_000)

    assert slots[-1] == anchor + 10_000 * step
    assert set(gaps(slots)) == {step}


# ---------------------------------------------------------------------------------------------
# dst_note
# ---------------------------------------------------------------------------------------------


def test_dst_note_shifted_daily_job() -> None:
    timing = Timing("cron", BERLIN, "30 2 * * *")
    slot = next_fire(timing, utc(2026, 3, 28, 12))
    assert slot is not None

    assert dst_note(timing, slot) == (
        "02:30 does not exist on 2026-03-29 in Europe/Berlin (clocks go forward); "
        "fires at 03:00 local instead."
    )
    assert dst_note(timing, slot - DAY) is None  # an ordinary day


def test_dst_note_lord_howe_half_hour_shift() -> None:
    timing = Timing("cron", LORD_HOWE, "0 2 * * *")
    slot = next_fire(timing, utc(2026, 10, 3, 12))
    assert slot is not None

    note = dst_note(timing, slot)

    assert note == (
        "02:00 does not exist on 2026-10-04 in Australia/Lord_Howe (clocks go forward); "
        "fires at 02:30 local instead."
    )
    # 02:30 itself exists on that day, so "30 2 * * *" is not shifted.
    daily_0230 = Timing("cron", LORD_HOWE, "30 2 * * *")
    assert dst_note(daily_0230, slot) is None


def test_dst_note_several_skipped_times_collapse() -> None:
    timing = Timing("cron", NEW_YORK, "*/30 2 * * *")
    slot = next_fire(timing, utc(2026, 3, 8))
    assert slot == utc(2026, 3, 8, 7)

    note = dst_note(timing, slot)

    assert note is not None
    assert note.startswith("02:00 and 02:30 do not exist on 2026-03-08 in America/New_York")
    assert note.endswith("fires once at 03:00 local instead.")


def test_dst_note_ambiguous_fixed_time_job() -> None:
    timing = Timing("cron", NEW_YORK, "30 1 * * *")
    slot = next_fire(timing, utc(2026, 11, 1))
    assert slot == utc(2026, 11, 1, 5, 30)  # 01:30 EDT

    note = dst_note(timing, slot)

    assert note is not None
    assert note.startswith("01:30 occurs twice on 2026-11-01 in America/New_York (clocks go back)")
    assert "first occurrence (EDT, UTC-04:00)" in note


def test_dst_note_real_time_job_names_each_occurrence() -> None:
    timing = Timing("cron", BERLIN, "0 * * * *")
    first = utc(2026, 10, 25, 0)  # 02:00 CEST
    second = utc(2026, 10, 25, 1)  # 02:00 CET
    assert fire_times(timing, first - TICK, 2) == [first, second]

    first_note = dst_note(timing, first)
    second_note = dst_note(timing, second)

    assert first_note is not None and "first occurrence (CEST, UTC+02:00)" in first_note
    assert second_note is not None and "second occurrence (CET, UTC+01:00)" in second_note
    # Hourly jobs are never "shifted": the skipped 02:00 simply does not run.
    assert dst_note(timing, utc(2026, 3, 29, 1)) is None


def test_dst_note_interval_in_lord_howe_repeated_half_hour() -> None:
    timing = Timing("interval", LORD_HOWE, interval=30 * MINUTE, anchor=utc(2026, 4, 4, 14, 45))
    # The repeated window is 01:30-02:00: 14:45Z = 01:45 (+11), 15:15Z = 01:45 (+10:30),
    # 15:45Z = 02:15 (+10:30).
    slots = fire_times(timing, utc(2026, 4, 4, 14, 44), 3)
    assert slots == [utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 15), utc(2026, 4, 4, 15, 45)]

    notes = [dst_note(timing, s) for s in slots]

    assert notes[0] == (
        "01:45 occurs twice on 2026-04-05 in Australia/Lord_Howe (clocks go back); "
        "this run is at the first occurrence (+11, UTC+11:00)."
    )
    assert notes[1] is not None and "second occurrence (+1030, UTC+10:30)" in notes[1]
    assert notes[2] is None


# ---------------------------------------------------------------------------------------------
# normalize_cron / parse_timezone / validate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "expansion"), sorted(CRON_ALIASES.items()))
def test_aliases_expand(alias: str, expansion: str) -> None:
    assert normalize_cron(alias) == expansion
    assert normalize_cron(f"  {alias.upper()} ") == expansion


def test_alias_table_is_the_documented_one() -> None:
    assert CRON_ALIASES == {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
    }


def test_normalize_collapses_whitespace_and_names() -> None:
    assert normalize_cron("  0\t9  *  * mon-fri ") == "0 9 * * MON-FRI"
    assert normalize_cron("*/15 * * jan,jul *") == "*/15 * * JAN,JUL *"


def test_stepped_single_value_range_stays_a_single_value() -> None:
    """cronsim reads "0-0/1" as "0 to the end of the field"; Debian reads it as just 0."""
    assert normalize_cron("5-5/10 * * * 0-0/1") == "5 * * * 0"
    assert normalize_cron("1,3-3/2 * * * *") == "1,3 * * * *"
    sundays = Timing("cron", cron="* * * * 0-0/1")
    assert next_fire(sundays, utc(2026, 5, 1)) == utc(2026, 5, 3)  # Friday -> Sunday 00:00


@pytest.mark.parametrize(
    ("expr", "count"),
    [("* * * *", 4), ("0 0 * * * *", 6), ("1", 1), ("0 0 1 1 * 2030", 6)],
)
def test_wrong_field_count(expr: str, count: int) -> None:
    with pytest.raises(ScheduleError) as info:
        normalize_cron(expr)
    assert info.value.field == "cron"
    assert str(info.value).startswith(
        "Expected 5 fields (minute hour day-of-month month day-of-week) or an alias like "
        f"@daily; got {count}"
    )
    if count > 5:
        assert "seconds and year fields are not supported" in str(info.value)


@pytest.mark.parametrize(
    ("expr", "reason", "fix"),
    [
        ("61 * * * *", "Bad minute in '61'", "0-59"),
        ("* 24 * * *", "Bad hour in '24'", "0-23"),
        ("* * 0 * *", "Bad day-of-month in '0'", "1-31"),
        ("* * * 13 *", "Bad month in '13'", "1-12 or JAN-DEC"),
        ("* * * * 8", "Bad day-of-week in '8'", "0-7 or SUN-SAT"),
        ("*/0 * * * *", "Bad minute in '*/0'", "0-59"),
        ("5-1 * * * *", "Bad minute in '5-1'", "0-59"),
        ("a b c d e", "Bad minute in 'a'", "0-59"),
        ("0 0 1,,2 * *", "Bad day-of-month in '1,,2'", "1-31"),
    ],
)
def test_syntax_errors_quote_cronsim_and_say_how_to_fix(expr: str, reason: str, fix: str) -> None:
    with pytest.raises(ScheduleError) as info:
        normalize_cron(expr)
    assert info.value.field == "cron"
    message = str(info.value)
    assert message.startswith(f"Invalid cron expression {expr!r}: {reason}")
    assert fix in message
    assert "*/15" in message  # shows the accepted forms


@pytest.mark.parametrize("expr", ["", "   ", "@reboot", "@every 5m", "@fortnightly"], ids=repr)
def test_empty_and_unknown_aliases(expr: str) -> None:
    with pytest.raises(ScheduleError) as info:
        normalize_cron(expr)
    assert info.value.field == "cron"
    assert "@daily" in str(info.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "expr",
    ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 30,31 2 *", "0 0 */31 * MON#5"],
)
def test_never_firing_expressions_are_rejected(expr: str) -> None:
    with pytest.raises(ScheduleError) as info:
        normalize_cron(expr)
    assert info.value.field == "cron"
    assert f"Cron expression {expr!r} never fires" in str(info.value)


def test_rare_but_possible_expressions_are_accepted() -> None:
    assert normalize_cron("0 0 29 2 *") == "0 0 29 2 *"
    leap_day = Timing("cron", cron="0 0 29 2 *")
    assert next_fire(leap_day, utc(2026, 1, 1)) == utc(2028, 2, 29)
    # Day fields without a leading "*" are OR-ed (Debian), so this fires on February Mondays.
    assert next_fire(Timing("cron", cron="0 0 30 2 MON"), utc(2026, 1, 1)) == utc(2026, 2, 2)
    # A fifth Monday in February needs a leap year starting on a Monday.
    assert next_fire(Timing("cron", cron="0 0 * 2 MON#5"), utc(2026, 1, 1)) == utc(2044, 2, 29)


@pytest.mark.timeout(240)
@settings(max_examples=300, deadline=None, database=None)
@given(st.text(alphabet="0123456789*/,-LW#?MONJAFRSUTEC@ \t", max_size=24))
def test_normalize_cron_only_raises_schedule_error(text: str) -> None:
    try:
        result = normalize_cron(text)
    except ScheduleError as exc:
        assert exc.field == "cron"
        assert str(exc)
    else:
        assert len(result.split(" ")) == 5
        assert normalize_cron(result) == result  # canonical form is a fixed point


def test_parse_timezone() -> None:
    assert parse_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert parse_timezone(" UTC ") == ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Europe/Berln", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("Mars/Olympus_Mons", None),
        ("", None),
        ("../etc/passwd", None),
        ("/etc/localtime", None),
    ],
)
def test_parse_timezone_errors(name: str, suggestion: str | None) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_timezone(name)
    assert info.value.field == "timezone"
    message = str(info.value)
    assert message.startswith(
        f"Unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC."
    )
    if suggestion:
        assert message.endswith(f"Did you mean {suggestion!r}?")
    else:
        assert "Did you mean" not in message


def test_parse_timezone_refuses_server_localtime() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_timezone("localtime")
    assert info.value.field == "timezone"
    assert "server's configuration" in str(info.value)


NOW = utc(2026, 5, 1, 12)


@pytest.mark.parametrize(
    ("timing", "field", "text"),
    [
        (Timing("weekly"), "kind", "use 'cron', 'interval' or 'once'"),
        (Timing("cron", "Europe/Berln", "0 3 * * *"), "timezone", "Europe/Berln"),
        (Timing("cron", cron="0 3 * *"), "cron", "got 4"),
        (Timing("cron"), "cron", "empty"),
        (Timing("cron", cron="0 0 31 4 *"), "cron", "never fires"),
        (Timing("interval", anchor=NOW), "interval", "needs an interval"),
        (Timing("interval", interval=timedelta(0), anchor=NOW), "interval", "positive"),
        (Timing("interval", interval=-HOUR, anchor=NOW), "interval", "positive"),
        (Timing("interval", interval=HOUR), "starts_at", "starts_at"),
        (Timing("once"), "run_at", "needs run_at"),
        (Timing("once", run_at=datetime(2026, 5, 1, 12)), "run_at", "timezone-aware"),
        (
            Timing("cron", cron="@daily", starts_at=datetime(2026, 5, 1)),
            "starts_at",
            "timezone-aware",
        ),
        (Timing("interval", interval=HOUR, anchor=datetime(2026, 5, 1)), "anchor", "aware"),
        (
            Timing("cron", cron="@daily", starts_at=NOW, ends_at=NOW),
            "ends_at",
            "must be later than starts_at",
        ),
        (
            Timing("once", run_at=NOW, starts_at=NOW, ends_at=NOW - HOUR),
            "ends_at",
            "must be later than starts_at",
        ),
    ],
)
def test_validate_errors_name_the_field(timing: Timing, field: str, text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        timing.validate()
    assert info.value.field == field
    assert text in str(info.value)
    # The public functions validate too.
    with pytest.raises(ScheduleError):
        next_fire(timing, NOW)


@pytest.mark.parametrize(
    "timing",
    [
        Timing("cron", BERLIN, "@daily"),
        Timing("interval", interval=MINUTE, starts_at=NOW),
        Timing("interval", LORD_HOWE, interval=MINUTE, anchor=NOW),
        Timing("once", run_at=NOW, starts_at=NOW - DAY, ends_at=NOW + DAY),
    ],
)
def test_valid_timings_pass(timing: Timing) -> None:
    timing.validate()


def test_naive_after_is_rejected() -> None:
    with pytest.raises(ScheduleError) as info:
        next_fire(Timing("cron", cron="@daily"), datetime(2026, 1, 1))
    assert info.value.field == "after"


# ---------------------------------------------------------------------------------------------
# next_fire / fire_times: bounds and once
# ---------------------------------------------------------------------------------------------


def test_once() -> None:
    run_at = datetime(2026, 6, 1, 9, tzinfo=ZoneInfo(BERLIN))
    timing = Timing("once", BERLIN, run_at=run_at)

    assert next_fire(timing, NOW) == utc(2026, 6, 1, 7)
    assert next_fire(timing, NOW).tzinfo is UTC  # type: ignore[union-attr]
    assert fire_times(timing, NOW, 5) == [utc(2026, 6, 1, 7)]
    assert next_fire(timing, run_at) is None  # strictly after
    assert next_fire(timing, run_at - TICK) == run_at


def test_once_outside_bounds_never_fires() -> None:
    timing = Timing("once", run_at=NOW, ends_at=NOW - HOUR, starts_at=NOW - DAY)
    assert next_fire(timing, NOW - 2 * DAY) is None


def test_starts_at_and_ends_at_are_inclusive() -> None:
    timing = Timing(
        "cron", cron="0 * * * *", starts_at=utc(2026, 1, 1, 3), ends_at=utc(2026, 1, 1, 6)
    )
    assert fire_times(timing, utc(2025, 1, 1), 10) == [utc(2026, 1, 1, h) for h in (3, 4, 5, 6)]
    assert next_fire(timing, utc(2026, 1, 1, 6)) is None


def test_interval_anchor_is_starts_at_and_bounds_apply() -> None:
    timing = Timing(
        "interval",
        interval=timedelta(minutes=40),
        starts_at=utc(2026, 1, 1, 0, 5),
        anchor=utc(2020, 1, 1),  # ignored: starts_at is the anchor
        ends_at=utc(2026, 1, 1, 2, 5),
    )
    assert fire_times(timing, utc(2025, 12, 31), 10) == [
        utc(2026, 1, 1, 0, 5),
        utc(2026, 1, 1, 0, 45),
        utc(2026, 1, 1, 1, 25),
        utc(2026, 1, 1, 2, 5),
    ]


def test_fire_times_limit() -> None:
    timing = Timing("cron", cron="@hourly")
    assert fire_times(timing, NOW, 0) == []
    assert fire_times(timing, NOW, 3) == [NOW + HOUR, NOW + 2 * HOUR, NOW + 3 * HOUR]


# ---------------------------------------------------------------------------------------------
# plan_due
# ---------------------------------------------------------------------------------------------

HOURLY_BERLIN = Timing("cron", BERLIN, "0 * * * *")


def plan(timing: Timing = HOURLY_BERLIN, **kwargs: object) -> DuePlan:
    params: dict[str, object] = {
        "next_slot": utc(2026, 5, 1, 10),
        "now": utc(2026, 5, 1, 13, 30),
        "policy": "skip",
        "grace": timedelta(minutes=45),
    }
    params.update(kwargs)
    return plan_due(timing, **params)  # type: ignore[arg-type]


def hours(*hs: int) -> list[datetime]:
    return [utc(2026, 5, 1, h) for h in hs]


def test_plan_skip_policy() -> None:
    result = plan(policy="skip")

    assert result.fire == hours(13)  # 30 minutes late, within the 45-minute grace
    assert result.skip == [
        (utc(2026, 5, 1, 10), "missed by 3h 30m; grace 45m; misfire policy skip"),
        (utc(2026, 5, 1, 11), "missed by 2h 30m; grace 45m; misfire policy skip"),
        (utc(2026, 5, 1, 12), "missed by 1h 30m; grace 45m; misfire policy skip"),
    ]
    assert result.skipped_unrecorded == 0
    assert result.next_slot == utc(2026, 5, 1, 14)


def test_plan_latest_with_an_on_time_slot_fires_only_that() -> None:
    result = plan(policy="latest")

    assert result.fire == hours(13)
    assert [s for s, _ in result.skip] == hours(10, 11, 12)
    assert all("misfire policy latest" in reason for _, reason in result.skip)
    assert result.next_slot == utc(2026, 5, 1, 14)


def test_plan_latest_without_on_time_slot_fires_most_recent_missed() -> None:
    result = plan(policy="latest", grace=timedelta(minutes=10))

    assert result.fire == hours(13)
    assert [s for s, _ in result.skip] == hours(10, 11, 12)
    assert result.skip[0][1] == (
        "missed by 3h 30m; superseded by the latest missed run at 2026-05-01 13:00 UTC; "
        "misfire policy latest"
    )
    assert result.next_slot == utc(2026, 5, 1, 14)


def test_plan_all_within_catch_up_window() -> None:
    result = plan(policy="all", grace=timedelta(days=3))

    assert result.fire == hours(10, 11, 12, 13)
    assert result.skip == []
    assert result.next_slot == utc(2026, 5, 1, 14)


def test_plan_all_skips_beyond_catch_up_window() -> None:
    result = plan(policy="all", grace=timedelta(hours=2))

    assert result.fire == hours(12, 13)
    assert result.skip == [
        (s, f"missed by {late}; outside the 2h catch-up window; misfire policy all")
        for s, late in zip(hours(10, 11), ["3h 30m", "2h 30m"], strict=True)
    ]


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
@pytest.mark.parametrize(
    ("late", "fires"),
    [(timedelta(minutes=45), True), (timedelta(minutes=45, microseconds=1), False)],
)
def test_plan_grace_boundary_is_inclusive(policy: str, late: timedelta, fires: bool) -> None:
    slot = utc(2026, 5, 1, 13)
    result = plan(next_slot=slot, now=slot + late, policy=policy)

    if fires or policy == "latest":  # "latest" fires the only (missed) slot anyway
        assert result.fire == [slot]
        assert result.skip == []
    else:
        assert result.fire == []
        assert [s for s, _ in result.skip] == [slot]
    assert result.next_slot == utc(2026, 5, 1, 14)


def test_plan_all_is_capped_and_continues_where_it_stopped() -> None:
    timing = Timing("cron", LORD_HOWE, "* * * * *")
    start = utc(2026, 5, 1, 12)
    now = start + timedelta(minutes=9, seconds=30)  # 10 slots due: 12:00 ... 12:09
    cursor: datetime | None = start
    fired: list[datetime] = []
    rounds = 0
    while cursor is not None and cursor <= now:
        result = plan_due(timing, next_slot=cursor, now=now, policy="all", grace=DAY, cap=3)
        assert len(result.fire) <= 3
        assert result.skip == []
        fired += result.fire
        cursor = result.next_slot
        rounds += 1

    assert fired == [start + i * MINUTE for i in range(10)]
    assert rounds == 4
    assert cursor == start + 10 * MINUTE


def test_plan_records_only_the_most_recent_skips() -> None:
    timing = Timing("cron", NEW_YORK, "* * * * *")
    start = utc(2026, 5, 1)
    now = start + timedelta(minutes=250)
    result = plan_due(timing, next_slot=start, now=now, policy="skip", grace=timedelta(0), cap=100)

    assert result.fire == [now]  # exactly on time (late by 0)
    assert [s for s, _ in result.skip] == [start + i * MINUTE for i in range(150, 250)]
    assert result.skipped_unrecorded == 150
    assert result.next_slot == now + MINUTE


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("zone", "expr", "expected"),
    [
        # Every real minute of the year (real-time schedule): pure arithmetic.
        (BERLIN, "* * * * *", 365 * 24 * 60),
        (LORD_HOWE, "*/15 * * * *", 365 * 24 * 4),
        # One run per local day, including both DST days.
        (BERLIN, "30 2 * * *", 365),
        # Wall-clock schedule in the skipped hour: the spring-forward day has one (shifted)
        # run instead of 60; the fall-back day runs only the first 02:xx pass.
        (BERLIN, "* 2 * * *", 365 * 60 - 59),
        (NEW_YORK, "* 1 * * *", 365 * 60),
    ],
)
def test_plan_year_long_outage_counts_exactly(zone: str, expr: str, expected: int) -> None:
    timing = Timing("cron", zone, expr)
    lo, _ = local_day_bounds(zone, date(2026, 1, 1))
    hi, _ = local_day_bounds(zone, date(2027, 1, 1))
    first = next_fire(timing, lo - TICK)
    assert first is not None
    now = hi  # grace 0: everything before `hi` is missed, a slot at `hi` itself is on time

    result = plan_due(timing, next_slot=first, now=now, policy="skip", grace=timedelta(0))

    missed = len(result.skip) + result.skipped_unrecorded
    assert missed == expected
    assert len(result.skip) == 100
    recorded = [s for s, _ in result.skip]
    assert recorded[-1] == slots_in(timing, hi - DAY, hi)[-1]
    # The recorded ones are the most recent, consecutive slots.
    assert all(next_fire(timing, a) == b for a, b in zip(recorded, recorded[1:], strict=False))
    assert result.next_slot is not None and result.next_slot > now


@pytest.mark.timeout(30)
def test_plan_interval_outage_is_arithmetic() -> None:
    timing = Timing("interval", interval=timedelta(seconds=1), anchor=utc(2025, 1, 1))
    now = utc(2026, 1, 1)

    result = plan_due(
        timing, next_slot=utc(2025, 1, 1), now=now, policy="latest", grace=timedelta(0)
    )

    assert result.fire == [now]
    assert result.skipped_unrecorded + len(result.skip) == 365 * 86400
    assert result.skip[-1][0] == now - timedelta(seconds=1)
    assert result.next_slot == now + timedelta(seconds=1)


def test_plan_nothing_due_keeps_cursor() -> None:
    cursor = utc(2026, 5, 1, 14)
    result = plan(next_slot=cursor, now=utc(2026, 5, 1, 13, 30))
    assert result == DuePlan(fire=[], skip=[], skipped_unrecorded=0, next_slot=cursor)


@pytest.mark.parametrize(
    ("policy", "late", "fired"),
    [("skip", HOUR, False), ("skip", MINUTE, True), ("latest", HOUR, True), ("all", HOUR, False)],
)
def test_plan_once(policy: str, late: timedelta, fired: bool) -> None:
    run_at = utc(2026, 5, 1, 9)
    timing = Timing("once", run_at=run_at)

    result = plan_due(timing, next_slot=run_at, now=run_at + late, policy=policy, grace=5 * MINUTE)

    assert result.fire == ([run_at] if fired else [])
    assert [s for s, _ in result.skip] == ([] if fired else [run_at])
    assert result.next_slot is None


def test_plan_respects_ends_at() -> None:
    timing = Timing("cron", cron="0 * * * *", ends_at=utc(2026, 5, 1, 11))
    result = plan(timing, policy="all", grace=DAY)

    assert result.fire == hours(10, 11)  # 11:00 == ends_at still fires
    assert result.next_slot is None

    finished = plan(timing, next_slot=utc(2026, 5, 1, 12), policy="all", grace=DAY)
    assert finished == DuePlan(fire=[], skip=[], skipped_unrecorded=0, next_slot=None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"policy": "catch-up"}, "policy"),
        ({"grace": -MINUTE}, "grace"),
        ({"now": NOW.replace(tzinfo=None)}, "now"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError) as info:
        plan(HOURLY_BERLIN, **kwargs)
    assert info.value.field == field


def test_engine_does_not_read_the_clock() -> None:
    timing = Timing("cron", BERLIN, "*/5 * * * *")
    results = []
    for frozen in (utc(1999, 1, 1), utc(2041, 7, 1)):
        with time_machine.travel(frozen, tick=False):
            results.append(
                (
                    fire_times(timing, NOW, 3),
                    plan(timing, policy="latest", grace=MINUTE),
                )
            )
    assert results[0] == results[1]
    assert results[0][0] == [NOW + 5 * MINUTE, NOW + 10 * MINUTE, NOW + 15 * MINUTE]


# ---------------------------------------------------------------------------------------------
# slot_jitter
# ---------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, database=None)
@given(
    schedule_id=st.one_of(st.integers(0, 10**9), st.text(max_size=20)),
    seconds=st.integers(0, 10**9),
    jitter=st.integers(1, 86400),
)
def test_slot_jitter_range_and_determinism(
    schedule_id: int | str, seconds: int, jitter: int
) -> None:
    slot = utc(2000, 1, 1) + timedelta(seconds=seconds)

    value = slot_jitter(schedule_id, slot, jitter)

    assert timedelta(0) <= value < timedelta(seconds=jitter)
    assert slot_jitter(schedule_id, slot, jitter) == value
    # The same instant expressed in another zone gives the same jitter.
    assert slot_jitter(schedule_id, slot.astimezone(ZoneInfo(LORD_HOWE)), jitter) == value


def test_slot_jitter_spreads_and_varies() -> None:
    slots = [utc(2026, 1, 1) + i * MINUTE for i in range(200)]
    values = {slot_jitter(42, s, 3600) for s in slots}
    assert len(values) > 190
    assert slot_jitter(42, slots[0], 3600) != slot_jitter(43, slots[0], 3600)
    assert slot_jitter(7, slots[0], 3600) == slot_jitter("7", slots[0], 3600)
    assert slot_jitter(42, slots[0], 0) == timedelta(0)


def test_slot_jitter_is_stable_across_processes() -> None:
    """hash() is salted per process; the jitter must not be."""
    code = (
        "from datetime import datetime, UTC; from jobs.timing import slot_jitter; "
        "print(slot_jitter('job-9', datetime(2026, 1, 1, tzinfo=UTC), 600).total_seconds())"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.add(done.stdout.strip())
    expected = slot_jitter("job-9", utc(2026, 1, 1), 600).total_seconds()
    assert outputs == {str(expected)}

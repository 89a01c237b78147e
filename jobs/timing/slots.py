"""When a schedule fires: the Timing of a schedule and its slots (cron, interval, once)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from jobs.timing.cron import compile_cron, cron_after
from jobs.timing.zones import (
    DAY,
    EARLIEST,
    KINDS,
    LATEST,
    NORMAL,
    SECOND,
    TICK,
    ScheduleError,
    parse_timezone,
    require_aware,
    resolve_wall,
    utc_offset,
)


@dataclass(frozen=True)
class Timing:
    """When a schedule fires.

    ``kind`` is "cron" (uses ``cron`` in ``timezone``), "interval" (``anchor + k*interval`` for
    k >= 0, where the anchor is ``starts_at`` or else ``anchor``, typically the schedule's
    creation time) or "once" (``run_at``). ``starts_at``/``ends_at`` bound every kind and are
    inclusive: a slot equal to either fires. All datetimes must be timezone-aware.
    """

    kind: str
    timezone: str = "UTC"
    cron: str = ""
    interval: timedelta | None = None
    run_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    anchor: datetime | None = None

    def validate(self) -> None:
        """Raise ``ScheduleError`` (with the offending field) if this timing is unusable."""
        if self.kind not in KINDS:
            raise ScheduleError(
                "kind", f"Unknown schedule kind {self.kind!r}: use 'cron', 'interval' or 'once'."
            )
        parse_timezone(self.timezone)
        for name in ("run_at", "starts_at", "ends_at", "anchor"):
            value = getattr(self, name)
            if value is not None:
                require_aware(name, value)
                if not EARLIEST <= value <= LATEST:
                    # Times near year 1 or 9999 overflow once shifted into a zone.
                    raise ScheduleError(
                        name,
                        f"{name} must be between {EARLIEST:%Y} and {LATEST:%Y}; got "
                        f"{value:%Y-%m-%d}. Leave ends_at empty for a schedule without end.",
                    )
        if self.kind == "cron":
            compile_cron(self.cron)
        elif self.kind == "interval":
            if self.interval is None:
                raise ScheduleError(
                    "interval", "An interval schedule needs an interval, e.g. 15 minutes."
                )
            if self.interval <= timedelta(0):
                raise ScheduleError(
                    "interval", f"The interval must be positive; got {self.interval}."
                )
            if self.starts_at is None and self.anchor is None:
                raise ScheduleError(
                    "starts_at",
                    "An interval schedule needs a starting point: set starts_at (or pass the "
                    "schedule's creation time as anchor).",
                )
        elif self.run_at is None:
            raise ScheduleError("run_at", "A one-off schedule needs run_at, the time to run.")
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.ends_at <= self.starts_at
        ):
            raise ScheduleError(
                "ends_at",
                f"ends_at ({self.ends_at.isoformat()}) must be later than starts_at "
                f"({self.starts_at.isoformat()}).",
            )


def zone_of(timing: Timing) -> ZoneInfo:
    return parse_timezone(timing.timezone)


def _interval_anchor(timing: Timing) -> tuple[datetime, timedelta]:
    anchor = timing.starts_at if timing.starts_at is not None else timing.anchor
    if anchor is None or timing.interval is None:  # validate() rules this out
        raise ScheduleError("interval", "An interval schedule needs an interval and starts_at.")
    return anchor.astimezone(UTC), timing.interval


def _interval_after(timing: Timing, after: datetime) -> Iterator[datetime]:
    anchor, step = _interval_anchor(timing)
    # Integer timedelta arithmetic is exact to the microsecond, so slots never drift.
    k = 0 if after < anchor else (after - anchor) // step + 1
    while True:
        try:
            slot = anchor + k * step
        except OverflowError:  # past year 9999: no more slots
            return
        yield slot
        k += 1


def slots_after(timing: Timing, after: datetime) -> Iterator[datetime]:
    """All slots strictly after ``after`` (aware, any zone), in UTC, ascending, within bounds."""
    after = after.astimezone(UTC)
    if timing.starts_at is not None:
        after = max(after, timing.starts_at.astimezone(UTC) - TICK)
    ends = timing.ends_at.astimezone(UTC) if timing.ends_at is not None else None

    source: Iterator[datetime]
    if timing.kind == "cron":
        source = cron_after(compile_cron(timing.cron), zone_of(timing), after)
    elif timing.kind == "interval":
        source = _interval_after(timing, after)
    else:
        if timing.run_at is None:  # validate() rules this out
            raise ScheduleError("run_at", "A one-off schedule needs run_at, the time to run.")
        run_at = timing.run_at.astimezone(UTC)
        source = iter([run_at] if run_at > after else [])
    try:
        for slot in source:
            if ends is not None and slot > ends:
                return
            yield slot
    except OverflowError:  # walked off the end of datetime's range (year 9999)
        return


def first_slot_after(timing: Timing, after: datetime) -> datetime | None:
    return next(slots_after(timing, after), None)


def next_fire(timing: Timing, after: datetime) -> datetime | None:
    """The first slot strictly after ``after``, in UTC, or None when the schedule has no more
    slots (a one-off already passed, or past ``ends_at``).

    Cron schedules are evaluated on the wall clock of ``timing.timezone``. Daylight saving,
    following Debian cron's intent:

    * a schedule that fires in every hour of the day (``0 * * * *``, ``*/15 * * * *``) follows
      real time: it fires at every real instant whose local time matches, so the cadence has no
      gaps or doubles across a transition (in a zone with a 30-minute shift, such as
      Australia/Lord_Howe, an hourly ``0 * * * *`` necessarily has one 90-minute gap, because
      the local :00 times are 90 minutes apart there);
    * any other schedule is a wall-clock schedule: a local time skipped by a spring-forward
      fires once, at the moment the clocks jump (02:30 -> 03:00 in Europe/Berlin), and a local
      time repeated by a fall-back fires once, at its first occurrence.
    """
    timing.validate()
    return first_slot_after(timing, require_aware("after", after))


def fire_times(timing: Timing, after: datetime, limit: int) -> list[datetime]:
    """Up to ``limit`` successive slots strictly after ``after``, in UTC (see next_fire)."""
    timing.validate()
    after = require_aware("after", after)
    if limit <= 0:
        return []
    return list(islice(slots_after(timing, after), limit))


# ---------------------------------------------------------------------------------------------
# Counting slots (misfire planning after long outages)
# ---------------------------------------------------------------------------------------------


def _slots_between(timing: Timing, lo: datetime, hi: datetime) -> list[datetime]:
    out: list[datetime] = []
    for slot in slots_after(timing, lo - TICK):
        if slot >= hi:
            break
        out.append(slot)
    return out


def _plain_day(tz: ZoneInfo, day: date) -> tuple[datetime, datetime] | None:
    """UTC bounds of local ``day`` if no DST transition touches it, else None.

    "Touches" includes a transition exactly at its start, because a skipped time just before
    midnight would otherwise put its shifted slot on this day without matching it.
    Assumes no local day holds two transitions that cancel each other out (zero net change);
    such a day would be counted as if it had none. Only the counting uses this.
    """
    start = datetime.combine(day, time())
    kind0, lo, _ = resolve_wall(start, tz)
    kind1, hi, _ = resolve_wall(start + DAY, tz)
    if kind0 != NORMAL or kind1 != NORMAL or hi - lo != DAY:
        return None
    if utc_offset((lo - SECOND).astimezone(tz)) != utc_offset(lo.astimezone(tz)):
        return None
    return lo, hi


def _cron_count_tail(
    timing: Timing, lo: datetime, hi: datetime, keep: int
) -> tuple[int, list[datetime]]:
    """Exact count of cron slots in [lo, hi) and the last ``keep`` of them, without walking
    every slot: a local day without a DST transition has ``per_day`` slots if it matches and
    none otherwise (the time of day never influences whether a day matches). Days with a
    transition, and the partial days at both ends, are walked slot by slot. A year of an
    every-minute schedule is therefore ~365 day checks plus a few thousand slots."""
    spec = compile_cron(timing.cron)
    tz = zone_of(timing)
    # Each piece: (start, end, count or None for "walk it").
    pieces: list[tuple[datetime, datetime, int | None]] = []
    cursor = lo
    day = lo.astimezone(tz).date() + DAY
    last_day = hi.astimezone(tz).date() - DAY
    while day <= last_day:
        bounds = _plain_day(tz, day)
        if bounds is not None and bounds[0] >= cursor and bounds[1] <= hi:
            if bounds[0] > cursor:
                pieces.append((cursor, bounds[0], None))
            pieces.append((bounds[0], bounds[1], spec.per_day if spec.day_matches(day) else 0))
            cursor = bounds[1]
        day += DAY
    if cursor < hi:
        pieces.append((cursor, hi, None))

    total = 0
    walked: dict[int, list[datetime]] = {}
    for index, (start, end, count) in enumerate(pieces):
        if count is None:
            walked[index] = _slots_between(timing, start, end)
            count = len(walked[index])
        total += count

    tail: list[datetime] = []
    for index in range(len(pieces) - 1, -1, -1):
        if len(tail) >= keep:
            break
        start, end, count = pieces[index]
        if count == 0:
            continue
        found = walked.get(index)
        if found is None:
            found = _slots_between(timing, start, end)
        tail = found + tail
    return total, tail[-keep:] if keep else []


def count_tail(timing: Timing, lo: datetime, hi: datetime, keep: int) -> tuple[int, list[datetime]]:
    """Number of slots in [lo, hi) (UTC) and the most recent ``keep`` of them, oldest first."""
    if timing.starts_at is not None:
        lo = max(lo, timing.starts_at.astimezone(UTC))
    if timing.ends_at is not None:
        hi = min(hi, timing.ends_at.astimezone(UTC) + TICK)
    if hi <= lo:
        return 0, []
    if timing.kind == "interval":
        anchor, step = _interval_anchor(timing)
        # Slots k in [first, stop): ceil((x - anchor) / step), written with floor division.
        first = max(0, -((anchor - lo) // step))
        stop = max(0, -((anchor - hi) // step))
        count = max(0, stop - first)
        return count, [anchor + k * step for k in range(max(first, stop - keep), stop)]
    if timing.kind == "once":
        found = _slots_between(timing, lo, hi)
        return len(found), found[-keep:] if keep else []
    return _cron_count_tail(timing, lo, hi, keep)


def slot_jitter(schedule_id: int | str, slot: datetime, jitter_seconds: int) -> timedelta:
    """Deterministic offset in [0, jitter_seconds) for spreading load, with microsecond
    resolution.

    Derived from SHA-256 of the schedule id and the slot's UTC instant (not ``hash()``, which
    is salted per process), so every scheduler process agrees. ``5`` and ``"5"`` are the
    same id. ``jitter_seconds <= 0`` means no jitter.
    """
    if jitter_seconds <= 0:
        return timedelta(0)
    instant = require_aware("slot", slot)
    digest = hashlib.sha256(f"{schedule_id}|{instant.isoformat()}".encode()).digest()
    value = int.from_bytes(digest[:8], "big") % (jitter_seconds * 1_000_000)
    return timedelta(microseconds=value)

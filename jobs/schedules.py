"""The scheduler's time engine: when does a schedule fire, and what to do after downtime.

Pure and Django-free (stdlib + cronsim). Every datetime going in must be timezone-aware and
every datetime coming out is in UTC, so callers can store and compare slots without caring
which zone a schedule was written in.

Three kinds of timing are supported:

* ``cron``: a 5-field expression evaluated on the wall clock of an IANA time zone, with
  Debian-cron-style daylight-saving handling (see :func:`next_fire`);
* ``interval``: ``anchor + k * interval`` in absolute time (DST never moves these);
* ``once``: a single ``run_at``.

cronsim is used to parse cron expressions and to walk *naive local wall-clock* times. The
mapping from wall-clock times to real instants (gaps, repeated hours) is done here rather than
by cronsim's own time-zone mode. cronsim gets the Debian behaviour right for the common cases
(``30 2 * * *`` shifted to 03:00 or fired once; ``0 * * * *`` and ``*/15 * * * *`` every real
hour / quarter hour, also with Lord Howe's 30-minute shift), but it differs from the rules
we want in three places, each pinned by a test in tests/jobs/test_schedules.py:

1. cronsim (like Debian) picks the DST behaviour from the *text*: a minute or hour field
   starting with ``*`` makes a "wildcard" job. So ``0 */2 * * *`` fires twice at 02:00 on a
   fall-back day and not at all on a spring-forward day (``*/30 2 * * *`` likewise), while
   ``0 0-23 * * *`` leaves a two-hour gap. We decide by what the expression *means*: a
   schedule that fires in every hour of the day follows real time (no gaps or doubles);
   anything else is a wall-clock schedule (a skipped time fires once, when the clocks jump; a
   repeated time fires once, at its first occurrence).
2. cronsim reads a stepped single-value range such as ``0-0/1`` as "0 to the end of the
   field"; normalize_cron rewrites it to ``0``, which is what Debian does.
3. Started inside the second pass of a repeated hour, cronsim can return a time *earlier*
   than the start (after 02:10 CET on 2026-10-25, "30 2 * * *" gives 02:30 CEST = 00:30 UTC).
   We never return a slot at or before ``after``.
"""

from __future__ import annotations

import difflib
import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

__all__ = [
    "CRON_ALIASES",
    "DuePlan",
    "ScheduleError",
    "Timing",
    "dst_note",
    "fire_times",
    "next_fire",
    "normalize_cron",
    "parse_timezone",
    "plan_due",
    "slot_jitter",
]


class ScheduleError(ValueError):
    """Invalid timing input.

    ``field`` names the offending input ("cron", "interval", "timezone", "run_at", "ends_at",
    "starts_at", "kind", ...) so a form can attach the message to the right widget; the
    message says what is wrong and how to fix it.
    """

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"ScheduleError(field={self.field!r}, message={self.message!r})"


CRON_ALIASES: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

KINDS = ("cron", "interval", "once")
POLICIES = ("skip", "latest", "all")

# The smallest datetime step: "strictly after x" and "at or after x + _TICK" are the same set.
_TICK = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)

# ---------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # Scanning the tz database takes ~0.1 s, so only the error path pays for it, and only once.
    return frozenset(available_timezones())


def _suggest_zone(name: str) -> str | None:
    zones = _known_zones()
    by_lower = {z.lower(): z for z in zones}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, sorted(zones), n=1, cutoff=0.8)
    return close[0] if close else None


def parse_timezone(name: str) -> ZoneInfo:
    """Return the IANA time zone called ``name`` (surrounding whitespace is ignored).

    Raises ``ScheduleError("timezone", ...)`` for unknown names, with a "did you mean"
    suggestion when one is close. ``localtime`` is refused because it means whatever zone the
    server happens to be configured with, so two scheduler hosts could disagree.
    """
    key = name.strip() if isinstance(name, str) else ""
    if key == "localtime":
        raise ScheduleError(
            "timezone",
            "Time zone 'localtime' depends on the server's configuration: use an IANA name "
            "such as Europe/Berlin or UTC.",
        )
    try:
        if not key:
            raise ValueError(key)
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        message = f"Unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC."
        suggestion = _suggest_zone(key) if key else None
        if suggestion:
            message += f" Did you mean {suggestion!r}?"
        raise ScheduleError("timezone", message) from None


def _offset(dt: datetime) -> timedelta:
    offset = dt.utcoffset()
    if offset is None:  # pragma: no cover - only reachable with a broken tzinfo
        raise ValueError(f"{dt!r} has no UTC offset")
    return offset


def _is_aware(dt: datetime) -> bool:
    return dt.tzinfo is not None and dt.utcoffset() is not None


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _require_aware(field: str, dt: datetime) -> datetime:
    if not _is_aware(dt):
        raise ScheduleError(
            field,
            f"{field} must be timezone-aware (got naive {dt.isoformat()}); attach a zone, "
            "e.g. datetime(..., tzinfo=datetime.UTC).",
        )
    return dt.astimezone(UTC)


# How a naive wall-clock time maps onto real instants.
_NORMAL = 0  # exactly one instant
_REPEATED = 1  # two instants: clocks went back and the wall time occurred twice
_SKIPPED = 2  # no instant: clocks went forward over it


def _resolve(wall: datetime, tz: ZoneInfo) -> tuple[int, datetime, datetime]:
    """Map naive ``wall`` in ``tz`` to (kind, first instant, second instant), both in UTC.

    For a skipped wall time both instants are the moment the clocks jumped (the "shifted"
    time Debian cron uses for fixed-time jobs).
    """
    # PEP 495: fold=0 uses the offset in force *before* a transition, fold=1 the one after.
    old = _offset(wall.replace(tzinfo=tz, fold=0))
    new = _offset(wall.replace(tzinfo=tz, fold=1))
    if old == new:
        instant = (wall - old).replace(tzinfo=UTC)
        return _NORMAL, instant, instant
    if old > new:
        return _REPEATED, (wall - old).replace(tzinfo=UTC), (wall - new).replace(tzinfo=UTC)
    # In a gap, wall - new is still before the jump and wall - old already after it.
    jump = _transition_between(
        (wall - new).replace(tzinfo=UTC), (wall - old).replace(tzinfo=UTC), tz
    )
    return _SKIPPED, jump, jump


def _transition_between(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second in (lo, hi] whose UTC offset differs from lo's.

    zoneinfo has no API for transition instants, and tzdata transitions fall on whole seconds,
    so a bisection over at most a few hours of seconds is exact and cheap (~15 steps).
    """
    old = _offset(lo.astimezone(tz))
    while hi - lo > _SECOND:
        mid = (lo + (hi - lo) / 2).replace(microsecond=0)
        if _offset(mid.astimezone(tz)) == old:
            lo = mid
        else:
            hi = mid
    return hi


# ---------------------------------------------------------------------------------------------
# Cron expressions
# ---------------------------------------------------------------------------------------------

_FIELD_HELP = {
    "minute": "the minute field takes 0-59",
    "hour": "the hour field takes 0-23",
    "day-of-month": "the day-of-month field takes 1-31 (or L, LW)",
    "month": "the month field takes 1-12 or JAN-DEC",
    "day-of-week": "the day-of-week field takes 0-7 or SUN-SAT (0 and 7 are Sunday)",
}
_FIELD_ORDER = ["minute", "hour", "day-of-month", "month", "day-of-week"]
# Only used as the starting point of validation walks, so any fixed date works; a leap year
# start means a 50-year walk covers every weekday/leap-day combination (28-year cycle).
_REFERENCE = datetime(2000, 1, 1)


@dataclass(frozen=True)
class _CronSpec:
    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    matcher: CronSim  # only used for its pure match_day(); never iterated
    real_time: bool
    per_day: int  # slots on a matching day with no DST transition

    def day_matches(self, day: date) -> bool:
        return day.month in self.months and self.matcher.match_day(day)


def _syntax_error(text: str, fields: list[str], exc: Exception) -> ScheduleError:
    reason = str(exc) or type(exc).__name__
    detail = ""
    for name, value in zip(_FIELD_ORDER, fields, strict=True):
        if reason.lower().endswith(name):
            detail = f" in {value!r}: {_FIELD_HELP[name]}"
            break
    return ScheduleError(
        "cron",
        f"Invalid cron expression {text!r}: {reason}{detail}. Each field accepts a number, a "
        "range (1-5), a list (1,3,5), a step (*/15 or 0-30/10) or *.",
    )


def _collapse_single_ranges(field: str) -> str:
    """Rewrite stepped one-value ranges ("5-5/10") as the value ("5").

    cronsim reads a stepped range that contains a single value as "from that value to the end
    of the field" ("0-0/1" in day-of-week becomes every day), unlike Debian cron, where a
    range never extends past its end.
    """
    terms = []
    for term in field.split(","):
        span, slash, _step = term.partition("/")
        low, dash, high = span.partition("-")
        if (
            slash
            and dash
            and low
            and (low == high or (low.isdigit() and high.isdigit() and int(low) == int(high)))
        ):
            term = low
        terms.append(term)
    return ",".join(terms)


@lru_cache(maxsize=1024)
def _compile(expr: str) -> _CronSpec:
    if not isinstance(expr, str):
        raise ScheduleError("cron", "The cron expression must be text, e.g. '*/15 * * * *'.")
    text = " ".join(expr.split())
    if not text:
        raise ScheduleError(
            "cron", "The cron expression is empty: enter 5 fields such as '0 3 * * *' or @daily."
        )
    if text.startswith("@"):
        alias = text.lower()
        if alias == "@reboot":
            raise ScheduleError(
                "cron", "@reboot is not supported: a schedule needs times, e.g. @daily."
            )
        if alias not in CRON_ALIASES:
            raise ScheduleError(
                "cron",
                f"Unknown cron alias {text!r}: use one of {', '.join(CRON_ALIASES)} "
                "or 5 fields such as '0 3 * * *'.",
            )
        text = CRON_ALIASES[alias]

    shown = text  # quote what the user typed (after alias expansion), not our upper-cased form
    fields = text.upper().split()
    if len(fields) != 5:
        hint = " (seconds and year fields are not supported)" if len(fields) > 5 else ""
        raise ScheduleError(
            "cron",
            "Expected 5 fields (minute hour day-of-month month day-of-week) or an alias like "
            f"@daily; got {len(fields)}{hint}.",
        )
    fields = [_collapse_single_ranges(f) for f in fields]
    text = " ".join(fields)

    # cronsim reports "this day never exists in these months" (0 0 30 2 *) with the same
    # "Bad day-of-month" message as a typo, so check the syntax with the month field relaxed
    # to "*" first (that check cannot trigger with every month allowed), then the month alone.
    syntax_errors = (CronSimError, ValueError, IndexError, AssertionError)
    try:
        CronSim(" ".join([*fields[:3], "*", fields[4]]), _REFERENCE)
        CronSim(f"0 0 * {fields[3]} *", _REFERENCE)
    except syntax_errors as exc:
        raise _syntax_error(shown, shown.split(), exc) from None

    try:
        matcher = CronSim(text, _REFERENCE)
    except syntax_errors:
        raise ScheduleError(
            "cron",
            f"Cron expression {shown!r} never fires: none of the months it allows has the "
            "requested day (e.g. '0 0 30 2 *' asks for February 30th). Change the "
            "day-of-month or month field.",
        ) from None
    try:
        # cronsim gives up (StopIteration) after 50 years without a match, which bounds the
        # time spent on impossible combinations such as "0 0 */31 * MON#5" (day 1 AND the 5th
        # Monday). 50 years from a leap year covers every weekday/leap-day combination.
        next(CronSim(text, _REFERENCE))
    except StopIteration:
        raise ScheduleError(
            "cron",
            f"Cron expression {shown!r} never fires: no date satisfies its day-of-month, "
            "month and day-of-week fields together. Relax one of them.",
        ) from None

    minutes = frozenset(matcher.minutes)
    hours = frozenset(matcher.hours)
    return _CronSpec(
        expr=text,
        minutes=minutes,
        hours=hours,
        months=frozenset(matcher.months),
        matcher=matcher,
        real_time=hours == frozenset(range(24)),
        per_day=len(minutes) * len(hours),
    )


def normalize_cron(expr: str) -> str:
    """Validate a cron expression and return its canonical 5-field form.

    Whitespace is collapsed, aliases (``@daily`` ...) are expanded and month/day names are
    upper-cased. Raises ``ScheduleError("cron", ...)`` for a wrong field count, a syntax error
    (quoting cronsim's reason), or an expression that can never fire (``0 0 30 2 *``); the
    never-fires check is bounded, so it cannot hang.
    """
    return _compile(expr).expr


def _walls(expr: str, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times matching ``expr`` strictly after naive ``start`` (to the second)."""
    it = CronSim(expr, start)
    while True:
        try:
            yield next(it)
        except (StopIteration, OverflowError):
            return


def _cron_after(spec: _CronSpec, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Cron slots strictly after ``after`` (UTC), ascending, without end."""
    local = after.astimezone(tz)
    wall = local.replace(tzinfo=None)
    if local.fold == 0:
        kind, first, second = _resolve(wall, tz)
        if kind == _REPEATED:
            # `after` lies in the first pass of a repeated hour: instants still to come (the
            # second pass) show wall times earlier than `wall`, so start the walk that much
            # earlier; anything not after `after` is filtered below.
            wall -= second - first
    walls = _walls(spec.expr, wall)

    if not spec.real_time:
        # Wall-clock schedule (Debian's fixed-time jobs): a repeated time fires at its first
        # occurrence only; a skipped time fires once, the moment the clocks jump. Several
        # skipped times collapse into that one slot. Instants are non-decreasing here.
        last: datetime | None = None
        for w in walls:
            _kind, slot, _second = _resolve(w, tz)
            if slot > after and (last is None or slot > last):
                last = slot
                yield slot
        return

    # Real-time schedule (fires in every hour): every real instant whose wall time matches,
    # so a repeated hour fires twice and a skipped hour not at all, giving an unbroken real
    # cadence. Second-pass instants interleave with later wall times, so buffer them in a
    # heap; first-pass instants increase with the wall time, so anything up to the current
    # first instant is final.
    pending: list[datetime] = []
    for w in walls:
        kind, first, second = _resolve(w, tz)
        if kind == _SKIPPED:
            continue
        heapq.heappush(pending, first)
        if kind == _REPEATED:
            heapq.heappush(pending, second)
        while pending and pending[0] <= first:
            slot = heapq.heappop(pending)
            if slot > after:
                yield slot
    while pending:
        slot = heapq.heappop(pending)
        if slot > after:
            yield slot


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


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
                _require_aware(name, value)
                if not EARLIEST <= value <= LATEST:
                    # Times near year 1 or 9999 overflow once shifted into a zone.
                    raise ScheduleError(
                        name,
                        f"{name} must be between {EARLIEST:%Y} and {LATEST:%Y}; got "
                        f"{value:%Y-%m-%d}. Leave ends_at empty for a schedule without end.",
                    )
        if self.kind == "cron":
            _compile(self.cron)
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


def _tz(timing: Timing) -> ZoneInfo:
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


def _slots(timing: Timing, after: datetime) -> Iterator[datetime]:
    """All slots strictly after ``after`` (aware, any zone), in UTC, ascending, within bounds."""
    after = after.astimezone(UTC)
    if timing.starts_at is not None:
        after = max(after, timing.starts_at.astimezone(UTC) - _TICK)
    ends = timing.ends_at.astimezone(UTC) if timing.ends_at is not None else None

    source: Iterator[datetime]
    if timing.kind == "cron":
        source = _cron_after(_compile(timing.cron), _tz(timing), after)
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


def _next(timing: Timing, after: datetime) -> datetime | None:
    return next(_slots(timing, after), None)


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
    return _next(timing, _require_aware("after", after))


def fire_times(timing: Timing, after: datetime, limit: int) -> list[datetime]:
    """Up to ``limit`` successive slots strictly after ``after``, in UTC (see next_fire)."""
    timing.validate()
    after = _require_aware("after", after)
    if limit <= 0:
        return []
    return list(islice(_slots(timing, after), limit))


# ---------------------------------------------------------------------------------------------
# Counting slots (misfire planning after long outages)
# ---------------------------------------------------------------------------------------------


def _slots_between(timing: Timing, lo: datetime, hi: datetime) -> list[datetime]:
    out: list[datetime] = []
    for slot in _slots(timing, lo - _TICK):
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
    kind0, lo, _ = _resolve(start, tz)
    kind1, hi, _ = _resolve(start + _DAY, tz)
    if kind0 != _NORMAL or kind1 != _NORMAL or hi - lo != _DAY:
        return None
    if _offset((lo - _SECOND).astimezone(tz)) != _offset(lo.astimezone(tz)):
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
    spec = _compile(timing.cron)
    tz = _tz(timing)
    # Each piece: (start, end, count or None for "walk it").
    pieces: list[tuple[datetime, datetime, int | None]] = []
    cursor = lo
    day = lo.astimezone(tz).date() + _DAY
    last_day = hi.astimezone(tz).date() - _DAY
    while day <= last_day:
        bounds = _plain_day(tz, day)
        if bounds is not None and bounds[0] >= cursor and bounds[1] <= hi:
            if bounds[0] > cursor:
                pieces.append((cursor, bounds[0], None))
            pieces.append((bounds[0], bounds[1], spec.per_day if spec.day_matches(day) else 0))
            cursor = bounds[1]
        day += _DAY
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


def _count_tail(
    timing: Timing, lo: datetime, hi: datetime, keep: int
) -> tuple[int, list[datetime]]:
    """Number of slots in [lo, hi) (UTC) and the most recent ``keep`` of them, oldest first."""
    if timing.starts_at is not None:
        lo = max(lo, timing.starts_at.astimezone(UTC))
    if timing.ends_at is not None:
        hi = min(hi, timing.ends_at.astimezone(UTC) + _TICK)
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


# ---------------------------------------------------------------------------------------------
# Misfire planning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DuePlan:
    """What to do with the slots that became due while the scheduler was away.

    ``fire``: slots to run now, oldest first. ``skip``: slots not run with a human reason,
    oldest first; at most ``cap`` are listed, the most recent ones (the ones an operator is
    most likely to ask about). ``skipped_unrecorded``: exact number of further skipped slots
    not listed. ``next_slot``: the first slot strictly after ``now`` (None when the schedule is
    finished), or, when ``fire`` was truncated at ``cap``, the first slot not fired, so the
    next call continues where this one stopped.
    """

    fire: list[datetime]
    skip: list[tuple[datetime, str]]
    skipped_unrecorded: int
    next_slot: datetime | None


def _human(delta: timedelta) -> str:
    """'2h 3m', '3d 4h', '45s': the two most significant non-zero units."""
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{v}{unit}" for v, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if v
    ]
    return " ".join(parts[:2]) or "0s"


def _stamp(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _within(timing: Timing, slot: datetime) -> bool:
    if timing.starts_at is not None and slot < timing.starts_at:
        return False
    return not (timing.ends_at is not None and slot > timing.ends_at)


def plan_due(
    timing: Timing,
    *,
    next_slot: datetime,
    now: datetime,
    policy: str,
    grace: timedelta,
    cap: int = 100,
) -> DuePlan:
    """Decide which due slots to run after the scheduler was away (or just on a normal tick).

    The due slots are ``next_slot`` (the schedule's stored cursor, trusted to be a slot) and
    every following slot <= ``now``. A slot is on time if ``now - slot <= grace``, otherwise
    missed. On-time slots always fire. Missed slots are skipped, except that policy
    "latest" fires the most recent missed slot when no slot is on time. Policies "skip" and
    "all" therefore differ only in intent (and reason text): with "all" the caller passes
    the catch-up window (e.g. 3 days) as ``grace``.

    ``fire`` is capped at ``cap`` slots for every policy (then ``next_slot`` is the first slot
    not fired); at most ``cap`` skipped slots are listed, the rest are counted exactly in
    ``skipped_unrecorded``. The cost does not grow with the length of the outage beyond a
    cheap per-day count (cron) or arithmetic (interval). If ``next_slot`` is after ``now``,
    nothing is due and the cursor is returned unchanged (it never moves backwards).
    """
    timing.validate()
    now = _require_aware("now", now)
    cursor = _require_aware("next_slot", next_slot)
    if policy not in POLICIES:
        raise ScheduleError(
            "policy", f"Unknown misfire policy {policy!r}: use 'skip', 'latest' or 'all'."
        )
    if grace < timedelta(0):
        raise ScheduleError("grace", f"The grace period must not be negative; got {grace}.")
    if cap < 1:
        raise ValueError(f"cap must be at least 1; got {cap}")

    first = cursor if _within(timing, cursor) else _next(timing, cursor)
    if first is None or first > now:
        return DuePlan(fire=[], skip=[], skipped_unrecorded=0, next_slot=first)

    cutoff = now - grace  # slots before this are missed; at or after it, on time
    if first < cutoff:
        # `first` is counted by hand: the cursor may predate an edit of the expression.
        later, tail = _count_tail(timing, first + _TICK, cutoff, cap + 1)
        missed_total = 1 + later
        missed = ([first, *tail])[-(cap + 1) :]
        on_time_iter: Iterator[datetime] = _slots(timing, cutoff - _TICK)
    else:
        missed_total, missed = 0, []
        on_time_iter = _chain_first(first, _slots(timing, first))
    on_time = list(islice(_until(on_time_iter, now), cap + 1))

    fire: list[datetime] = []
    grace_text = _human(grace)
    if policy == "latest" and missed and not on_time:
        latest = missed.pop()
        missed_total -= 1
        fire.append(latest)
        reason = f"superseded by the latest missed run at {_stamp(latest)}; misfire policy latest"
    elif policy == "latest":
        reason = "an on-time run fires instead; misfire policy latest"
    elif policy == "all":
        reason = f"outside the {grace_text} catch-up window; misfire policy all"
    else:
        reason = f"grace {grace_text}; misfire policy skip"

    recorded = missed[-cap:]
    skip = [(slot, f"missed by {_human(now - slot)}; {reason}") for slot in recorded]

    fire.extend(on_time[:cap])
    if len(on_time) > cap:
        following: datetime | None = on_time[cap]
    else:
        following = _next(timing, now)
    return DuePlan(
        fire=fire,
        skip=skip,
        skipped_unrecorded=missed_total - len(recorded),
        next_slot=following,
    )


def _chain_first(first: datetime, rest: Iterator[datetime]) -> Iterator[datetime]:
    yield first
    yield from rest


def _until(slots: Iterator[datetime], end: datetime) -> Iterator[datetime]:
    for slot in slots:
        if slot > end:
            return
        yield slot


# ---------------------------------------------------------------------------------------------
# Admin helpers
# ---------------------------------------------------------------------------------------------


def _utc_offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


def _zone_label(tz: ZoneInfo) -> str:
    return tz.key if tz.key else str(tz)


def _list_times(walls: list[datetime]) -> str:
    names = [f"{w:%H:%M}" for w in walls]
    if len(names) == 1:
        return f"{names[0]} does"
    if len(names) <= 4:
        return f"{', '.join(names[:-1])} and {names[-1]} do"
    return f"{names[0]}-{names[-1]} ({len(names)} run times) do"


def _shift_note(spec: _CronSpec, tz: ZoneInfo, slot: datetime) -> str | None:
    old = _offset((slot - _SECOND).astimezone(tz))
    new = _offset(slot.astimezone(tz))
    if new <= old:
        return None  # no spring-forward jump lands exactly on this slot
    gap_start = (slot + old).replace(tzinfo=None)
    gap_end = (slot + new).replace(tzinfo=None)
    nominal: list[datetime] = []
    for w in _walls(spec.expr, gap_start - _SECOND):
        if w >= gap_end:
            break
        nominal.append(w)
    if not nominal:
        return None
    return (
        f"{_list_times(nominal)} not exist on {gap_start:%Y-%m-%d} in {_zone_label(tz)} "
        f"(clocks go forward); fires {'once ' if len(nominal) > 1 else ''}at "
        f"{gap_end:%H:%M} local instead."
    )


def dst_note(timing: Timing, slot: datetime) -> str | None:
    """Explain how daylight saving affects ``slot`` (aware, any zone) for an admin preview.

    Returns a "shifted" note when the cron schedule's nominal local time did not exist that
    day and the slot was moved to the moment the clocks jumped, e.g. "02:30 does not exist on
    2026-03-29 in Europe/Berlin (clocks go forward); fires at 03:00 local instead."; an
    "ambiguous" note when the slot's local wall time occurs twice that day (fall back), saying
    which occurrence it is; None otherwise.
    """
    timing.validate()
    slot = _require_aware("slot", slot)
    tz = _tz(timing)
    if timing.kind == "cron":
        spec = _compile(timing.cron)
        if not spec.real_time:
            note = _shift_note(spec, tz, slot)
            if note is not None:
                return note
    local = slot.astimezone(tz)
    kind, first, _second = _resolve(local.replace(tzinfo=None), tz)
    if kind != _REPEATED:
        return None
    which = "first" if slot == first else "second"
    where = f"{local.tzname()}, {_utc_offset_text(_offset(local))}"
    text = f"{local:%H:%M} occurs twice on {local:%Y-%m-%d} in {_zone_label(tz)} (clocks go back); "
    if timing.kind == "cron" and not _compile(timing.cron).real_time:
        return text + f"fires once, at the first occurrence ({where})."
    return text + f"this run is at the {which} occurrence ({where})."


def slot_jitter(schedule_id: int | str, slot: datetime, jitter_seconds: int) -> timedelta:
    """Deterministic offset in [0, jitter_seconds) for spreading load, with microsecond
    resolution.

    Derived from SHA-256 of the schedule id and the slot's UTC instant (not ``hash()``, which
    is salted per process), so every scheduler process agrees. ``5`` and ``"5"`` are the
    same id. ``jitter_seconds <= 0`` means no jitter.
    """
    if jitter_seconds <= 0:
        return timedelta(0)
    instant = _require_aware("slot", slot)
    digest = hashlib.sha256(f"{schedule_id}|{instant.isoformat()}".encode()).digest()
    value = int.from_bytes(digest[:8], "big") % (jitter_seconds * 1_000_000)
    return timedelta(microseconds=value)

"""Cron expressions: parsing, normalising and walking them on a zone's wall clock.


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
we want in three places, each pinned by a test in tests/jobs/timing/test_timing.py:

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

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from jobs.timing.zones import REPEATED, SKIPPED, ScheduleError, resolve_wall

CRON_ALIASES: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


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
class CronSpec:
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
def compile_cron(expr: str) -> CronSpec:
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
    return CronSpec(
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
    return compile_cron(expr).expr


def wall_times(expr: str, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times matching ``expr`` strictly after naive ``start`` (to the second)."""
    it = CronSim(expr, start)
    while True:
        try:
            yield next(it)
        except (StopIteration, OverflowError):
            return


def cron_after(spec: CronSpec, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Cron slots strictly after ``after`` (UTC), ascending, without end."""
    local = after.astimezone(tz)
    wall = local.replace(tzinfo=None)
    if local.fold == 0:
        kind, first, second = resolve_wall(wall, tz)
        if kind == REPEATED:
            # `after` lies in the first pass of a repeated hour: instants still to come (the
            # second pass) show wall times earlier than `wall`, so start the walk that much
            # earlier; anything not after `after` is filtered below.
            wall -= second - first
    walls = wall_times(spec.expr, wall)

    if not spec.real_time:
        # Wall-clock schedule (Debian's fixed-time jobs): a repeated time fires at its first
        # occurrence only; a skipped time fires once, the moment the clocks jump. Several
        # skipped times collapse into that one slot. Instants are non-decreasing here.
        last: datetime | None = None
        for w in walls:
            _kind, slot, _second = resolve_wall(w, tz)
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
        kind, first, second = resolve_wall(w, tz)
        if kind == SKIPPED:
            continue
        heapq.heappush(pending, first)
        if kind == REPEATED:
            heapq.heappush(pending, second)
        while pending and pending[0] <= first:
            slot = heapq.heappop(pending)
            if slot > after:
                yield slot
    while pending:
        slot = heapq.heappop(pending)
        if slot > after:
            yield slot

"""Time zones and the mapping of wall-clock times onto real instants.

Every datetime going in must be timezone-aware and every datetime coming out is in UTC, so
callers can store and compare slots without caring which zone a schedule was written in.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


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


KINDS = ("cron", "interval", "once")
POLICIES = ("skip", "latest", "all")

# The smallest datetime step: "strictly after x" and "at or after x + TICK" are the same set.
TICK = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)

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


def utc_offset(dt: datetime) -> timedelta:
    offset = dt.utcoffset()
    if offset is None:  # pragma: no cover - only reachable with a broken tzinfo
        raise ValueError(f"{dt!r} has no UTC offset")
    return offset


def _is_aware(dt: datetime) -> bool:
    return dt.tzinfo is not None and dt.utcoffset() is not None


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def require_aware(field: str, dt: datetime) -> datetime:
    if not _is_aware(dt):
        raise ScheduleError(
            field,
            f"{field} must be timezone-aware (got naive {dt.isoformat()}); attach a zone, "
            "e.g. datetime(..., tzinfo=datetime.UTC).",
        )
    return dt.astimezone(UTC)


# How a naive wall-clock time maps onto real instants.
NORMAL = 0  # exactly one instant
REPEATED = 1  # two instants: clocks went back and the wall time occurred twice
SKIPPED = 2  # no instant: clocks went forward over it


def resolve_wall(wall: datetime, tz: ZoneInfo) -> tuple[int, datetime, datetime]:
    """Map naive ``wall`` in ``tz`` to (kind, first instant, second instant), both in UTC.

    For a skipped wall time both instants are the moment the clocks jumped (the "shifted"
    time Debian cron uses for fixed-time jobs).
    """
    # PEP 495: fold=0 uses the offset in force *before* a transition, fold=1 the one after.
    old = utc_offset(wall.replace(tzinfo=tz, fold=0))
    new = utc_offset(wall.replace(tzinfo=tz, fold=1))
    if old == new:
        instant = (wall - old).replace(tzinfo=UTC)
        return NORMAL, instant, instant
    if old > new:
        return REPEATED, (wall - old).replace(tzinfo=UTC), (wall - new).replace(tzinfo=UTC)
    # In a gap, wall - new is still before the jump and wall - old already after it.
    jump = _transition_between(
        (wall - new).replace(tzinfo=UTC), (wall - old).replace(tzinfo=UTC), tz
    )
    return SKIPPED, jump, jump


def _transition_between(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second in (lo, hi] whose UTC offset differs from lo's.

    zoneinfo has no API for transition instants, and tzdata transitions fall on whole seconds,
    so a bisection over at most a few hours of seconds is exact and cheap (~15 steps).
    """
    old = utc_offset(lo.astimezone(tz))
    while hi - lo > SECOND:
        mid = (lo + (hi - lo) / 2).replace(microsecond=0)
        if utc_offset(mid.astimezone(tz)) == old:
            lo = mid
        else:
            hi = mid
    return hi

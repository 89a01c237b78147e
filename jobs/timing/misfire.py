"""What to do with the slots that became due while the scheduler was away."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from jobs.timing.slots import Timing, count_tail, first_slot_after, slots_after
from jobs.timing.zones import POLICIES, TICK, ScheduleError, require_aware


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
    now = require_aware("now", now)
    cursor = require_aware("next_slot", next_slot)
    if policy not in POLICIES:
        raise ScheduleError(
            "policy", f"Unknown misfire policy {policy!r}: use 'skip', 'latest' or 'all'."
        )
    if grace < timedelta(0):
        raise ScheduleError("grace", f"The grace period must not be negative; got {grace}.")
    if cap < 1:
        raise ValueError(f"cap must be at least 1; got {cap}")

    first = cursor if _within(timing, cursor) else first_slot_after(timing, cursor)
    if first is None or first > now:
        return DuePlan(fire=[], skip=[], skipped_unrecorded=0, next_slot=first)

    cutoff = now - grace  # slots before this are missed; at or after it, on time
    if first < cutoff:
        # `first` is counted by hand: the cursor may predate an edit of the expression.
        later, tail = count_tail(timing, first + TICK, cutoff, cap + 1)
        missed_total = 1 + later
        missed = ([first, *tail])[-(cap + 1) :]
        on_time_iter: Iterator[datetime] = slots_after(timing, cutoff - TICK)
    else:
        missed_total, missed = 0, []
        on_time_iter = _chain_first(first, slots_after(timing, first))
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
        following = first_slot_after(timing, now)
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

"""Words for an operator about a slot: daylight-saving notes next to a preview."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from jobs.timing.cron import CronSpec, compile_cron, wall_times
from jobs.timing.slots import Timing, zone_of
from jobs.timing.zones import REPEATED, SECOND, require_aware, resolve_wall, utc_offset


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


def _shift_note(spec: CronSpec, tz: ZoneInfo, slot: datetime) -> str | None:
    old = utc_offset((slot - SECOND).astimezone(tz))
    new = utc_offset(slot.astimezone(tz))
    if new <= old:
        return None  # no spring-forward jump lands exactly on this slot
    gap_start = (slot + old).replace(tzinfo=None)
    gap_end = (slot + new).replace(tzinfo=None)
    nominal: list[datetime] = []
    for w in wall_times(spec.expr, gap_start - SECOND):
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
    slot = require_aware("slot", slot)
    tz = zone_of(timing)
    if timing.kind == "cron":
        spec = compile_cron(timing.cron)
        if not spec.real_time:
            note = _shift_note(spec, tz, slot)
            if note is not None:
                return note
    local = slot.astimezone(tz)
    kind, first, _second = resolve_wall(local.replace(tzinfo=None), tz)
    if kind != REPEATED:
        return None
    which = "first" if slot == first else "second"
    where = f"{local.tzname()}, {_utc_offset_text(utc_offset(local))}"
    text = f"{local:%H:%M} occurs twice on {local:%Y-%m-%d} in {_zone_label(tz)} (clocks go back); "
    if timing.kind == "cron" and not compile_cron(timing.cron).real_time:
        return text + f"fires once, at the first occurrence ({where})."
    return text + f"this run is at the {which} occurrence ({where})."

"""The scheduler's time engine: when a schedule fires, and what to do after downtime.

Pure and Django-free (stdlib + cronsim): every datetime going in must be timezone-aware and
every datetime coming out is in UTC.

    zones.py     time zones, and how a wall-clock time maps onto real instants
    cron.py      cron expressions: parse, normalise, walk on a zone's wall clock
    slots.py     Timing (cron, interval, once) and its slots: next_fire, fire_times, jitter
    misfire.py   plan_due: which slots to fire or skip after the scheduler was away
    describe.py  daylight-saving notes for the admin's preview
"""

from jobs.timing.cron import CRON_ALIASES, normalize_cron
from jobs.timing.describe import dst_note
from jobs.timing.misfire import DuePlan, plan_due
from jobs.timing.slots import Timing, fire_times, next_fire, slot_jitter
from jobs.timing.zones import EARLIEST, KINDS, LATEST, POLICIES, ScheduleError, parse_timezone

__all__ = [
    "CRON_ALIASES",
    "EARLIEST",
    "KINDS",
    "LATEST",
    "POLICIES",
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

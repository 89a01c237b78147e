"""Signals for alerting; receivers get keyword arguments and must not raise (send_robust)."""

from __future__ import annotations

from django.dispatch import Signal

run_dead = Signal()
"""A run failed on its last attempt. kwargs: run (JobRun)."""

schedules_late = Signal()
"""Schedules are due for longer than their misfire grace (no scheduler firing them).
kwargs: schedules (list[Schedule]), now (datetime)."""

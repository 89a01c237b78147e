"""`manage.py runscheduler`: fire due schedules and repair lost sends, until SIGTERM."""

from __future__ import annotations

import signal
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.scheduling.loop import SchedulerLoop, fake_clock


class Command(BaseCommand):
    help = (
        "Run the scheduler: every due schedule fires once per slot (any number of schedulers may "
        "run), pending runs are re-sent and dead workers' runs taken over. Stops on SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Run a single tick and sweep, then exit."
        )
        parser.add_argument(
            "--max-sleep",
            type=float,
            default=1.0,
            help="Longest sleep between ticks, in seconds (default 1).",
        )
        parser.add_argument(
            "--clock-start",
            help="Testing only: start a fake clock at this ISO 8601 time instead of using real time.",
        )
        parser.add_argument(
            "--clock-speed",
            type=float,
            default=1.0,
            help="Testing only: how fast the fake clock runs.",
        )

    def handle(
        self,
        *args: Any,
        once: bool,
        max_sleep: float,
        clock_start: str | None,
        clock_speed: float,
        **options: Any,
    ) -> None:
        clock = None  # the database's clock
        if clock_start:
            try:
                start = datetime.fromisoformat(clock_start)
            except ValueError:
                raise CommandError(
                    f"--clock-start {clock_start!r} is not an ISO 8601 date-time."
                ) from None
            if start.tzinfo is None:
                raise CommandError(
                    "--clock-start needs a UTC offset, e.g. 2026-03-29T00:00:00+00:00."
                )
            clock = fake_clock(start, clock_speed)
        loop = SchedulerLoop(clock=clock, max_sleep=max_sleep)
        if once:
            result = loop.run_once()
            if result is None:
                raise CommandError("The tick failed; see the log above.")
            self.stdout.write(
                f"tick: {result.schedules} schedule(s), {result.fired} fired, "
                f"{result.skipped} skipped, {result.sent} sent"
            )
            return
        signal.signal(signal.SIGTERM, loop.stop)
        signal.signal(signal.SIGINT, loop.stop)
        self.stdout.write(f"Scheduler {loop.name} running; SIGTERM or Ctrl-C stops it.")
        self.stdout.flush()
        loop.run_forever()
        self.stdout.write("Scheduler stopped.")

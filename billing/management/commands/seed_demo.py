"""`manage.py seed_demo`: demo tenants, logins, plans, subscriptions and billing history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing import services


class Command(BaseCommand):
    help = (
        "Create demo tenants, users, plans and subscriptions, and bill every period that "
        "ended before today (paid invoices with charges). Idempotent: a second run changes "
        "nothing. The demo passwords are public: never run it on a production site."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--today",
            help="Bill as if today were this date (YYYY-MM-DD); default: today in TIME_ZONE.",
        )

    def handle(self, *args: Any, today: str | None = None, **options: Any) -> None:
        try:
            day = dt.date.fromisoformat(today) if today else timezone.localdate()
        except ValueError:
            raise CommandError(f"--today: {today!r} is not a date such as 2026-11-01.") from None
        result = services.demo_seed(today=day)
        created = ", ".join(f"{count} {what}" for what, count in result.created.items())
        self.stdout.write(f"Created: {created}.")
        roles: dict[tuple[str, str], list[str]] = {}
        for username, password, role in result.logins:
            roles.setdefault((username, password), []).append(role)
        self.stdout.write("Logins (user / password):")
        for (username, password), what in roles.items():
            self.stdout.write(f"  {username} / {password}  ({', '.join(what)})")

"""One process for the embedded demo: web server, Dramatiq worker threads and the scheduler."""

from __future__ import annotations

import io
import signal
import threading
from typing import Any

import dramatiq
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser
from dramatiq.brokers.stub import StubBroker

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"  # noqa: S105 - the embedded demo only; refused when DEBUG is off


class Command(BaseCommand):
    help = (
        "Run the whole site in one process on the embedded default (SQLite + in-process broker): "
        "migrate, create demo data, then serve the web site with worker and scheduler threads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=4, help="Dramatiq worker threads.")
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo user and data.")

    def handle(
        self, *args: Any, host: str, port: int, threads: int, no_demo: bool, **options: Any
    ) -> None:
        broker = dramatiq.get_broker()
        if not isinstance(broker, StubBroker):
            raise CommandError(
                "runall is the one-process demo and needs the in-process broker: unset REDIS_URL "
                "and BROKER_URL, or run the real topology with `honcho start` (see README)."
            )
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo:
            self._ensure_demo_admin()
            if "seed_demo" in get_commands():
                call_command("seed_demo", stdout=io.StringIO())  # idempotent

        # SIGTERM behaves like Ctrl-C so the worker threads are stopped in `finally`.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=200)
        worker.start()
        stop = threading.Event()
        background = self._start_background_loops(stop)
        url = f"http://{host}:{port}/"
        member = "" if no_demo else "      (tenant member: user 'demo', password 'demo')"
        self.stdout.write(self.style.SUCCESS(f"Site:  {url}{member}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: {url}admin/  (user {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r})"
            )
        )
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False, skip_checks=True)
        finally:
            stop.set()
            for thread in background:
                thread.join(timeout=5)
            worker.stop(timeout=5000)

    def _start_background_loops(self, stop: threading.Event) -> list[threading.Thread]:
        import jobs

        scheduler = jobs.SchedulerLoop(name_suffix="runall", stop_event=stop)
        thread = threading.Thread(target=scheduler.run_forever, name="scheduler", daemon=True)
        thread.start()
        return [thread]

    def _ensure_demo_admin(self) -> None:
        if not settings.DEBUG:
            return
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USERNAME).exists():
            user_model.objects.create_superuser(DEMO_USERNAME, "admin@example.com", DEMO_PASSWORD)

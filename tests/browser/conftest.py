"""Browser tests: a real web server, worker and scheduler on the test database, driven by
Debian's headless Chromium through Playwright (no browser is downloaded)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

from tests.processes import (
    WORKER_READY,
    free_port,
    manage_command,
    project_env,
    running,
    wait_for_http,
    wait_for_log,
    wait_until,
    worker_command,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def site(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """`manage.py runserver`, `rundramatiq` and `runscheduler` on the test database; yields the
    site's base URL. The test's rows are committed, so all three processes see them."""
    port = free_port()
    env = project_env()
    with (
        running(
            manage_command("runserver", "--noreload", f"127.0.0.1:{port}"),
            env,
            tmp_path / "web.log",
        ) as web,
        running(worker_command(threads=2), env, tmp_path / "worker.log") as worker,
        running(manage_command("runscheduler"), env, tmp_path / "scheduler.log"),
    ):
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", web)
        wait_for_log(tmp_path / "worker.log", WORKER_READY, worker)
        yield base
    # PostgreSQL notices a killed client's connection a moment later; the test database can
    # only be flushed or dropped once it has.
    wait_until(_no_other_sessions, timeout=15, what="the processes' database sessions to end")


def _no_other_sessions() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return bool(cursor.fetchone()[0] == 0)


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Chromium page (1280x900). Playwright's sync API runs an event loop in this thread, so
    Django's async-safety check must be told that the test's ORM calls are fine."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(20_000)
            yield context.new_page()
        finally:
            # The test's ORM calls ran while Playwright's loop was current, which gives them a
            # connection of their own (asgiref's context-local storage); close it, or it
            # would keep the test database busy.
            connections.close_all()
            browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

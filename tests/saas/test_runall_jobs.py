"""The embedded default runs jobs end to end: a schedule fires, the in-process worker runs it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.processes import (
    embedded_env,
    free_port,
    manage_command,
    running,
    wait_for_http,
    wait_until,
)


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_a_due_schedule_runs_to_success_in_the_one_process_demo(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(tmp_path)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    with running(
        manage_command("runall", "--port", str(port), "--no-demo"), env, tmp_path / "runall.log"
    ) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=120)
        db = sqlite3.connect(tmp_path / "db.sqlite3", timeout=20)
        # Due now: the scheduler thread fires it and a worker thread runs it.
        db.execute(
            "INSERT INTO jobs_schedule (name, job, payload, kind, cron, interval_seconds, run_at, timezone, "
            "enabled, paused_reason, starts_at, ends_at, misfire_policy, misfire_grace_seconds, overlap_policy, "
            "jitter_seconds, queue, priority, max_retries, time_limit_seconds, next_run_at, last_fired_at, "
            "created_at, updated_at) VALUES ('demo', 'test.echo', '{\"value\": 42}', 'cron', '* * * * *', "
            "NULL, NULL, 'UTC', 1, '', NULL, NULL, 'skip', 3600, 'allow', 0, '', 0, NULL, NULL, "
            "strftime('%Y-%m-%d %H:%M:00', 'now'), NULL, datetime('now'), datetime('now'))"
        )
        db.commit()

        def finished() -> object:
            return db.execute(
                "SELECT state, result FROM jobs_jobrun WHERE job = 'test.echo'"
            ).fetchone()

        row = wait_until(
            lambda: (r := finished()) and r[0] == "succeeded" and r, timeout=60, what="the run"
        )
        assert row[1] == '{"echo": 42}'
        db.close()

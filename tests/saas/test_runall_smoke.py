"""The README's run command on a machine with no database or Redis configured."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.processes import embedded_env, free_port, manage_command, running, wait_for_http


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_runall_serves_admin_and_health_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "runall.log"
    with running(
        manage_command("runall", "--port", str(port)), embedded_env(tmp_path), log
    ) as proc:
        wait_for_http(f"{base}/healthz", proc, timeout=120)
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:  # noqa: S310
            assert response.status == 200
            assert json.load(response)["status"] == "ok"
        with urllib.request.urlopen(f"{base}/admin/login/", timeout=10) as response:  # noqa: S310
            assert response.status == 200
            assert b"csrfmiddlewaretoken" in response.read()
    output = log.read_text()
    assert f"Admin: {base}/admin/" in output and "password 'admin'" in output
    assert (tmp_path / "db.sqlite3").exists(), (
        "the embedded default writes its SQLite file to DATA_DIR"
    )
    assert "Worker has been shut down" in output, "SIGTERM stops the in-process worker cleanly"

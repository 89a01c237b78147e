"""The README's run command on a machine with no database or Redis configured."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
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
        # Every jobs admin page works on SQLite too (the demo seeds schedules and runs).
        browser = _signed_in(base, "admin", "admin")
        for page in [
            "/admin/",
            "/admin/jobs/schedule/",
            "/admin/jobs/schedule/?last_state=dead",
            "/admin/jobs/jobrun/",
            "/admin/jobs/jobrun/?q=abcd1234",
            "/admin/jobs/jobrun/?q=error:timeout",
            "/admin/jobs/schedule/overview/",
        ]:
            with browser.open(base + page, timeout=30) as response:
                assert response.status == 200, page
    output = log.read_text()
    assert f"Admin: {base}/admin/" in output and "password 'admin'" in output
    assert (tmp_path / "db.sqlite3").exists(), (
        "the embedded default writes its SQLite file to DATA_DIR"
    )
    assert "Worker has been shut down" in output, "SIGTERM stops the in-process worker cleanly"


def _signed_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    """A cookie-keeping client signed in to the admin through its login form."""
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with browser.open(f"{base}/admin/login/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    with browser.open(request, timeout=10) as response:
        assert response.url.endswith("/admin/"), "the admin login failed"
    return browser

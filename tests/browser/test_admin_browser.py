"""An operator's round trip in a real browser: log in, create a cron schedule while its preview
updates, save it, press "Run now" and watch the run succeed on a real worker. Saves the
screenshots used by docs/admin.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from jobs.models import JobRun, Schedule

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(180)]

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def test_create_a_schedule_watch_the_preview_run_it_now(site: str, page: Any) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("operator", "operator@example.com", "correct horse battery")
    Schedule.objects.filter(job__startswith="billing.").update(enabled=False, next_run_at=None)

    page.goto(f"{site}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    expect(page.get_by_role("link", name="Overview")).to_be_visible()

    page.goto(f"{site}/admin/jobs/schedule/add/")
    page.fill("#id_name", "Echo every five minutes")
    page.select_option("#id_job", "test.typed")
    expect(page.locator("#jobs-payload-schema")).to_contain_text('"tenant_id"')
    page.select_option("#id_job", "test.echo")
    expect(page.locator("#jobs-schema-note")).to_have_text(
        "test.echo declares no schema: any JSON object is accepted."
    )
    page.fill("#id_payload", '{"value": "hello from the admin"}')
    page.fill("#id_timezone", "Europe/Berlin")
    description = page.locator("#jobs-preview-description")
    rows = page.locator("#jobs-preview-rows tr")

    page.fill("#id_cron", "0 3 * * *")
    expect(description).to_have_text("At 03:00 (Europe/Berlin)")
    expect(rows).to_have_count(10)
    expect(rows.first.locator("td").nth(1)).to_contain_text("03:00 CE")  # CET or CEST

    page.fill("#id_cron", "61 * * * *")
    expect(page.locator("#jobs-preview-errors")).to_contain_text("the minute field takes 0-59")
    expect(page.locator("#jobs-preview-table")).to_be_hidden()

    page.fill("#id_cron", "*/5 * * * *")
    expect(description).to_have_text("Every 5 minutes (Europe/Berlin)")
    expect(rows).to_have_count(10)
    expect(page.locator("#jobs-preview-errors")).to_be_hidden()

    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    schedule = Schedule.objects.get(name="Echo every five minutes")
    assert schedule.cron == "*/5 * * * *" and schedule.next_run_at is not None
    schedule_url = page.url

    page.click("button[data-action=run_now]")
    expect(page.locator('.field-state_badge [data-state="succeeded"]')).to_be_visible(
        timeout=60_000
    )
    run = JobRun.objects.get(schedule=schedule, scheduled_for__isnull=True)
    assert run.state == "succeeded"
    assert run.result == {"echo": "hello from the admin"}
    expect(page.locator(".field-result_pretty pre")).to_contain_text("hello from the admin")

    page.goto(schedule_url)
    expect(page.locator('.field-recent_runs [data-state="succeeded"]')).to_be_visible()
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "admin-schedule.png"), full_page=True)

    page.goto(f"{site}/admin/jobs/schedule/overview/")
    expect(page.locator("#jobs-workers")).not_to_contain_text("No worker seen")
    expect(page.locator("#jobs-scheduler")).to_contain_text("Healthy")
    page.screenshot(path=str(IMAGES / "admin-overview.png"), full_page=True)

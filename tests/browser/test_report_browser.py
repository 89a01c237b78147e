"""A member presses "Generate monthly report" in headless Chromium and downloads the PDF."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from billing.models import Invoice, Membership, Tenant
from tests.browser.conftest import CHROMIUM_ARGS
from tests.processes import ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not shutil.which(CHROMIUM) and os.environ.get("CI") != "true",
        reason="Debian's chromium is not installed (apt-get install chromium); CI installs it",
    ),
]


def test_generate_follow_progress_and_download(site: str, broker: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
    acme = Tenant.objects.create(name="Acme", slug="acme")
    Membership.objects.create(
        user=User.objects.create_user("demo", "demo@example.com", "demo"), tenant=acme
    )
    for i, amount in enumerate([4900, 9900]):
        Invoice.objects.create(
            tenant=acme,
            period_start=date(2026, 10, 1 + i),
            period_end=date(2026, 10, 20 + i),
            amount=amount,
            currency="EUR",
            idempotency_key=f"invoice:{acme.pk}:{i}",
            status="paid",
            paid_at=datetime(2026, 10, 21, tzinfo=UTC),
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900}, accept_downloads=True)
            page.goto(f"{site}/app/")
            expect(page).to_have_url(f"{site}/accounts/login/?next=/app/")
            page.fill("#id_username", "demo")
            page.fill("#id_password", "demo")
            page.click("button[type=submit]")
            expect(page.get_by_role("heading", name="Acme")).to_be_visible()
            # A month not started yet: the server's message, in the alert tied to the field.
            page.fill("#month", "2999-01")
            page.get_by_role("button", name="Generate monthly report").click()
            expect(page.get_by_role("alert")).to_contain_text("has not started yet")
            expect(page.locator("#month")).to_have_attribute("aria-invalid", "true")
            page.fill("#month", "2026-10")
            page.get_by_role("button", name="Generate monthly report").click()
            expect(page.locator("#month")).not_to_have_attribute("aria-invalid", "true")
            expect(page.locator("#report-progress")).to_be_visible()
            download_link = page.get_by_role("link", name="Download the PDF")
            expect(download_link).to_be_visible(timeout=60_000)
            expect(page.get_by_role("status")).to_have_text("Your report is ready.")
            assert page.locator("#report-bar").get_attribute("value") == "100"
            (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ROOT / "docs" / "images" / "report.png"), full_page=True)
            with page.expect_download() as info:
                download_link.click()
            pdf = Path(info.value.path()).read_bytes()
            assert pdf.startswith(b"%PDF")
            assert info.value.suggested_filename == "report-acme-2026-10.pdf"
        finally:
            browser.close()

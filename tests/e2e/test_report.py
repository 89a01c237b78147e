"""The report job on a real worker: the PDF exists, opens, and its totals match the invoices."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pypdf import PdfReader

from billing.models import Charge, Invoice, Membership, Report, Tenant
from billing.reports import money
from tests.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(120)]


def test_the_worker_renders_a_pdf_whose_totals_match(
    worker: Path, broker: Any, settings: Any, tmp_path: Path
) -> None:
    acme = Tenant.objects.create(name="Acme", slug="acme")
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    Membership.objects.create(user=alice, tenant=acme)
    amounts = [4900, 12_345, 700]
    for i, amount in enumerate(amounts):
        invoice = Invoice.objects.create(
            tenant=acme,
            period_start=date(2026, 10, 1 + i),
            period_end=date(2026, 10, 10 + i),
            amount=amount,
            currency="EUR",
            idempotency_key=f"invoice:{acme.pk}:{i}",
            status="paid",
            paid_at=datetime(2026, 10, 10 + i, 3, tzinfo=UTC),
        )
        Charge.objects.create(
            invoice=invoice,
            gateway="ledger",
            gateway_reference=f"ch_{i}",
            idempotency_key=f"charge:{i}",
            status="succeeded",
            amount=amount,
            currency="EUR",
            created_at=datetime(2026, 10, 10 + i, 3, tzinfo=UTC),
        )
    Invoice.objects.create(  # another month: not in the report
        tenant=acme,
        period_start=date(2026, 9, 1),
        period_end=date(2026, 9, 30),
        amount=99_900,
        currency="EUR",
        idempotency_key=f"invoice:{acme.pk}:sep",
        status="paid",
        paid_at=datetime(2026, 9, 30, tzinfo=UTC),
    )
    client = Client()
    client.force_login(alice)
    status_url = client.post("/app/reports/", {"month": "2026-10"})["Location"]

    def ready() -> dict[str, Any] | None:
        body = client.get(status_url).json()
        assert body["state"] != "failed", body
        return body if body["state"] == "ready" else None

    body = wait_until(ready, 60, what="the report")
    assert body["progress"] == 100
    response = client.get(body["download_url"])
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    pdf = b"".join(response.streaming_content)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Monthly report: Acme" in text and "October 2026" in text
    assert re.search(rf"Invoiced\s+{re.escape(money(sum(amounts), 'EUR'))}", text), text
    assert re.search(rf"Paid\s+{re.escape(money(sum(amounts), 'EUR'))}", text)
    assert money(99_900, "EUR") not in text, "September's invoice is not in October's report"
    for amount in amounts:
        assert money(amount, "EUR") in text
    report = Report.objects.get()
    assert report.file.startswith(f"reports/tenant-{acme.pk}/2026-10")
    assert report.requested_by == alice and report.finished_at is not None
    # The worker mailed the requester a link (the console backend prints it to its log).
    wait_until(
        lambda: "Your October 2026 report is ready" in worker.read_text(), 10, what="the mail"
    )
    assert f"/app/reports/{report.pk}/download" in worker.read_text()

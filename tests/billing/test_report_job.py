"""The report job's writes are fenced on its attempt, like the run's own: an attempt that lost
its run to another worker neither marks the report ready nor leaves a second file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

import jobs
from billing.models import Report, Tenant
from billing.reports import REPORT_JOB, report_generate, report_path
from jobs.models import JobRun
from jobs.worker.claim import Claim, set_claim

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = date(2026, 10, 1)


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def report() -> Report:
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    run = JobRun.objects.create(
        job=REPORT_JOB,
        payload={"tenant_id": tenant.pk, "month": "2026-10"},
        state=JobRun.State.RUNNING,
        attempts=1,
    )
    return Report.objects.create(tenant=tenant, month=OCTOBER, run=run)


@pytest.fixture
def claim_attempt_1(report: Report) -> Iterator[Claim]:
    claim = Claim(report.run_id, 1, REPORT_JOB)
    set_claim(claim)
    yield claim
    set_claim(None)


def pdfs(media: Path) -> list[str]:
    return sorted(p.name for p in media.rglob("*.pdf"))


def test_the_attempt_that_holds_the_run_stores_one_file_and_marks_ready(
    media: Path, report: Report, claim_attempt_1: Claim
) -> None:
    default_storage.save(report_path(report), ContentFile(b"an earlier attempt's file"))
    result = report_generate(tenant_id=report.tenant_id, month=OCTOBER)
    report.refresh_from_db()
    assert report.state == "ready" and report.file == report_path(report) == result["file"]
    assert pdfs(media) == [Path(report.file).name], "overwritten, not a second file"
    assert (media / report.file).read_bytes().startswith(b"%PDF")


def test_an_attempt_taken_over_neither_marks_ready_nor_leaves_a_file(
    media: Path, report: Report, claim_attempt_1: Claim
) -> None:
    path = report_path(report)
    real_delete = default_storage.delete

    def taken_over_meanwhile(name: str) -> None:
        # Attempt 1 stalled after its last progress call; its lease expired, attempt 2 took the
        # run over and stored its file, between attempt 1's delete and its save.
        del default_storage.delete  # once
        real_delete(name)
        JobRun.objects.filter(pk=report.run_id).update(attempts=2)
        default_storage.save(path, ContentFile(b"attempt 2's file"))

    default_storage.save(path, ContentFile(b"an earlier attempt's file"))
    default_storage.delete = taken_over_meanwhile  # type: ignore[method-assign]
    with pytest.raises(jobs.LeaseLost):
        report_generate(tenant_id=report.tenant_id, month=OCTOBER)
    report.refresh_from_db()
    assert report.state != "ready" and report.file == ""
    assert pdfs(media) == [Path(path).name], "attempt 1's copy (saved under another name) is gone"
    assert (media / path).read_bytes() == b"attempt 2's file"

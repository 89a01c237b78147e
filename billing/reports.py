"""The monthly report: request it (web), render it to PDF and store it (worker)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

import jobs
from billing import sql
from billing.db import fetch_prepared
from billing.models import Charge, Invoice, Report, Tenant
from jobs.models import JobRun

logger = logging.getLogger(__name__)


def max_active_reports() -> int:
    """Reports a tenant may have in progress at once (BILLING_MAX_ACTIVE_REPORTS, default 3)."""
    return int(getattr(settings, "BILLING_MAX_ACTIVE_REPORTS", 3))


class TooManyReports(Exception):
    """The tenant already has the maximum number of reports in progress."""


REPORT_JOB = "billing.generate_monthly_report"


def _payload(tenant_id: int, month: date) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "month": f"{month:%Y-%m}"}


def _key(tenant_id: int, month: date) -> str:
    """The run's idempotency key: one report run per tenant and month."""
    return f"report:{tenant_id}:{month:%Y-%m}"


def report_request(
    *, tenant_id: int, month: date, user: Any, settled: bool = False
) -> tuple[Report, bool]:
    """The tenant's report for the month, requested if needed: (report, newly requested).

    A report that is waiting, running or ready is returned as it is; a failed one is tried
    again. The report and its run (key `report:<tenant>:<month>`) are created in one
    transaction and the run is sent when it commits. Raises TooManyReports when the tenant
    already has BILLING_MAX_ACTIVE_REPORTS reports in progress.
    """
    # Optimistic: a new month is the common case and costs two INSERTs and one commit; only
    # when the key is taken (a repeated press, a failed report) is the existing report read.
    with transaction.atomic():
        run, created = jobs.enqueue_once(
            REPORT_JOB, _payload(tenant_id, month), key=_key(tenant_id, month)
        )
        if created:
            report = _insert_report(tenant_id=tenant_id, month=month, user=user, run=run)
            if report is not None:
                return report, True
            # Over the limit, or a report whose run was pruned: drop the run, send nothing.
            transaction.set_rollback(True)
    existing = Report.objects.filter(tenant_id=tenant_id, month=month).select_related("run").first()
    if existing is None:
        if created:
            # Over the limit. Reports whose runs stopped without telling them (see
            # report_settle) still count: settle them, then try once more.
            if not settled and _settle_active(tenant_id):
                return report_request(tenant_id=tenant_id, month=month, user=user, settled=True)
            raise TooManyReports
        return _report_for_orphan_run(tenant_id=tenant_id, month=month, user=user, run=run), True
    existing = report_settle(existing)
    if not _made_again_on_request(existing):
        return existing, False
    with transaction.atomic():
        if _at_limit(tenant_id):
            raise TooManyReports
        return _report_retry(existing, user), True


def _made_again_on_request(report: Report) -> bool:
    """A failed report is tried again; so is a ready one made before its month was over (a
    report of the current month): pressing again brings in what has happened since."""
    if report.state == Report.State.FAILED:
        return True
    if report.state != Report.State.READY or report.finished_at is None:
        return False
    following = (report.month.replace(day=28) + timedelta(days=4)).replace(day=1)
    month_over = timezone.make_aware(datetime.combine(following, time.min))
    return report.finished_at < month_over


def _at_limit(tenant_id: int) -> bool:
    """The tenant has its maximum of reports in progress, counting none whose run has stopped."""
    limit = max_active_reports()
    if _active_reports(tenant_id) < limit:
        return False
    return not _settle_active(tenant_id) or _active_reports(tenant_id) >= limit


def _insert_report(*, tenant_id: int, month: date, user: Any, run: Any) -> Report | None:
    """The new report, or None when the tenant is at its limit or the month has a report.

    One statement: the INSERT checks the limit itself (billing.sql.REPORT_INSERT_UNDER_LIMIT).
    """
    now = timezone.now()
    params = [
        tenant_id,
        Report._meta.get_field("month").get_db_prep_value(month, connection),
        user.pk,
        Report._meta.get_field("run").get_db_prep_value(run.pk, connection),
        Report._meta.get_field("created_at").get_db_prep_value(now, connection),
        tenant_id,
        max_active_reports(),
    ]
    rows = fetch_prepared(sql.REPORT_INSERT_UNDER_LIMIT, params)
    if not rows:
        return None
    return Report(
        id=rows[0][0], tenant_id=tenant_id, month=month, requested_by=user, run=run, created_at=now
    )


def _report_for_orphan_run(*, tenant_id: int, month: date, user: Any, run: Any) -> Report:
    """The month's run exists but its report was deleted (from the admin): a new report that
    follows the run while it is still going, or gets a fresh run if it has finished."""
    try:
        with transaction.atomic():
            if _at_limit(tenant_id):
                raise TooManyReports
            if run.is_finished:
                run = _new_run(tenant_id, month, keyed=False)  # the key stays with the old run
            report = Report.objects.create(
                tenant_id=tenant_id, month=month, requested_by=user, run=run
            )
    except IntegrityError:
        # A concurrent request made this month's report first: answer with that one.
        return Report.objects.select_related("run").get(tenant_id=tenant_id, month=month)
    return report


def _report_retry(report: Report, user: Any) -> Report:
    report = Report.objects.select_for_update(of=("self",)).select_related("run").get(pk=report.pk)
    if not _made_again_on_request(report):
        return report  # a concurrent request made it again already
    run = report.run
    if run is None:
        # Retention pruned the failed run, which freed the month's key.
        run = _new_run(report.tenant_id, report.month, keyed=True)
    elif run.state in (JobRun.State.DEAD, JobRun.State.CANCELLED, JobRun.State.SKIPPED):
        run = jobs.run_retry(run=run)  # linked to the failed run, whose history stays
    elif run.is_finished:
        run = _new_run(report.tenant_id, report.month, keyed=False)
    else:
        # The failed attempt is still being recorded (a moment): pressing again then retries.
        return report
    report.state, report.message, report.finished_at = Report.State.PENDING, "", None
    report.requested_by = user
    report.run = run
    report.save()
    return report


def _new_run(tenant_id: int, month: date, *, keyed: bool) -> Any:
    key = _key(tenant_id, month) if keyed else None
    return jobs.enqueue(REPORT_JOB, _payload(tenant_id, month), key=key)


def _active_reports(tenant_id: int) -> int:
    return Report.objects.active().filter(tenant_id=tenant_id).count()


def report_settle(report: Report) -> Report:
    """The report, failed if it is still waiting or in progress but its run can no longer
    finish it. The job fails its report itself when it can; this catches what the job never
    sees: a time limit on its last attempt, a run cancelled or skipped before it started, a
    last attempt whose worker was killed, a run pruned from the history. Called where the
    report is read (the page's polling, a new press, the limit check), so no report stays
    "in progress" for ever and blocks the tenant's limit."""
    if report.state not in (Report.State.PENDING, Report.State.RUNNING):
        return report
    run = report.run
    if run is not None and not run.is_finished:
        return report
    message = f"We could not generate this report ({_stopped_reason(run)}). Please try again."
    now = timezone.now()
    settled = Report.objects.filter(
        pk=report.pk, run_id=report.run_id, state__in=[Report.State.PENDING, Report.State.RUNNING]
    ).update(state=Report.State.FAILED, message=message, finished_at=now)
    if settled:
        report.state, report.message, report.finished_at = Report.State.FAILED, message, now
    else:
        report.refresh_from_db()  # changed meanwhile (finished, or tried again)
    return report


def _stopped_reason(run: JobRun | None) -> str:
    if run is None:
        return "its job was removed from the history"
    if run.state == JobRun.State.CANCELLED:
        return "it was cancelled"
    if run.state == JobRun.State.SKIPPED:
        return "it was skipped"
    if run.state == JobRun.State.SUCCEEDED:
        return "its job finished without storing the file"
    if run.error.startswith("Time limit exceeded"):
        return "it took longer than the time limit"
    return "it failed on every attempt"


def _settle_active(tenant_id: int) -> int:
    """Settle the tenant's reports in progress; how many became failed."""
    active = Report.objects.active().filter(tenant_id=tenant_id).select_related("run")
    return sum(report_settle(r).state == Report.State.FAILED for r in active)


def report_status(report: Report) -> dict[str, Any]:
    """What the page shows while it follows the job."""
    run = report.run
    progress = 100 if report.state == Report.State.READY else (run.progress if run else 0)
    message = report.message or (
        run.progress_message if run and report.state == Report.State.RUNNING else ""
    )
    body: dict[str, Any] = {
        "id": report.pk,
        "month": f"{report.month:%Y-%m}",
        "state": report.state,
        "progress": progress,
        "message": message or report.get_state_display(),
        "status_url": reverse("billing:report-status", args=[report.pk]),
        "download_url": None,
    }
    if report.state == Report.State.READY:
        body["download_url"] = reverse("billing:report-download", args=[report.pk])
    return body


@dataclass(frozen=True)
class MonthFigures:
    tenant: str
    month: date
    currency: str
    invoiced: int
    paid: int
    open: int
    invoices: list[tuple[str, str, int, str]]  # (period, status, amount, charge reference)
    per_day: list[int]  # charged amount per day of the month


def month_figures(*, tenant: Tenant, month: date) -> MonthFigures:
    """Invoices whose period ended in the month, and the charges made in it."""
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    invoices = list(
        Invoice.objects.filter(tenant=tenant, period_end__gte=month, period_end__lt=end).order_by(
            "period_end"
        )
    )
    charges = Charge.objects.filter(
        invoice__tenant=tenant,
        status=Charge.Status.SUCCEEDED,
        created_at__date__gte=month,
        created_at__date__lt=end,
    )
    days = (end - month).days
    per_day = [0] * days
    refs: dict[int, str] = {}
    for charge in charges:
        per_day[timezone.localtime(charge.created_at).day - 1] += charge.amount
        refs[charge.invoice_id] = charge.gateway_reference
    return MonthFigures(
        tenant=tenant.name,
        month=month,
        currency=invoices[0].currency if invoices else "EUR",
        invoiced=sum(i.amount for i in invoices if i.status != Invoice.Status.VOID),
        paid=sum(i.amount for i in invoices if i.status == Invoice.Status.PAID),
        open=sum(i.amount for i in invoices if i.status == Invoice.Status.OPEN),
        invoices=[
            (f"{i.period_start} – {i.period_end}", i.status, i.amount, refs.get(i.pk, ""))
            for i in invoices
        ],
        per_day=per_day,
    )


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency}"


def render_pdf(figures: MonthFigures) -> bytes:
    """The report as PDF: summary, totals, a per-day chart and the invoice table."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"Monthly report {figures.month:%Y-%m}")
    c = figures.currency
    story: list[Any] = [
        Paragraph(f"Monthly report: {figures.tenant}", styles["Title"]),
        Paragraph(f"{figures.month:%B %Y}", styles["Heading2"]),
        Spacer(1, 12),
        Table(
            [
                ["Invoiced", money(figures.invoiced, c)],
                ["Paid", money(figures.paid, c)],
                ["Open", money(figures.open, c)],
                ["Invoices", str(len(figures.invoices))],
            ],
            colWidths=[120, 160],
            style=TableStyle([("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold")]),
        ),
        Spacer(1, 18),
        Paragraph("Charged per day", styles["Heading3"]),
    ]
    chart = Drawing(460, 160)
    bars = VerticalBarChart()
    bars.x, bars.y, bars.width, bars.height = 30, 20, 420, 120
    bars.data = [[amount / 100 for amount in figures.per_day]]
    bars.categoryAxis.categoryNames = [
        str(d + 1) if d % 5 == 0 else "" for d in range(len(figures.per_day))
    ]
    bars.valueAxis.valueMin = 0
    bars.bars[0].fillColor = colors.HexColor("#2f6f4f")
    chart.add(bars)
    story += [chart, Spacer(1, 18), Paragraph("Invoices", styles["Heading3"])]
    rows = [["Period", "Status", "Amount", "Charge"]] + [
        [period, status, money(amount, c), ref] for period, status, amount, ref in figures.invoices
    ]
    if len(rows) == 1:
        rows.append(["No invoices ended this month.", "", "", ""])
    story.append(
        Table(
            rows,
            repeatRows=1,
            style=TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                    ("ALIGN", (2, 0), (2, -1), "RIGHT"),
                ]
            ),
        )
    )
    doc.build(story)
    return buffer.getvalue()


def report_path(report: Report) -> str:
    """Tenant-scoped and fixed per report, so a retried job overwrites instead of adding a file."""
    return f"reports/tenant-{report.tenant_id}/{report.month:%Y-%m}-report-{report.pk}.pdf"


def report_generate(*, tenant_id: int, month: date) -> dict[str, Any]:
    """The job's work: gather, render, store, mark ready, tell the requester."""
    run = jobs.current_run()
    report = Report.objects.select_related("tenant", "requested_by").get(
        tenant_id=tenant_id, month=month
    )
    Report.objects.filter(pk=report.pk, run_id=run.run_id).update(state=Report.State.RUNNING)
    run.progress(10, "Gathering invoices and charges")
    figures = month_figures(tenant=report.tenant, month=report.month)
    run.progress(40, "Rendering the PDF")
    pdf = render_pdf(figures)
    run.progress(80, "Storing the file")
    path = report_path(report)
    if default_storage.exists(path):
        default_storage.delete(path)
    stored = default_storage.save(path, ContentFile(pdf))
    # Fenced like the run's own writes: an attempt whose lease was taken over (a stuck worker
    # that another one replaced) neither marks the report ready nor leaves a second file.
    marked = Report.objects.filter(
        pk=report.pk,
        run_id=run.run_id,
        run__attempts=run.attempt,
        run__state=JobRun.State.RUNNING,
    ).update(state=Report.State.READY, file=stored, message="", finished_at=timezone.now())
    if not marked:
        if stored != path:  # the other attempt's file holds the name
            default_storage.delete(stored)
        raise jobs.LeaseLost(
            f"report {report.pk}: run {run.run_id} attempt {run.attempt} was taken over"
        )
    run.progress(95, "Sending the email")
    _email_requester(report)
    return {"file": stored, "bytes": len(pdf), "invoiced": figures.invoiced}


def report_fail(*, tenant_id: int, month: date, reason: str) -> None:
    """The current run's report failed, with the reason in words for the user (a report made
    again since then, with another run, is left alone)."""
    Report.objects.filter(
        tenant_id=tenant_id, month=month, run_id=jobs.current_run().run_id
    ).exclude(state=Report.State.READY).update(
        state=Report.State.FAILED,
        message=f"We could not generate this report ({reason}). Please try again.",
        finished_at=timezone.now(),
    )


def _email_requester(report: Report) -> None:
    user = report.requested_by
    if user is None or not user.email:
        return
    link = settings.SITE_URL.rstrip("/") + reverse("billing:report-download", args=[report.pk])
    try:
        send_mail(
            f"Your {report.month:%B %Y} report is ready",
            f"Hello,\n\nthe monthly report of {report.tenant} for {report.month:%B %Y} is ready:\n{link}\n",
            None,
            [user.email],
        )
    except Exception:
        # The report is ready either way; a mail failure must not fail (and retry) the job.
        logger.exception("could not email report %s to %s", report.pk, user.email)


def user_reason(exc: Exception) -> str:
    """A failure in words for the user (the traceback stays in the run for the operators)."""
    if isinstance(exc, OSError):
        return "the file could not be stored"
    return "an unexpected error occurred"

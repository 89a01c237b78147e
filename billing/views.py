"""The tenant app: dashboard, "Generate monthly report" (202 + status resource), download."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing.models import Invoice, Membership, Report, Tenant
from billing.reports import TooManyReports, report_request, report_settle, report_status

RETRY_AFTER_SECONDS = 30


def api_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """JSON endpoints answer 401 with JSON, not a redirect to an HTML login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse(
                {
                    "error": "Authentication required: log in and try again.",
                    "login_url": "/accounts/login/",
                },
                status=401,
            )
        return view(request, *args, **kwargs)

    return wrapper


def member_tenant_id(request: HttpRequest) -> int:
    """The id of the tenant the user belongs to (their first membership); 404 for anyone who
    belongs to none. saas.auth.ModelBackend loads it with the user, in the same statement, as
    `user.member_tenant_id`; a user loaded another way costs one query here."""
    if hasattr(request.user, "member_tenant_id"):
        tenant_id = request.user.member_tenant_id
    else:
        tenant_id = (
            Membership.objects.filter(user=request.user)
            .order_by("pk")
            .values_list("tenant_id", flat=True)
            .first()
        )
    if tenant_id is None:
        raise Http404("You are not a member of any tenant.")
    return int(tenant_id)


def member_tenant(request: HttpRequest) -> Tenant:
    """The tenant the user belongs to; 404 for anyone who belongs to none."""
    return get_object_or_404(Tenant, pk=member_tenant_id(request))


def last_month(today: date) -> date:
    first = today.replace(day=1)
    return (first.replace(day=1) - timezone.timedelta(days=1)).replace(day=1)


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant = member_tenant(request)
    today = timezone.localdate()
    reports = [
        report_status(report_settle(r))
        for r in Report.objects.filter(tenant=tenant).select_related("run")[:12]
    ]
    context = {
        "tenant": tenant,
        "invoices": Invoice.objects.filter(tenant=tenant).order_by("-period_end")[:12],
        "reports": reports,
        # The page goes on following a report still in progress after a reload.
        "following": next((r for r in reports if r["state"] in ("pending", "running")), None),
        "default_month": f"{last_month(today):%Y-%m}",
        "max_month": f"{today:%Y-%m}",
    }
    return render(request, "billing/dashboard.html", context)


def parse_month(raw: object, today: date) -> tuple[date | None, str]:
    if not isinstance(raw, str) or not raw.strip():
        return None, "Choose a month, e.g. 2026-10."
    try:
        month = date.fromisoformat(f"{raw.strip()}-01")
    except ValueError:
        shown = raw if len(raw) <= 20 else raw[:20] + "…"  # the message echoes it: keep it short
        return None, f"{shown!r} is not a month: use the form YYYY-MM, e.g. 2026-10."
    if month > today.replace(day=1):
        return None, "That month has not started yet: choose this month or an earlier one."
    if month.year < 2000:
        return None, "Choose a month from the year 2000 on."
    return month, ""


@api_login_required
@require_POST
def report_create(request: HttpRequest) -> HttpResponse:
    """Validate and enqueue; answer 202 Accepted at once with where to follow the job."""
    tenant_id = member_tenant_id(request)
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            return JsonResponse(
                {"errors": {"__all__": ["The body is not valid JSON."]}}, status=400
            )
        raw = body.get("month") if isinstance(body, dict) else None
    else:
        raw = request.POST.get("month")
    month, error = parse_month(raw, timezone.localdate())
    if month is None:
        return JsonResponse({"errors": {"month": [error]}}, status=400)
    try:
        report, _ = report_request(tenant_id=tenant_id, month=month, user=request.user)
    except TooManyReports:
        response = JsonResponse(
            {"error": "Several reports are already being generated; try again in a moment."},
            status=429,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    body = report_status(report)
    response = JsonResponse(body, status=202)
    response["Location"] = body["status_url"]
    return response


def _tenant_report(request: HttpRequest, pk: int) -> Report:
    # Scoped by the user's own tenant: another tenant's report id is simply not found.
    return get_object_or_404(
        Report.objects.select_related("run"), pk=pk, tenant_id=member_tenant_id(request)
    )


@api_login_required
@require_GET
def report_status_view(request: HttpRequest, pk: int) -> HttpResponse:
    response = JsonResponse(report_status(report_settle(_tenant_report(request, pk))))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def report_download(request: HttpRequest, pk: int) -> HttpResponse:
    report = _tenant_report(request, pk)
    if (
        report.state != Report.State.READY
        or not report.file
        or not default_storage.exists(report.file)
    ):
        raise Http404("This report is not ready.")
    return FileResponse(
        default_storage.open(report.file, "rb"),
        as_attachment=True,
        filename=f"report-{report.tenant.slug}-{report.month:%Y-%m}.pdf",
        content_type="application/pdf",
    )

"""The site's URLs plus the baselines the report endpoint is measured against."""

from __future__ import annotations

import dramatiq
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST
from dramatiq.common import current_millis

from billing.views import api_login_required, member_tenant_id
from jobs.models import JobRun
from saas.urls import urlpatterns as site


@require_POST
def trivial(request: HttpRequest) -> JsonResponse:
    """Baseline 1: the framework alone (middleware, CSRF, routing), no I/O."""
    return JsonResponse({"state": "pending"}, status=202)


@require_POST
def minimal_io(request: HttpRequest) -> JsonResponse:
    """Baseline 2: the essential I/O of "enqueue a report": one INSERT and one broker send."""
    return _insert_and_send(request)


@api_login_required
@require_POST
def minimal_io_signed_in(request: HttpRequest) -> JsonResponse:
    """Baseline 3: baseline 2 for a signed-in tenant member, checked as the endpoint checks
    (session, user, tenant). The endpoint must be signed in; this shows what that alone costs."""
    member_tenant_id(request)
    return _insert_and_send(request)


def _insert_and_send(request: HttpRequest) -> JsonResponse:
    run = JobRun.objects.create(
        job="bench.noop", queue="bench", payload={"month": request.POST.get("month")}
    )
    dramatiq.get_broker().enqueue(
        dramatiq.Message(
            queue_name="bench",
            actor_name="bench.noop",
            args=(),
            kwargs={},
            options={},
            message_id=str(run.id),
            message_timestamp=current_millis(),
        )
    )
    return JsonResponse({"id": str(run.id)}, status=202)


urlpatterns = [
    path("bench/trivial/", trivial),
    path("bench/minimal/", minimal_io),
    path("bench/minimal-signed-in/", minimal_io_signed_in),
    *site,
]

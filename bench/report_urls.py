"""The site's URLs plus the two baselines the report endpoint is measured against."""

from __future__ import annotations

import dramatiq
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST
from dramatiq.common import current_millis

from jobs.models import JobRun
from saas.urls import urlpatterns as site


@require_POST
def trivial(request: HttpRequest) -> JsonResponse:
    """Baseline 1: the framework alone (middleware, CSRF, routing), no I/O."""
    return JsonResponse({"state": "pending"}, status=202)


@require_POST
def minimal_io(request: HttpRequest) -> JsonResponse:
    """Baseline 2: the essential I/O of "enqueue a report": one INSERT and one broker send."""
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


urlpatterns = [path("bench/trivial/", trivial), path("bench/minimal/", minimal_io), *site]

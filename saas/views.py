"""Site-level views."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as default_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

import jobs

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 (with which one failed) otherwise."""
    checks = jobs.health_checks()
    healthy = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a missing or wrong CSRF token: JSON for the app's endpoints, Django's page elsewhere."""
    if request.path.startswith("/app/") and request.method != "GET":
        return JsonResponse(
            {
                "error": "CSRF token missing or incorrect: reload the page and try again.",
                "reason": reason,
            },
            status=403,
        )
    return default_csrf_failure(request, reason)

"""Site-level views."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as default_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jobs.broker import broker_ping
from jobs.health import outage

logger = logging.getLogger(__name__)


def _check(name: str, probe) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """ok, or error with the error and since when this process has seen it fail (the outage
    is logged once when it starts and once when it ends)."""
    record = outage(name)
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        record.failed(exc)
        return {key: str(value)[:300] for key, value in record.describe().items()}
    record.ok()
    return {"status": "ok"}


def _database_probe() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer, 503 (with which one failed) otherwise."""
    checks = {
        "database": _check("database", _database_probe),
        "broker": _check("broker", broker_ping),
    }
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

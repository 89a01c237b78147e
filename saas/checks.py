"""Deployment checks of the site's own settings (`manage.py check --deploy`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks


@checks.register(deploy=True)
def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[checks.Warning]:
    host = urlsplit(settings.SITE_URL).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        return [
            checks.Warning(
                f"SITE_URL is {settings.SITE_URL}: the links in emails (the report-ready mail) "
                "point at this machine, not at the site.",
                hint="Set SITE_URL to the site's public address, e.g. https://billing.example.com.",
                id="saas.W001",
            )
        ]
    return []


@checks.register(deploy=True)
def check_mail(app_configs: Any = None, **kwargs: Any) -> list[checks.Warning]:
    backend = settings.MAILERS.get("default", {}).get("BACKEND", "")
    if backend.endswith("console.EmailBackend"):
        return [
            checks.Warning(
                "EMAIL_URL is not set: emails (the report-ready mail) are written to the log "
                "instead of being sent.",
                hint="Set EMAIL_URL, e.g. smtp://user:password@mail.example.com:587?tls=1.",
                id="saas.W002",
            )
        ]
    return []


@checks.register(deploy=True)
def check_alerts(app_configs: Any = None, **kwargs: Any) -> list[checks.Warning]:
    mails = getattr(settings, "JOBS_ALERT_EMAIL_ADMINS", True) and settings.ADMINS
    if not mails and not getattr(settings, "JOBS_ALERT_WEBHOOK_URL", ""):
        return [
            checks.Warning(
                "No one gets the jobs' alerts: a dead run (last night's billing) or late "
                "schedules are only logged.",
                hint="Set ALERT_EMAILS (comma-separated addresses, needs EMAIL_URL) and/or "
                "ALERT_WEBHOOK_URL (a Slack-compatible webhook).",
                id="saas.W003",
            )
        ]
    return []

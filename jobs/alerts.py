"""Tell people when a run dies or schedules are late: signal, mail_admins and a webhook.

Alerts never block or fail the caller: mail and webhook go out on a short-lived daemon thread
with a short timeout, and every error is logged.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
import uuid
from datetime import datetime
from typing import Any

from django.core.mail import mail_admins

from jobs.conf import jobs_settings
from jobs.models import JobRun, Schedule
from jobs.signals import run_dead, schedules_late

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 3


def alert_run_dead(*, run_id: uuid.UUID) -> None:
    run = JobRun.objects.filter(id=run_id).first()
    if run is None:
        return
    for receiver, response in run_dead.send_robust(sender=JobRun, run=run):
        if isinstance(response, Exception):
            logger.error("run_dead receiver %r failed: %s", receiver, response)
    where = ""
    if run.schedule:
        # "Run now" and retried runs belong to the schedule but have no slot.
        slot = f", slot {run.scheduled_for:%Y-%m-%d %H:%M %Z}" if run.scheduled_for else ""
        where = f" (schedule {run.schedule.name!r}{slot})"
    subject = f"Job {run.job} died after {run.attempts} attempt(s){where}"
    # In the log too, whatever the alert's delivery: where an SRE looks first.
    logger.error("%s: run %s: %s", subject, run.id, run.error)
    body = f"Run {run.id}\nJob: {run.job}\nAttempts: {run.attempts}\nError: {run.error}\n\n{run.traceback}"
    _deliver(subject, body)


def alert_schedules_late(*, schedules: list[Schedule], now: datetime) -> None:
    if not schedules:
        return
    schedules_late.send_robust(sender=Schedule, schedules=schedules, now=now)
    worst = max(now - s.next_run_at for s in schedules if s.next_run_at)
    names = ", ".join(s.name for s in schedules[:10])
    subject = f"{len(schedules)} schedule(s) late by up to {worst}: is a scheduler running?"
    _deliver(subject, f"Late schedules: {names}\nChecked at {now.isoformat()}.")


def _deliver(subject: str, body: str) -> None:
    conf = jobs_settings()
    thread = threading.Thread(
        target=_send_all,
        args=(subject, body, conf.ALERT_EMAIL_ADMINS, conf.ALERT_WEBHOOK_URL),
        name="jobs-alert",
        daemon=True,
    )
    thread.start()


def _send_all(subject: str, body: str, email: bool, webhook_url: str) -> None:
    if email:
        try:
            mail_admins(subject, body, fail_silently=False)
        except Exception as exc:
            logger.error("alert mail failed: %s", exc)
    if webhook_url:
        post_webhook(webhook_url, {"text": f"*{subject}*\n{_clip(body, 2500)}"})


def _clip(text: str, limit: int) -> str:
    """The head and the tail: a traceback's last lines say where the error was raised."""
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]}\n[… {len(text) - limit} characters …]\n{text[-(limit - head) :]}"


def post_webhook(url: str, payload: dict[str, Any]) -> bool:
    """POST Slack-compatible JSON; False (logged) on any failure."""
    request = urllib.request.Request(  # noqa: S310 - the operator configures this URL
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            return bool(200 <= response.status < 300)
    except Exception as exc:
        logger.error("alert webhook failed: %s", exc)
        return False

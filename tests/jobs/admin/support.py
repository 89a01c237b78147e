"""Helpers shared by the admin tests (this module holds no tests)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import Client

from jobs.models import JobRun, Schedule

SCHEDULES = "/admin/jobs/schedule/"
RUNS = "/admin/jobs/jobrun/"
PREVIEW = "/admin/jobs/schedule/preview/"
OVERVIEW = "/admin/jobs/schedule/overview/"


def operator(username: str, *codenames: str, staff: bool = True) -> Client:
    """A logged-in client for a staff user holding exactly these jobs permissions."""
    user = User.objects.create_user(username, password="x", is_staff=staff)
    if codenames:
        perms = Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames)
        assert perms.count() == len(codenames), f"unknown permission in {codenames}"
        user.user_permissions.add(*perms)
    client = Client()
    client.force_login(user)
    return client


def form_data(**overrides: Any) -> dict[str, Any]:
    """A valid POST for the schedule add form (a cron schedule of test.typed)."""
    data: dict[str, Any] = {
        "name": "nightly tenant 7",
        "job": "test.typed",
        "payload": '{"tenant_id": 7}',
        "enabled": "on",
        "kind": "cron",
        "cron": "30 2 * * *",
        "interval_seconds": "",
        "run_at_0": "",
        "run_at_1": "",
        "timezone": "Europe/Berlin",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "misfire_policy": "skip",
        "misfire_grace_seconds": "60",
        "overlap_policy": "allow",
        "jitter_seconds": "0",
        "queue": "",
        "priority": "0",
        "max_retries": "",
        "time_limit_seconds": "",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def action(client: Client, url: str, name: str, *pks: Any, **extra: Any) -> Any:
    """Run a changelist action on these objects."""
    data = {"action": name, "_selected_action": [str(pk) for pk in pks], "index": "0", **extra}
    return client.post(url, data)


def change_form_action(client: Client, url: str, name: str, pk: Any) -> Any:
    """Press an action button on a change page (Django's change-form action)."""
    return client.post(url, {"CHANGE_FORM-action": name, "_selected_action": str(pk), "index": "0"})


def make_run(schedule: Schedule | None = None, **fields: Any) -> JobRun:
    values: dict[str, Any] = {"job": "test.noop", "schedule": schedule, "state": "succeeded"}
    values.update(fields)
    return JobRun.objects.create(**values)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []

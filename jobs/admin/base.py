"""What the jobs admin pages share: typed ModelAdmin bases, where actions show, links."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin import ActionLocation
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString

from jobs.models import JobRun, Schedule

if TYPE_CHECKING:
    ScheduleAdminBase = admin.ModelAdmin[Schedule]
    JobRunAdminBase = admin.ModelAdmin[JobRun]
else:  # ModelAdmin is not subscriptable at runtime
    ScheduleAdminBase = JobRunAdminBase = admin.ModelAdmin

State = JobRun.State
BOTH = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]
# The name Django gives the change form's action <select> (it is prefixed by the location).
CHANGE_FORM_ACTION = f"{ActionLocation.CHANGE_FORM.value}-action"
SPARKLINE_RUNS = 30
# What jobs.services.run_retry accepts.
RETRYABLE_STATES = (State.DEAD, State.CANCELLED, State.SKIPPED)
RECENT_RUNS = 20


def from_change_form(request: HttpRequest) -> bool:
    return CHANGE_FORM_ACTION in request.POST


def return_url(request: HttpRequest, default: str) -> str:
    """Where an action goes back to: the page it was started from (carried through the
    intermediate pages as `next`), if it is on this site."""
    target = request.POST.get("next") or request.get_full_path()
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def admin_link(obj: Schedule | JobRun, text: str | None = None) -> SafeString:
    url = reverse(f"admin:jobs_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def pre_block(text: str, css: str = "") -> SafeString:
    if not text:
        return format_html('<span class="jobs-quiet">{}</span>', "—")
    return format_html('<pre class="jobs-pre {}">{}</pre>', css, text)


def json_pre(value: Any) -> SafeString:
    if value is None:
        return format_html('<span class="jobs-quiet">{}</span>', "—")
    return pre_block(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def action_buttons(
    model_admin: Any, request: HttpRequest, buttons: list[tuple[str, str]]
) -> dict[str, Any]:
    """The change form's action buttons (action name, label) this user may press, as the
    change_form templates read them."""
    allowed = model_admin.get_actions(request, action_location=ActionLocation.CHANGE_FORM)
    return {
        "jobs_buttons": [(name, label) for name, label in buttons if name in allowed],
        "jobs_action_field": CHANGE_FORM_ACTION,
    }

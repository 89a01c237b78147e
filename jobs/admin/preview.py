"""The schedule form's live preview: the next fire times of the timing being edited."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from jobs.admin.describe import describe_timing
from jobs.admin.forms import PreviewForm
from jobs.admin.html import relative
from jobs.models import Schedule
from jobs.registry import registered_jobs
from jobs.services import TIMING_FIELDS
from jobs.timing import ScheduleError, Timing, dst_note, fire_times, normalize_cron, parse_timezone

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


PREVIEW_COUNT = 10


def timing_errors(timing: Timing) -> dict[str, list[str]]:
    """Field errors of a timing (form field names), checking the zone and the cron expression
    on their own so both are reported at once."""
    errors: dict[str, list[str]] = {}
    try:
        parse_timezone(timing.timezone)
    except ScheduleError as exc:
        errors["timezone"] = [exc.message]
    if timing.kind == Schedule.Kind.CRON:
        try:
            normalize_cron(timing.cron)
        except ScheduleError as exc:
            errors["cron"] = [exc.message]
    if not errors:
        try:
            timing.validate()
        except ScheduleError as exc:
            errors.setdefault(TIMING_FIELDS.get(exc.field, "__all__"), []).append(exc.message)
    return errors


def preview_data(timing: Timing, now: datetime, count: int = PREVIEW_COUNT) -> dict[str, Any]:
    """The description and the next `count` fire times, local and UTC, with DST notes.
    The timing must be valid (see timing_errors)."""
    tz = parse_timezone(timing.timezone)
    slots = fire_times(timing, now, count)
    rows = []
    for slot in slots:
        local = slot.astimezone(tz)
        rows.append(
            {
                "utc_iso": slot.isoformat(),
                "local": f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}",
                "utc": f"{slot:%a %Y-%m-%d %H:%M} UTC",
                "relative": relative(slot, now),
                "note": dst_note(timing, slot) or "",
            }
        )
    return {
        "description": describe_timing(timing),
        "timezone": tz.key,
        "fire_times": rows,
        "empty": "" if rows else "No more runs: every slot of this timing is in the past.",
    }


def schedule_preview_html(schedule: Schedule, preview_url: str) -> SafeString:
    """The preview box of the schedule form (server-rendered; the script refreshes it)."""
    from django.template.loader import render_to_string

    timing = schedule.timing()
    blank = schedule.pk is None and not (
        schedule.cron or schedule.interval_seconds or schedule.run_at
    )
    errors = {} if blank else timing_errors(timing)
    data = None if blank or errors else preview_data(timing, timezone.now())
    return SafeString(
        render_to_string(
            "admin/jobs/schedule/preview.html",
            {
                "preview": data,
                "errors": [m for messages in errors.values() for m in messages],
                "preview_url": preview_url,
                "schedule": schedule,
                "paused": schedule.pk is not None and not schedule.enabled,
                "blank": blank,
            },
        )
    )


def _job_info(name: str) -> dict[str, Any] | None:
    spec = registered_jobs().get(name)
    if spec is None:
        return None
    return {
        "name": spec.name,
        "description": spec.description,
        "schema": spec.json_schema(),
    }


def schedule_preview_view(request: HttpRequest, model_admin: ModelAdmin[Schedule]) -> HttpResponse:
    """GET: the description and next fire times of the timing in the query string (the schedule
    form's fields), as JSON; 400 with {"errors": {field: [message]}} for bad input."""
    if not (
        model_admin.has_view_or_change_permission(request)
        or model_admin.has_add_permission(request)
    ):
        return JsonResponse({"errors": {"__all__": ["Permission denied."]}}, status=403)
    form = PreviewForm(request.GET)
    if not form.is_valid():
        errors = {field: [str(m) for m in messages] for field, messages in form.errors.items()}
        return JsonResponse({"errors": errors}, status=400)
    data = form.cleaned_data
    now = timezone.now()
    anchor = now
    if data["schedule"] is not None:
        created = (
            Schedule.objects.filter(pk=data["schedule"])
            .values_list("created_at", flat=True)
            .first()
        )
        anchor = created or now
    interval = data["interval_seconds"]
    timing = Timing(
        kind=data["kind"],
        timezone=data["timezone"],
        cron=data["cron"],
        interval=timedelta(seconds=interval) if interval else None,
        run_at=data["run_at"],
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
        anchor=anchor if data["kind"] == Schedule.Kind.INTERVAL else None,
    )
    job = _job_info(data["job"]) if data["job"] else None
    errors = timing_errors(timing)
    if errors:
        return JsonResponse({"errors": errors, "job": job}, status=400)
    try:
        body = preview_data(timing, now)
    except (ValueError, OverflowError) as exc:  # e.g. a bound near year 9999
        return JsonResponse({"errors": {"__all__": [str(exc)]}, "job": job}, status=400)
    body["job"] = job
    return JsonResponse(body)

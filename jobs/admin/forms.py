"""Admin forms of the jobs app: the schedule form, the live preview's input and the actions' forms.

Validation is the service's (jobs.services.schedule_validate): the form only turns raw input
into values, adds a few checks whose messages are better with the raw input at hand, and puts
every error on the field an operator has to fix.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import available_timezones

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.fields import InvalidJSONInput
from django.forms.models import construct_instance
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs import services
from jobs.models import Schedule
from jobs.registry import JobSpec, registered_jobs
from jobs.timing import EARLIEST, ScheduleError, normalize_cron, parse_timezone

if TYPE_CHECKING:
    ScheduleFormBase = forms.ModelForm[Schedule]
else:  # ModelForm is not subscriptable at runtime
    ScheduleFormBase = forms.ModelForm


# The column's limit (a PostgreSQL integer), about 68 years.
MAX_INTERVAL_SECONDS = 2_147_483_647


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone name, for the time zone field's suggestions."""
    return tuple(sorted(available_timezones()))


def job_choices(current: str = "") -> list[tuple[str, str]]:
    """The registered jobs as (name, "name — description") choices; an unregistered current
    value is kept (marked) so the form shows what is stored and validation can say why."""
    jobs = registered_jobs()
    choices = [("", "Choose a registered job")]
    choices += [
        (name, f"{name} — {spec.description}" if spec.description else name)
        for name, spec in jobs.items()
    ]
    if current and current not in jobs:
        choices.append((current, f"{current} — not registered in this deployment"))
    return choices


def schema_help(spec: JobSpec | None) -> SafeString:
    """The payload field's help: what the job expects, as its JSON schema (escaped)."""
    intro = "A JSON object; its keys are passed to the job as keyword arguments."
    if spec is None:
        schema_text, note = "", "Choose a job to see the payload it expects."
    elif spec.schema is None:
        schema_text, note = "", f"{spec.name} declares no schema: any JSON object is accepted."
    else:
        schema_text = json.dumps(spec.json_schema(), indent=2)
        note = f"{spec.name} expects (JSON schema):"
    return format_html(
        '{} <span id="jobs-schema-note">{}</span><pre id="jobs-payload-schema" class="jobs-schema"'
        "{}>{}</pre>",
        intro,
        note,
        "" if schema_text else " hidden",
        schema_text,
    )


class PayloadField(forms.JSONField):
    """A JSON object typed as text; syntax errors say where they are and how to fix them."""

    widget = forms.Textarea

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:  # shown again as typed, like any other unreadable JSON
            return InvalidJSONInput(data)

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if isinstance(value, dict):
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            return {}
        try:
            parsed = json.loads(value)
        except RecursionError:
            raise ValidationError(
                "The payload is nested too deeply to read; a job's arguments need a few levels.",
                code="invalid",
            ) from None
        except json.JSONDecodeError as exc:
            raise ValidationError(
                "Invalid JSON: %(msg)s at line %(line)s, column %(col)s. Enter a JSON object "
                'such as {"tenant_id": 1} (double quotes around keys and strings).',
                code="invalid",
                params={"msg": exc.msg, "line": exc.lineno, "col": exc.colno},
            ) from None
        if not isinstance(parsed, dict):
            raise ValidationError(
                "The payload must be a JSON object ({...}) whose keys are the job's arguments, "
                "not %(kind)s.",
                code="invalid",
                params={"kind": type(parsed).__name__},
            )
        where = _nul_path(parsed)
        if where is not None:
            # PostgreSQL's jsonb cannot store U+0000; refuse it here instead of failing the save.
            raise ValidationError(
                "The payload contains a NUL character (\\u0000) at %(path)s, which cannot be "
                "stored. Remove it.",
                code="invalid",
                params={"path": where or "the top level"},
            )
        return parsed

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value if value is not None else {}, indent=2, ensure_ascii=False)


def _nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) holding U+0000, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = _nul_path(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


class TimezoneInput(forms.TextInput):
    """A text input with the IANA zone names as suggestions (an HTML datalist)."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        list_id = f"{name}-zones"
        attrs = {**(attrs or {}), "list": list_id, "autocomplete": "off"}
        options = format_html_join("", '<option value="{}">', ((z,) for z in timezone_names()))
        return format_html(
            '{}<datalist id="{}">{}</datalist>',
            super().render(name, value, attrs, renderer),
            list_id,
            options,
        )


class ScheduleForm(ScheduleFormBase):
    """The admin's schedule form; save through jobs.services.schedule_save."""

    job = forms.CharField(max_length=200, widget=forms.Select)
    payload = PayloadField(required=False, widget=forms.Textarea(attrs={"rows": 6, "cols": 60}))
    # No min_value: a zero or negative interval gets the message below, not a generic bound.
    interval_seconds = forms.IntegerField(
        required=False,
        max_value=MAX_INTERVAL_SECONDS,
        label="Interval (seconds)",
        help_text="Seconds between runs, e.g. 900 for every 15 minutes.",
    )

    class Meta:
        model = Schedule
        fields = [
            "name",
            "job",
            "payload",
            "enabled",
            "kind",
            "cron",
            "interval_seconds",
            "run_at",
            "timezone",
            "starts_at",
            "ends_at",
            "misfire_policy",
            "misfire_grace_seconds",
            "overlap_policy",
            "jitter_seconds",
            "queue",
            "priority",
            "max_retries",
            "time_limit_seconds",
        ]
        widgets = {"timezone": TimezoneInput, "cron": forms.TextInput(attrs={"size": 30})}
        help_texts = {
            "cron": "5 fields: minute hour day-of-month month day-of-week (e.g. '0 3 * * *'), "
            "or @hourly, @daily, @weekly, @monthly, @yearly. Evaluated in the time zone below.",
            "timezone": "IANA name, e.g. Europe/Berlin or UTC. Cron times are local to it.",
            "run_at": "For a one-off schedule: when it runs.",
            "starts_at": "No run before this (also the first slot of an interval schedule).",
            "ends_at": "No run after this.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.job or ""
        if "job" in self.fields:
            self.fields["job"].widget.choices = job_choices(current)
            self.fields["job"].help_text = "The registered job this schedule runs."
        if "payload" in self.fields:
            name = self.data.get(self.add_prefix("job"), current) if self.is_bound else current
            self.fields["payload"].help_text = schema_help(registered_jobs().get(str(name)))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_interval(cleaned)
        # Checked on their own first, so an operator sees a bad zone and a bad cron expression
        # at once (the service stops at the first timing error).
        if "timezone" in cleaned:
            try:
                parse_timezone(cleaned["timezone"])
            except ScheduleError as exc:
                self.add_error("timezone", exc.message)
        if cleaned.get("kind") == Schedule.Kind.CRON and "cron" in cleaned:
            try:
                cleaned["cron"] = normalize_cron(cleaned["cron"])
            except ScheduleError as exc:
                self.add_error("cron", exc.message)
        # The service validates a copy: a form that fails must leave the instance untouched.
        candidate = construct_instance(self, copy.copy(self.instance))
        try:
            services.schedule_validate(candidate)
        except ValidationError as exc:
            self._add_service_errors(exc)
        else:
            if "payload" in cleaned:
                cleaned["payload"] = candidate.payload  # normalised by the job's schema
        return cleaned

    def _check_interval(self, cleaned: dict[str, Any]) -> None:
        if "interval_seconds" not in cleaned:
            return
        interval = cleaned["interval_seconds"]
        if interval is not None and interval <= 0:
            self.add_error(
                "interval_seconds",
                f"The interval must be a positive number of seconds; got {interval}. "
                "Use e.g. 60 for every minute or 900 for every 15 minutes.",
            )
        elif interval is None and cleaned.get("kind") == Schedule.Kind.INTERVAL:
            self.add_error(
                "interval_seconds",
                "An interval schedule needs an interval: enter the seconds between runs, "
                "e.g. 900 for every 15 minutes.",
            )

    def _add_service_errors(self, exc: ValidationError) -> None:
        for field, messages in exc.message_dict.items():
            if field in self.fields:
                if field in self.errors:
                    continue  # already reported from the raw input
                self.add_error(field, messages)
            elif field == NON_FIELD_ERRORS:
                self.add_error(None, messages)
            else:
                self.add_error(None, [f"{field}: {m}" for m in messages])


class PreviewForm(forms.Form):
    """The live preview's input: the schedule form's timing fields, as the browser has them."""

    job = forms.CharField(required=False, max_length=200)
    kind = forms.ChoiceField(choices=Schedule.Kind.choices)
    cron = forms.CharField(required=False, max_length=120)
    interval_seconds = forms.IntegerField(required=False, max_value=MAX_INTERVAL_SECONDS)
    run_at = forms.SplitDateTimeField(required=False)
    timezone = forms.CharField(max_length=64)
    starts_at = forms.SplitDateTimeField(required=False)
    ends_at = forms.SplitDateTimeField(required=False)
    schedule = forms.IntegerField(required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        interval = cleaned.get("interval_seconds")
        if interval is not None and interval <= 0:
            self.add_error(
                "interval_seconds",
                f"The interval must be a positive number of seconds; got {interval}.",
            )
        job = cleaned.get("job")
        if job and job not in registered_jobs():
            self.add_error("job", f"No job named {job!r} is registered.")
        return cleaned


class PauseForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Shown on the schedule while it is paused, e.g. 'payment provider outage'.",
        error_messages={"required": "Give a reason for pausing; operators will see it."},
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise ValidationError("Give a reason for pausing; operators will see it.")
        return reason


class BackfillForm(forms.Form):
    start = forms.SplitDateTimeField(
        widget=admin_widgets.AdminSplitDateTime,
        help_text="First slot to run (inclusive), in the site's time zone.",
    )
    end = forms.SplitDateTimeField(
        widget=admin_widgets.AdminSplitDateTime,
        help_text="Last slot to run (inclusive); not in the future.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The end of the range must not be before its start.")
        if start and start < EARLIEST:
            self.add_error("start", f"Start from {EARLIEST:%Y} or later.")
        return cleaned

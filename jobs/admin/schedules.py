"""The schedule admin: list, form, preview and recent runs (its actions: schedule_actions.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from jobs import services
from jobs.admin.base import (
    RECENT_RUNS,
    SPARKLINE_RUNS,
    action_buttons,
    admin_link,
)
from jobs.admin.describe import describe_schedule
from jobs.admin.forms import ScheduleForm
from jobs.admin.html import seconds_text, sparkline, stamp, state_badge, when
from jobs.admin.lists import (
    JobNameFilter,
    LastStateFilter,
    ScheduleChangeList,
    ScheduleCountPaginator,
)
from jobs.admin.overview import overview_view
from jobs.admin.preview import schedule_preview_html, schedule_preview_view
from jobs.admin.schedule_actions import ScheduleActions
from jobs.models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(ScheduleActions):
    form = ScheduleForm
    list_display = [
        "name",
        "job",
        "human_schedule",
        "timezone",
        "next_run",
        "last_run",
        "sparkline",
        "enabled",
    ]
    list_filter = [JobNameFilter, "enabled", LastStateFilter]
    paginator = ScheduleCountPaginator
    show_full_result_count = False
    search_fields = ["name"]
    search_help_text = "Search by name."
    ordering = ["name"]
    actions = [
        "pause_schedules",
        "resume_schedules",
        "run_now",
        "backfill",
        "duplicate_schedules",
    ]
    readonly_fields = [
        "timing_preview",
        "next_run_at",
        "last_fired_at",
        "created_at",
        "updated_at",
        "recent_runs",
    ]
    fieldsets = [
        # The paused reason is shown in a banner (change page) and a tooltip (list).
        (None, {"fields": ["name", "job", "payload", "enabled"]}),
        (
            "When",
            {
                "fields": [
                    "kind",
                    "cron",
                    "interval_seconds",
                    "run_at",
                    "timezone",
                    "starts_at",
                    "ends_at",
                    "timing_preview",
                ]
            },
        ),
        (
            "Policies",
            {
                "fields": [
                    "misfire_policy",
                    "misfire_grace_seconds",
                    "overlap_policy",
                    "jitter_seconds",
                ],
                "classes": ["collapse"],
            },
        ),
        (
            "Execution",
            {
                "fields": ["queue", "priority", "max_retries", "time_limit_seconds"],
                "classes": ["collapse"],
            },
        ),
        ("Status", {"fields": ["next_run_at", "last_fired_at", "created_at", "updated_at"]}),
        ("Recent runs", {"fields": ["recent_runs"]}),
    ]
    change_form_template = "admin/jobs/schedule/change_form.html"
    change_list_template = "admin/jobs/schedule/change_list.html"

    class Media:
        css = {"all": ["jobs/admin.css"]}
        js = ["jobs/admin.js"]

    # -- permissions of the actions (Django calls has_<name>_permission) -------------------

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.run_schedule")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.pause_schedule")

    # -- pages -----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "preview/",
                wrap(lambda request: schedule_preview_view(request, self)),
                name="jobs_schedule_preview",
            ),
            path(
                "overview/",
                wrap(lambda request: overview_view(request, self)),
                name="jobs_overview",
            ),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Pausing and resuming are actions (with a reason and their own permission).
            fields.append("enabled")
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:  # nothing to show yet
            return [fs for fs in fieldsets if fs[0] not in ("Status", "Recent runs")]
        return fieldsets

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ScheduleChangeList

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        services.schedule_save(schedule=obj)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            buttons = [
                ("run_now", "Run now"),
                ("resume_schedules", "Resume")
                if not obj.enabled
                else ("pause_schedules", "Pause…"),
                ("backfill", "Backfill…"),
                ("duplicate_schedules", "Duplicate"),
            ]
            extra.update(action_buttons(self, request, buttons))
            if request.user.has_perm("jobs.view_jobrun"):
                extra["jobs_runs_url"] = (
                    reverse("admin:jobs_jobrun_changelist") + f"?schedule={obj.pk}"
                )
        return super().change_view(request, object_id, form_url, extra)

    # -- list columns ----------------------------------------------------------------------

    @admin.display(description="schedule")
    def human_schedule(self, obj: Schedule) -> str:
        return describe_schedule(obj)

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> SafeString:
        if not obj.enabled:
            return format_html(
                '<span class="jobs-badge jobs-badge-muted" title="{}">paused</span>',
                obj.paused_reason,
            )
        return when(obj.next_run_at)

    @admin.display(description="last run")
    def last_run(self, obj: Schedule) -> SafeString:
        runs = getattr(obj, "recent_runs_list", None)
        if runs is None:  # not from the changelist: one query
            runs = list(obj.runs.order_by("-created_at")[:1])
        return state_badge(runs[0].state if runs else None)

    @admin.display(description=f"last {SPARKLINE_RUNS} runs")
    def sparkline(self, obj: Schedule) -> SafeString:
        runs = getattr(obj, "recent_runs_list", None)
        if runs is None:
            runs = list(obj.runs.order_by("-created_at")[:SPARKLINE_RUNS])
        return sparkline(runs, SPARKLINE_RUNS)

    # -- change page fields ----------------------------------------------------------------

    @admin.display(description="Preview")
    def timing_preview(self, obj: Schedule) -> SafeString:
        url = reverse("admin:jobs_schedule_preview")
        if obj.pk:
            url += f"?schedule={obj.pk}"
        return schedule_preview_html(obj, url)

    @admin.display(description="Recent runs")
    def recent_runs(self, obj: Schedule) -> SafeString:
        if obj.pk is None:
            return format_html("{}", "—")
        runs = list(obj.runs.order_by("-created_at")[:RECENT_RUNS])
        if not runs:
            return format_html('<span class="jobs-quiet">{}</span>', "No runs yet.")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link(run, str(run.id)[:8]),
                    state_badge(run.state),
                    stamp(run.scheduled_for) if run.scheduled_for else "ad hoc",
                    stamp(run.started_at),
                    seconds_text(run.duration),
                    run.attempts,
                )
                for run in runs
            ),
        )
        return format_html(
            '<table class="jobs-table"><thead><tr><th>run</th><th>state</th><th>slot</th>'
            "<th>started</th><th>duration</th><th>attempts</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

"""The run admin: read-only history with retry and cancel, and each run's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from jobs import services
from jobs.admin.base import (
    BOTH,
    RETRYABLE_STATES,
    JobRunAdminBase,
    action_buttons,
    admin_link,
    from_change_form,
    json_pre,
    pre_block,
)
from jobs.admin.html import progress_bar, relative, seconds_text, stamp, state_badge
from jobs.admin.lists import CappedCountPaginator, JobNameFilter, RunScheduleFilter, run_search
from jobs.models import JobRun

State = JobRun.State


@admin.register(JobRun)
class JobRunAdmin(JobRunAdminBase):
    """Run history: read-only; retry and cancel are the only ways to act on it."""

    list_display = [
        "short_id",
        "job",
        "schedule_link",
        "state_badge",
        "attempts_display",
        "duration_display",
        "progress_display",
        "slot",
        "started",
        "lateness",
    ]
    # JobNameFilter lists the names from the registry and the schedules, never from the runs.
    list_filter = ["state", JobNameFilter, RunScheduleFilter, "created_at"]
    list_select_related = ["schedule"]
    search_fields = ["key"]
    search_help_text = (
        "A run id or its start (the 8 characters shown), the start of a key, or "
        "error:<text> for the errors of dead runs."
    )
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["retry_runs", "cancel_runs"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobRun]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "jobs_jobrun_changelist":
            # 100 rows a page: the list shows none of these, and a traceback alone may be 20 KB.
            queryset = queryset.defer("traceback", "history", "result", "payload", "error")
        return queryset

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "job",
                    "state_badge",
                    "reason",
                    "schedule_link",
                    "scheduled_for",
                    "key",
                    "related_runs",
                    "queue",
                    "priority",
                ]
            },
        ),
        ("Progress", {"fields": ["progress_display", "cancel_requested"]}),
        ("Payload and result", {"fields": ["payload_pretty", "result_pretty"]}),
        ("Error", {"fields": ["error_pretty", "traceback_pretty"]}),
        ("Attempts", {"fields": ["attempts_display", "timeline"]}),
        (
            "Times",
            {
                "fields": [
                    "created_at",
                    "run_after",
                    "enqueued_at",
                    "started_at",
                    "finished_at",
                    "lease_expires_at",
                    "duration_display",
                    "lateness",
                    "worker",
                    "time_limit_seconds",
                ]
            },
        ),
    ]
    change_form_template = "admin/jobs/jobrun/change_form.html"
    change_list_template = "admin/jobs/jobrun/change_list.html"

    class Media:
        css = {"all": ["jobs/admin.css"]}
        js = ["jobs/admin.js"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JobRun | None = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.retry_jobrun")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.cancel_jobrun")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JobRun], search_term: str
    ) -> tuple[QuerySet[JobRun], bool]:
        return queryset.filter(run_search(search_term)), False

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
            buttons = []
            if obj.state in RETRYABLE_STATES:
                buttons.append(("retry_runs", "Retry"))
            if obj.state in JobRun.ACTIVE_STATES:
                buttons.append(("cancel_runs", "Cancel"))
            extra.update(action_buttons(self, request, buttons))
            extra["jobs_active"] = obj.state in JobRun.ACTIVE_STATES
        return super().change_view(request, object_id, form_url, extra)

    # -- columns and fields ----------------------------------------------------------------

    @admin.display(description="run", ordering="created_at")
    def short_id(self, obj: JobRun) -> str:
        return str(obj.id)[:8]

    @admin.display(description="schedule", ordering="schedule__name")
    def schedule_link(self, obj: JobRun) -> SafeString:
        if obj.schedule is None:
            return format_html('<span class="jobs-quiet">{}</span>', "ad hoc")
        return admin_link(obj.schedule)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: JobRun) -> SafeString:
        badge = state_badge(obj.state)
        if obj.cancel_requested and obj.state == State.RUNNING:
            return format_html("{} {}", badge, "(cancel requested)")
        return badge

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, obj: JobRun) -> str:
        return f"{obj.attempts} / {obj.max_retries + 1}"

    @admin.display(description="duration")
    def duration_display(self, obj: JobRun) -> str:
        if obj.state == State.RUNNING and obj.started_at:
            return f"{seconds_text(timezone.now() - obj.started_at)} so far"
        return seconds_text(obj.duration)

    @admin.display(description="progress")
    def progress_display(self, obj: JobRun) -> SafeString:
        return progress_bar(obj)

    @admin.display(description="slot", ordering="scheduled_for")
    def slot(self, obj: JobRun) -> str:
        return stamp(obj.scheduled_for) if obj.scheduled_for else "ad hoc"

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: JobRun) -> str:
        return stamp(obj.started_at)

    @admin.display(description="late by")
    def lateness(self, obj: JobRun) -> str:
        """How long after its slot (or its creation, for ad-hoc runs) the run started."""
        if obj.started_at is None:
            return "—"
        reference = obj.scheduled_for or obj.run_after or obj.created_at
        return seconds_text(obj.started_at - reference)

    @admin.display(description="payload")
    def payload_pretty(self, obj: JobRun) -> SafeString:
        return json_pre(obj.payload)

    @admin.display(description="result")
    def result_pretty(self, obj: JobRun) -> SafeString:
        return json_pre(obj.result)

    @admin.display(description="error")
    def error_pretty(self, obj: JobRun) -> SafeString:
        return pre_block(obj.error, "jobs-error")

    @admin.display(description="traceback")
    def traceback_pretty(self, obj: JobRun) -> SafeString:
        return pre_block(obj.traceback, "jobs-traceback")

    @admin.display(description="related runs")
    def related_runs(self, obj: JobRun) -> SafeString:
        parts = []
        if obj.retry_of_id:
            parts.append(
                format_html(
                    "Retry of {}", admin_link(JobRun(pk=obj.retry_of_id), str(obj.retry_of_id))
                )
            )
        retries = list(obj.retries.only("id", "state").order_by("-created_at")[:20])
        if retries:
            parts.append(
                format_html(
                    "Retried as {}",
                    format_html_join(
                        ", ",
                        "{} {}",
                        ((admin_link(r, str(r.id)), state_badge(r.state)) for r in retries),
                    ),
                )
            )
        if not parts:
            return format_html('<span class="jobs-quiet">{}</span>', "—")
        return format_html_join(mark_safe("<br>"), "{}", ((p,) for p in parts))

    @admin.display(description="timeline")
    def timeline(self, obj: JobRun) -> SafeString:
        return format_html(
            '<table class="jobs-table jobs-timeline"><thead><tr><th>attempt</th><th>worker</th>'
            "<th>started</th><th>finished</th><th>outcome</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                _timeline_rows(obj),
            ),
        )

    # -- actions ---------------------------------------------------------------------------

    @admin.action(description="Retry (as a new run)", permissions=["retry"], location=BOTH)
    def retry_runs(self, request: HttpRequest, queryset: QuerySet[JobRun]) -> HttpResponse | None:
        retried: list[JobRun] = []
        refused = 0
        for run in queryset:
            if run.state not in RETRYABLE_STATES:
                refused += 1
                continue
            try:
                retry = services.run_retry(run=run)
            except ValueError as exc:  # its job was removed, or a retry is still going
                self.message_user(
                    request, f"Run {str(run.id)[:8]} not retried: {exc}", messages.WARNING
                )
                continue
            self.log_change(request, run, f"Retried as run {retry.id}")
            self.log_addition(request, retry, f"Retry of run {run.id}")
            retried.append(retry)
        if retried:
            self.message_user(
                request,
                format_html(
                    "Retried {} run(s): {}.",
                    len(retried),
                    format_html_join(
                        ", ", "{}", ((admin_link(r, str(r.id)[:8]),) for r in retried)
                    ),
                ),
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                f"{refused} run(s) not retried: only dead, cancelled or skipped runs can be "
                "retried (a running or queued run is still going; a succeeded one is done).",
                messages.WARNING,
            )
        if len(retried) == 1 and from_change_form(request):
            return HttpResponseRedirect(reverse("admin:jobs_jobrun_change", args=[retried[0].pk]))
        return None

    @admin.action(description="Cancel", permissions=["cancel"], location=BOTH)
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[JobRun]) -> None:
        outcomes: dict[str, int] = {"cancelled": 0, "requested": 0, "finished": 0}
        for run in queryset:
            if run.state not in JobRun.ACTIVE_STATES:
                outcomes["finished"] += 1
                continue
            outcome = services.run_cancel(run=run, reason="cancelled by an operator in the admin")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome != "finished":
                self.log_change(
                    request,
                    run,
                    "Cancelled" if outcome == "cancelled" else "Cancellation requested (running)",
                )
        if outcomes["cancelled"]:
            self.message_user(
                request, f"Cancelled {outcomes['cancelled']} run(s).", messages.SUCCESS
            )
        if outcomes["requested"]:
            self.message_user(
                request,
                f"Asked {outcomes['requested']} running run(s) to stop: they stop at their next "
                "progress report.",
            )
        if outcomes["finished"]:
            self.message_user(
                request,
                f"{outcomes['finished']} run(s) had already finished; nothing to cancel.",
                messages.WARNING,
            )


def _parse_stamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def _timeline_rows(run: JobRun) -> list[tuple[Any, ...]]:
    """One row per attempt: the failed ones from `history`, then the current one."""
    failed = format_html('<span class="jobs-badge jobs-badge-bad">{}</span>', "failed")
    rows: list[list[Any]] = []  # attempt, worker, started, finished, badge, error
    last = 0
    history = run.history if isinstance(run.history, list) else []
    for entry in history:
        if not isinstance(entry, dict):
            continue
        attempt = entry.get("attempt")
        if isinstance(attempt, int):
            last = max(last, attempt)
        rows.append(
            [
                attempt if attempt is not None else "?",
                entry.get("worker") or "—",
                stamp(_parse_stamp(entry.get("started_at"))),
                stamp(_parse_stamp(entry.get("finished_at"))),
                failed,
                str(entry.get("error") or ""),
            ]
        )
    current = state_badge(run.state)
    if run.attempts > last:
        rows.append(
            [
                run.attempts,
                run.worker or "—",
                stamp(run.started_at),
                stamp(run.finished_at),
                current,
                "",
            ]
        )
    elif rows and run.is_finished:
        rows[-1][4] = current  # the last failure ended the run (dead, or cancelled running)
    elif run.state == State.RETRYING:
        rows.append([run.attempts + 1, "—", "—", "—", current, f"due {relative(run.run_after)}"])
    if not rows:
        rows.append(["—", "—", "—", "—", current, ""])
    return [(a, w, s, f, format_html("{} {}", badge, error)) for a, w, s, f, badge, error in rows]

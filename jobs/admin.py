"""The jobs admin: schedules (edit, preview, pause/resume, run now, backfill, duplicate),
runs (read-only history with retry and cancel) and the overview page.

Every action calls one service, has its own permission (hidden from the page AND refused by
Django's action dispatch when missing) and is recorded in the admin log.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation, helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe

from jobs import admin_views, schedules, services
from jobs.errors import PayloadError, UnknownJob
from jobs.forms import BackfillForm, PauseForm, ScheduleForm
from jobs.models import JobRun, Schedule
from jobs.registry import registered_jobs

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


def _from_change_form(request: HttpRequest) -> bool:
    return CHANGE_FORM_ACTION in request.POST


def _return_url(request: HttpRequest, default: str) -> str:
    """Where an action goes back to: the page it was started from (carried through the
    intermediate pages as `next`), if it is on this site."""
    target = request.POST.get("next") or request.get_full_path()
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _admin_link(obj: Schedule | JobRun, text: str | None = None) -> SafeString:
    url = reverse(f"admin:jobs_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def _pre(text: str, css: str = "") -> SafeString:
    if not text:
        return format_html('<span class="jobs-quiet">{}</span>', "—")
    return format_html('<pre class="jobs-pre {}">{}</pre>', css, text)


def _json_pre(value: Any) -> SafeString:
    if value is None:
        return format_html('<span class="jobs-quiet">{}</span>', "—")
    return _pre(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------


class JobNameFilter(admin.SimpleListFilter):
    """By job: the registered jobs, plus any other name stored in the schedules."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(registered_jobs())
        # order_by(): without it the model's ordering joins the DISTINCT (job, name: every row).
        names.update(Schedule.objects.order_by().values_list("job", flat=True).distinct())
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(job=value) if value else queryset


class LastStateFilter(admin.SimpleListFilter):
    """By the state of each schedule's most recent run ("never" for none)."""

    title = "last run"
    parameter_name = "last_state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*State.choices, ("never", "Never run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> QuerySet[Schedule]:
        value = self.value()
        if value not in {*State.values, "never"}:
            return queryset
        latest = JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-created_at")
        queryset = queryset.annotate(last_state=Subquery(latest.values("state")[:1]))
        if value == "never":
            return queryset.filter(last_state__isnull=True)
        return queryset.filter(last_state=value)


class RunScheduleFilter(admin.SimpleListFilter):
    """By schedule. Lists every schedule while there are few; with many, only the chosen one
    (links from a schedule's page choose it) so the sidebar stays short."""

    title = "schedule"
    parameter_name = "schedule"
    LIST_LIMIT = 30

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices: list[tuple[str, str]] = [("none", "Ad hoc (no schedule)")]
        everything = Schedule.objects.only("id", "name").order_by("name")
        listed = list(everything[: self.LIST_LIMIT + 1])
        if len(listed) > self.LIST_LIMIT:
            value = self.value()
            listed = list(everything.filter(pk=value)) if value and value.isdigit() else []
        return choices + [(str(s.pk), s.name) for s in listed]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JobRun]) -> QuerySet[JobRun]:
        value = self.value()
        if value == "none":
            return queryset.filter(schedule__isnull=True)
        if value and value.isdigit():
            return queryset.filter(schedule_id=int(value))
        return queryset


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


class ScheduleChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # One query for the sparklines and last states of the whole page (no N+1).
        rows = list(self.result_list)
        recent: dict[int, list[Any]] = {row.pk: [] for row in rows}
        for run in recent_runs(list(recent), SPARKLINE_RUNS):
            recent[run.schedule_id].append(run)
        for row in rows:
            row.recent_runs_list = sorted(
                recent[row.pk], key=attrgetter("created_at"), reverse=True
            )
        self.result_list = rows


_HEX = frozenset("0123456789abcdef")


def run_search(term: str) -> Q:
    """What the run list's search box finds, each through an index: an id by its first
    characters (a range of the primary key), a key by its start (jobs_run_key_prefix_idx),
    and with "error:" the error text of dead runs (the dead runs' index, then their rows)."""
    term = term.strip()
    if not term:
        return Q()
    if term.lower().startswith("error:"):
        text = term[len("error:") :].strip()
        return Q(state=State.DEAD, error__icontains=text) if text else Q(pk__in=[])
    found = Q(key__startswith=term)
    digits = term.lower().replace("-", "")
    if 4 <= len(digits) <= 32 and set(digits) <= _HEX:
        low = uuid.UUID(digits.ljust(32, "0"))
        high = uuid.UUID(digits.ljust(32, "f"))
        found |= Q(id__gte=low, id__lte=high)
    return found


class CappedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Counts exactly up to CAP rows and estimates beyond (the planner's row estimate), so
    that a list of ten million runs does not count them on every page view. `estimated` tells
    the template to say "about"."""

    CAP = 10_000
    estimated = False

    @cached_property
    def count(self) -> int:
        queryset: QuerySet[Any] = self.object_list.order_by()  # type: ignore[attr-defined]
        capped = queryset[: self.CAP + 1].count()
        if capped <= self.CAP or connection.vendor != "postgresql":
            return int(capped)
        self.estimated = True
        plan = json.loads(queryset.explain(format="json"))
        return max(self.CAP + 1, int(plan[0]["Plan"]["Plan Rows"]))


class ScheduleCountPaginator(CappedCountPaginator):
    """The "last run" filter costs one index probe per schedule it counts: count fewer."""

    CAP = 1_000


def recent_runs(schedule_ids: list[int], per_schedule: int) -> list[Any]:
    """The latest runs of each schedule, newest first, in one query: one index range per
    schedule (UNION ALL of LIMITed parts). A prefetch with a slice would number every run of
    the listed schedules with ROW_NUMBER() instead, a million rows on a busy site. Rows are
    named tuples (schedule_id, state, created_at, scheduled_for): 3,000 model instances a
    page cost more than the query."""
    if not schedule_ids:
        return []
    parts = [
        JobRun.objects.filter(schedule_id=schedule_id)
        .order_by("-created_at")
        .values_list("schedule_id", "state", "created_at", "scheduled_for", named=True)[
            :per_schedule
        ]
        for schedule_id in schedule_ids
    ]
    if len(parts) == 1 or not connection.features.supports_slicing_ordering_in_compound:
        # SQLite (the embedded default) cannot LIMIT the parts of a UNION: one query each
        # (its lists are short).
        return [row for part in parts for row in part]
    return list(parts[0].union(*parts[1:], all=True))


@admin.register(Schedule)
class ScheduleAdmin(ScheduleAdminBase):
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
                wrap(lambda request: admin_views.schedule_preview_view(request, self)),
                name="jobs_schedule_preview",
            ),
            path(
                "overview/",
                wrap(lambda request: admin_views.overview_view(request, self)),
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
            allowed = self.get_actions(request, action_location=ActionLocation.CHANGE_FORM)
            buttons = [
                ("run_now", "Run now"),
                ("resume_schedules", "Resume")
                if not obj.enabled
                else ("pause_schedules", "Pause…"),
                ("backfill", "Backfill…"),
                ("duplicate_schedules", "Duplicate"),
            ]
            extra["jobs_buttons"] = [(name, label) for name, label in buttons if name in allowed]
            extra["jobs_action_field"] = CHANGE_FORM_ACTION
            if request.user.has_perm("jobs.view_jobrun"):
                extra["jobs_runs_url"] = (
                    reverse("admin:jobs_jobrun_changelist") + f"?schedule={obj.pk}"
                )
        return super().change_view(request, object_id, form_url, extra)

    # -- list columns ----------------------------------------------------------------------

    @admin.display(description="schedule")
    def human_schedule(self, obj: Schedule) -> str:
        return admin_views.describe_schedule(obj)

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> SafeString:
        if not obj.enabled:
            return format_html(
                '<span class="jobs-badge jobs-badge-muted" title="{}">paused</span>',
                obj.paused_reason,
            )
        return admin_views.when(obj.next_run_at)

    @admin.display(description="last run")
    def last_run(self, obj: Schedule) -> SafeString:
        runs = getattr(obj, "recent_runs_list", None)
        if runs is None:  # not from the changelist: one query
            runs = list(obj.runs.order_by("-created_at")[:1])
        return admin_views.state_badge(runs[0].state if runs else None)

    @admin.display(description=f"last {SPARKLINE_RUNS} runs")
    def sparkline(self, obj: Schedule) -> SafeString:
        runs = getattr(obj, "recent_runs_list", None)
        if runs is None:
            runs = list(obj.runs.order_by("-created_at")[:SPARKLINE_RUNS])
        return admin_views.sparkline(runs, SPARKLINE_RUNS)

    # -- change page fields ----------------------------------------------------------------

    @admin.display(description="Preview")
    def timing_preview(self, obj: Schedule) -> SafeString:
        url = reverse("admin:jobs_schedule_preview")
        if obj.pk:
            url += f"?schedule={obj.pk}"
        return admin_views.schedule_preview_html(obj, url)

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
                    _admin_link(run, str(run.id)[:8]),
                    admin_views.state_badge(run.state),
                    admin_views._stamp(run.scheduled_for) if run.scheduled_for else "ad hoc",
                    admin_views._stamp(run.started_at),
                    admin_views.seconds_text(run.duration),
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

    # -- actions ---------------------------------------------------------------------------

    def _intermediate(
        self,
        request: HttpRequest,
        queryset: QuerySet[Schedule],
        *,
        action: str,
        title: str,
        form: Any,
        step: str,
        extra: dict[str, Any] | None = None,
    ) -> TemplateResponse:
        """A confirmation/input page that posts back to the changelist's action dispatch."""
        changelist = reverse("admin:jobs_schedule_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "objects": list(queryset),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "form": form,
            "media": self.media + form.media,
            "step": step,
            "post_url": changelist,
            "next": _return_url(request, changelist),
            **(extra or {}),
        }
        return TemplateResponse(request, f"admin/jobs/schedule/{action}.html", context)

    @admin.action(description="Pause…", permissions=["pause"], location=BOTH)
    def pause_schedules(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> HttpResponse | None:
        form = PauseForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return self._intermediate(
                request,
                queryset,
                action="pause_schedules",
                title="Pause schedules",
                form=form,
                step="input",
            )
        reason = form.cleaned_data["reason"]
        paused = []
        for schedule in queryset:
            if services.schedule_pause(schedule=schedule, reason=reason):
                self.log_change(request, schedule, f"Paused: {reason}")
                paused.append(schedule.name)
        skipped = queryset.count() - len(paused)
        if paused:
            self.message_user(
                request,
                f"Paused {len(paused)} schedule(s): {', '.join(paused)}.",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request, f"{skipped} schedule(s) were already paused.", messages.WARNING
            )
        return HttpResponseRedirect(_return_url(request, request.path))

    @admin.action(description="Resume", permissions=["pause"], location=BOTH)
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            try:
                resumed = services.schedule_resume(schedule=schedule)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            if resumed:
                self.log_change(request, schedule, "Resumed")
                self.message_user(
                    request,
                    f"Resumed {schedule.name}; next run "
                    f"{admin_views.relative(schedule.next_run_at)} "
                    f"({admin_views._stamp(schedule.next_run_at)}).",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, f"{schedule.name} was not paused.", messages.WARNING)

    @admin.action(description="Run now", permissions=["run"], location=BOTH)
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> HttpResponse | None:
        started: list[JobRun] = []
        for schedule in queryset:
            try:
                run = services.schedule_run_now(schedule=schedule)
            except (UnknownJob, PayloadError) as exc:
                self.message_user(request, f"{schedule.name} was not run: {exc}", messages.ERROR)
                continue
            self.log_change(request, schedule, f"Ran now: run {run.id}")
            started.append(run)
            self.message_user(
                request,
                format_html("Started {}: run {}.", schedule.name, _admin_link(run, str(run.id))),
                messages.SUCCESS,
            )
        if (
            len(started) == 1
            and _from_change_form(request)
            and request.user.has_perm("jobs.view_jobrun")
        ):
            return HttpResponseRedirect(reverse("admin:jobs_jobrun_change", args=[started[0].pk]))
        return None

    @admin.action(description="Backfill a date range…", permissions=["run"], location=BOTH)
    def backfill(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> HttpResponse | None:
        selected = list(queryset[:2])
        if len(selected) != 1:
            self.message_user(
                request, "Backfill one schedule at a time: select exactly one.", messages.ERROR
            )
            return None
        schedule = selected[0]
        submitted = "preview" in request.POST or "apply" in request.POST
        form = BackfillForm(request.POST if submitted else None)

        def page(step: str, **extra: Any) -> TemplateResponse:
            return self._intermediate(
                request,
                queryset,
                action="backfill",
                title=f"Backfill {schedule.name}",
                form=form,
                step=step,
                extra={"schedule": schedule, "cap": services.BACKFILL_CAP, **extra},
            )

        if not submitted or not form.is_valid():
            return page("input")
        start: datetime = form.cleaned_data["start"]
        end: datetime = form.cleaned_data["end"]
        try:
            plan = services.schedule_backfill_plan(schedule=schedule, start=start, end=end)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return page("input")
        if "apply" not in request.POST:
            tz = schedules.parse_timezone(schedule.timezone)
            slots = [
                {
                    "local": admin_views._stamp(slot, tz),
                    "utc": f"{slot:%Y-%m-%d %H:%M} UTC",
                    "exists": slot in plan.existing,
                }
                for slot in plan.slots
            ]
            return page("confirm", slots=slots, new=len(plan.new), existing=len(plan.existing))
        try:
            result = services.schedule_backfill(schedule=schedule, start=start, end=end)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return page("input")
        except (UnknownJob, PayloadError) as exc:
            self.message_user(request, f"{schedule.name} was not backfilled: {exc}", messages.ERROR)
            return HttpResponseRedirect(_return_url(request, request.path))
        summary = (
            f"Backfilled {admin_views._stamp(start)} – {admin_views._stamp(end)}: "
            f"{len(result.created)} run(s) created, {result.skipped_existing} slot(s) skipped "
            "because they already have a run."
        )
        self.log_change(request, schedule, summary)
        self.message_user(request, f"{schedule.name}: {summary}", messages.SUCCESS)
        return HttpResponseRedirect(_return_url(request, request.path))

    @admin.action(description="Duplicate", permissions=["add"], location=BOTH)
    def duplicate_schedules(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> HttpResponse | None:
        copies = []
        for schedule in queryset:
            try:
                copy = services.schedule_duplicate(schedule=schedule)
            except ValidationError as exc:
                problems = "; ".join(f"{f}: {', '.join(m)}" for f, m in exc.message_dict.items())
                self.message_user(
                    request, f"{schedule.name} was not duplicated: {problems}", messages.ERROR
                )
                continue
            self.log_addition(request, copy, f"Duplicated from {schedule.name} (id {schedule.pk})")
            copies.append(copy)
            self.message_user(
                request,
                format_html("Created {} (paused): review it, then resume it.", _admin_link(copy)),
            )
        if len(copies) == 1 and _from_change_form(request):
            return HttpResponseRedirect(reverse("admin:jobs_schedule_change", args=[copies[0].pk]))
        return None


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


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
            allowed = self.get_actions(request, action_location=ActionLocation.CHANGE_FORM)
            buttons = []
            if obj.state in RETRYABLE_STATES and "retry_runs" in allowed:
                buttons.append(("retry_runs", "Retry"))
            if obj.state in JobRun.ACTIVE_STATES and "cancel_runs" in allowed:
                buttons.append(("cancel_runs", "Cancel"))
            extra["jobs_buttons"] = buttons
            extra["jobs_action_field"] = CHANGE_FORM_ACTION
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
        return _admin_link(obj.schedule)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: JobRun) -> SafeString:
        badge = admin_views.state_badge(obj.state)
        if obj.cancel_requested and obj.state == State.RUNNING:
            return format_html("{} {}", badge, "(cancel requested)")
        return badge

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, obj: JobRun) -> str:
        return f"{obj.attempts} / {obj.max_retries + 1}"

    @admin.display(description="duration")
    def duration_display(self, obj: JobRun) -> str:
        if obj.state == State.RUNNING and obj.started_at:
            return f"{admin_views.seconds_text(timezone.now() - obj.started_at)} so far"
        return admin_views.seconds_text(obj.duration)

    @admin.display(description="progress")
    def progress_display(self, obj: JobRun) -> SafeString:
        return admin_views.progress_bar(obj)

    @admin.display(description="slot", ordering="scheduled_for")
    def slot(self, obj: JobRun) -> str:
        return admin_views._stamp(obj.scheduled_for) if obj.scheduled_for else "ad hoc"

    @admin.display(description="started", ordering="started_at")
    def started(self, obj: JobRun) -> str:
        return admin_views._stamp(obj.started_at)

    @admin.display(description="late by")
    def lateness(self, obj: JobRun) -> str:
        """How long after its slot (or its creation, for ad-hoc runs) the run started."""
        if obj.started_at is None:
            return "—"
        reference = obj.scheduled_for or obj.run_after or obj.created_at
        return admin_views.seconds_text(obj.started_at - reference)

    @admin.display(description="payload")
    def payload_pretty(self, obj: JobRun) -> SafeString:
        return _json_pre(obj.payload)

    @admin.display(description="result")
    def result_pretty(self, obj: JobRun) -> SafeString:
        return _json_pre(obj.result)

    @admin.display(description="error")
    def error_pretty(self, obj: JobRun) -> SafeString:
        return _pre(obj.error, "jobs-error")

    @admin.display(description="traceback")
    def traceback_pretty(self, obj: JobRun) -> SafeString:
        return _pre(obj.traceback, "jobs-traceback")

    @admin.display(description="related runs")
    def related_runs(self, obj: JobRun) -> SafeString:
        parts = []
        if obj.retry_of_id:
            parts.append(
                format_html(
                    "Retry of {}", _admin_link(JobRun(pk=obj.retry_of_id), str(obj.retry_of_id))
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
                        (
                            (_admin_link(r, str(r.id)), admin_views.state_badge(r.state))
                            for r in retries
                        ),
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
                        ", ", "{}", ((_admin_link(r, str(r.id)[:8]),) for r in retried)
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
        if len(retried) == 1 and _from_change_form(request):
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
                admin_views._stamp(_parse_stamp(entry.get("started_at"))),
                admin_views._stamp(_parse_stamp(entry.get("finished_at"))),
                failed,
                str(entry.get("error") or ""),
            ]
        )
    current = admin_views.state_badge(run.state)
    if run.attempts > last:
        rows.append(
            [
                run.attempts,
                run.worker or "—",
                admin_views._stamp(run.started_at),
                admin_views._stamp(run.finished_at),
                current,
                "",
            ]
        )
    elif rows and run.is_finished:
        rows[-1][4] = current  # the last failure ended the run (dead, or cancelled running)
    elif run.state == State.RETRYING:
        rows.append(
            [run.attempts + 1, "—", "—", "—", current, f"due {admin_views.relative(run.run_after)}"]
        )
    if not rows:
        rows.append(["—", "—", "—", "—", current, ""])
    return [(a, w, s, f, format_html("{} {}", badge, error)) for a, w, s, f, badge, error in rows]

"""The schedule admin's actions: pause, resume, run now, backfill, duplicate.

Every action calls one service, has its own permission (hidden from the page AND refused by
Django's action dispatch when missing) and is recorded in the admin log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from jobs import services
from jobs.admin.base import BOTH, ScheduleAdminBase, admin_link, from_change_form, return_url
from jobs.admin.forms import BackfillForm, PauseForm
from jobs.admin.html import relative, stamp
from jobs.errors import PayloadError, UnknownJob
from jobs.models import JobRun, Schedule
from jobs.scheduling import backfill
from jobs.timing import parse_timezone


class ScheduleActions(ScheduleAdminBase):
    """The actions of ScheduleAdmin, each with its confirmation or input page."""

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
            "next": return_url(request, changelist),
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
        return HttpResponseRedirect(return_url(request, request.path))

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
                    f"{relative(schedule.next_run_at)} "
                    f"({stamp(schedule.next_run_at)}).",
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
                format_html("Started {}: run {}.", schedule.name, admin_link(run, str(run.id))),
                messages.SUCCESS,
            )
        if (
            len(started) == 1
            and from_change_form(request)
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
                extra={"schedule": schedule, "cap": backfill.BACKFILL_CAP, **extra},
            )

        if not submitted or not form.is_valid():
            return page("input")
        start: datetime = form.cleaned_data["start"]
        end: datetime = form.cleaned_data["end"]
        try:
            plan = backfill.schedule_backfill_plan(schedule=schedule, start=start, end=end)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return page("input")
        if "apply" not in request.POST:
            tz = parse_timezone(schedule.timezone)
            slots = [
                {
                    "local": stamp(slot, tz),
                    "utc": f"{slot:%Y-%m-%d %H:%M} UTC",
                    "exists": slot in plan.existing,
                }
                for slot in plan.slots
            ]
            return page("confirm", slots=slots, new=len(plan.new), existing=len(plan.existing))
        try:
            result = backfill.schedule_backfill(schedule=schedule, start=start, end=end)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return page("input")
        except (UnknownJob, PayloadError) as exc:
            self.message_user(request, f"{schedule.name} was not backfilled: {exc}", messages.ERROR)
            return HttpResponseRedirect(return_url(request, request.path))
        summary = (
            f"Backfilled {stamp(start)} – {stamp(end)}: "
            f"{len(result.created)} run(s) created, {result.skipped_existing} slot(s) skipped "
            "because they already have a run."
        )
        self.log_change(request, schedule, summary)
        self.message_user(request, f"{schedule.name}: {summary}", messages.SUCCESS)
        return HttpResponseRedirect(return_url(request, request.path))

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
                format_html("Created {} (paused): review it, then resume it.", admin_link(copy)),
            )
        if len(copies) == 1 and from_change_form(request):
            return HttpResponseRedirect(reverse("admin:jobs_schedule_change", args=[copies[0].pk]))
        return None

"""What the change lists need: filters, run search, capped counts, the sparklines' rows."""

from __future__ import annotations

import json
import uuid
from operator import attrgetter
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.functional import cached_property

from jobs.admin.base import SPARKLINE_RUNS
from jobs.models import JobRun, Schedule
from jobs.registry import registered_jobs

State = JobRun.State


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

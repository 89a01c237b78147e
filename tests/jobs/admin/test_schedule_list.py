"""The schedule list: what an operator sees per schedule, its filters and search, without one
query per row."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import JobRun, Schedule
from tests.jobs.admin.support import SCHEDULES, make_run
from tests.jobs.factories import make_schedule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_our_schedules() -> None:
    Schedule.objects.all().delete()  # the migrations seed a few


def runs_for(schedule: Schedule, states: list[str]) -> None:
    """Runs created oldest first, one minute apart, ending now."""
    now = timezone.now()
    for i, state in enumerate(states):
        make_run(schedule, state=state, created_at=now - timedelta(minutes=len(states) - i))


def row_of(page: str, name: str) -> str:
    for row in re.findall(r"<tr.*?</tr>", page, flags=re.S):
        if f">{name}</a>" in row:
            return row
    raise AssertionError(f"no row for {name}")


def test_a_row_shows_the_schedule_in_words_with_its_next_and_last_run(
    admin_client: Client,
) -> None:
    schedule = make_schedule(name="nightly", cron="30 2 * * *", timezone="Europe/Berlin")
    runs_for(schedule, ["succeeded", "dead"])
    row = row_of(admin_client.get(SCHEDULES).content.decode(), "nightly")
    assert "At 02:30 (Europe/Berlin)" in row
    assert '<td class="field-timezone">Europe/Berlin</td>' in row
    assert re.search(r"in \d+(\xa0|&nbsp;)(hour|minute)", row), "next run, relative"
    assert timezone.localtime(schedule.next_run_at).strftime("%Y-%m-%d %H:%M") in row
    assert '<span class="jobs-badge jobs-badge-bad" data-state="dead">Dead</span>' in row
    assert 'alt="True"' in row, "enabled"


def test_a_paused_schedule_shows_paused_with_its_reason(admin_client: Client) -> None:
    schedule = make_schedule(name="paused one")
    Schedule.objects.filter(pk=schedule.pk).update(
        enabled=False, next_run_at=None, paused_reason="provider <outage>"
    )
    row = row_of(admin_client.get(SCHEDULES).content.decode(), "paused one")
    assert 'title="provider &lt;outage&gt;">paused</span>' in row
    assert "never run" in row


def test_the_sparkline_shows_the_last_30_runs_green_and_red(admin_client: Client) -> None:
    schedule = make_schedule(name="busy")
    runs_for(schedule, ["dead"] * 5 + ["succeeded"] * 27 + ["dead"] * 2 + ["succeeded"])
    row = row_of(admin_client.get(SCHEDULES).content.decode(), "busy")
    fills = re.findall(r'<rect [^>]*fill="(#[0-9a-f]+)"', row)
    assert len(fills) == 30, "only the 30 most recent"
    assert fills[-3:] == ["#c62828", "#c62828", "#2e7d32"], "newest on the right"
    assert fills.count("#c62828") == 2 and fills.count("#2e7d32") == 28
    assert 'aria-label="last 30 runs: 28 succeeded, 2 dead"' in row


def test_the_list_does_not_query_per_row(admin_client: Client) -> None:
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(SCHEDULES).status_code == 200
        return len(ctx.captured_queries)

    for n in range(3):
        runs_for(make_schedule(name=f"s{n}"), ["succeeded", "dead"])
    few = queries_for_list()
    for n in range(3, 15):
        runs_for(make_schedule(name=f"s{n}"), ["succeeded", "dead", "running"])
    assert queries_for_list() == few


def test_filter_by_job_enabled_and_last_state(admin_client: Client) -> None:
    ok = make_schedule(name="ok", job="test.noop")
    failing = make_schedule(name="failing", job="test.echo")
    never = make_schedule(name="never", job="test.echo")
    Schedule.objects.filter(pk=never.pk).update(enabled=False)
    runs_for(ok, ["dead", "succeeded"])
    runs_for(failing, ["succeeded", "dead"])

    def names(query: str) -> set[str]:
        response = admin_client.get(SCHEDULES + query)
        assert response.status_code == 200
        return {s.name for s in response.context["cl"].result_list}

    assert names("?job=test.echo") == {"failing", "never"}
    assert names("?enabled__exact=0") == {"never"}
    assert names("?last_state=dead") == {"failing"}
    assert names("?last_state=succeeded") == {"ok"}
    assert names("?last_state=never") == {"never"}
    assert names("?last_state=bogus") == {"ok", "failing", "never"}
    assert names("?q=fail") == {"failing"}


def test_script_in_a_name_is_escaped_in_the_list(admin_client: Client) -> None:
    make_schedule(name="<script>alert(1)</script>")
    page = admin_client.get(SCHEDULES).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_list_links_to_the_overview(admin_client: Client) -> None:
    assert b'href="/admin/jobs/schedule/overview/"' in admin_client.get(SCHEDULES).content


def test_recent_runs_are_listed_on_the_change_page(admin_client: Client) -> None:
    schedule = make_schedule(name="with runs")
    runs_for(schedule, ["succeeded"] * 25)
    last = JobRun.objects.filter(schedule=schedule).order_by("-created_at").first()
    page = admin_client.get(f"{SCHEDULES}{schedule.pk}/change/").content.decode()
    table = page[page.index("<th>run</th>") :]
    assert table.count('data-state="succeeded"') == 20
    assert f'href="/admin/jobs/jobrun/{last.pk}/change/"' in table
    assert f'href="/admin/jobs/jobrun/?schedule={schedule.pk}">All runs</a>' in page

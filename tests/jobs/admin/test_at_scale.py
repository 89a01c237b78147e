"""Admin pages whose cost must not grow with the history: checked by the statements they run,
not by timing (bench/scale.py measures the times on ten million runs)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.admin.lists import CappedCountPaginator
from jobs.models import JobRun
from tests.jobs.admin.support import OVERVIEW, RUNS, SCHEDULES, make_run
from tests.jobs.factories import make_schedule

pytestmark = pytest.mark.django_db


def statements(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def test_a_long_run_list_is_counted_up_to_a_cap_and_estimated_beyond(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)
    for _ in range(8):
        make_run()
    sql = statements(admin_client, RUNS)
    counts = [s for s in sql if "COUNT(" in s.upper()]
    assert counts and all("LIMIT 6" in s for s in counts), counts
    page = admin_client.get(RUNS).content.decode()
    assert "about " in page and "job runs" in page
    # Few enough: an exact count, said plainly.
    page = admin_client.get(RUNS + "?state__exact=dead").content.decode()
    assert "about " not in page and "0 job runs" in page


def test_the_schedule_list_reads_each_sparkline_from_the_index_not_every_run(
    admin_client: Client,
) -> None:
    schedules = [make_schedule(name=f"s{i}") for i in range(3)]
    now = timezone.now()
    for schedule in schedules:
        for minutes in range(35):
            make_run(schedule, created_at=now - timedelta(minutes=minutes))
    sql = statements(admin_client, SCHEDULES)
    runs = [s for s in sql if 'FROM "jobs_jobrun"' in s]
    assert len(runs) == 1, runs
    assert "ROW_NUMBER" not in runs[0] and "UNION ALL" in runs[0]
    page = admin_client.get(SCHEDULES).content.decode()
    assert page.count("last 30 runs: 30 succeeded, 0 dead") == 3


def test_the_overview_counts_past_hours_once(admin_client: Client) -> None:
    now = timezone.now()
    for hours in (1, 3, 5):
        make_run(state="succeeded", finished_at=now - timedelta(hours=hours))
    first = [s for s in statements(admin_client, OVERVIEW) if "date_trunc" in s.lower()]
    again = [s for s in statements(admin_client, OVERVIEW) if "date_trunc" in s.lower()]
    assert len(first) == 1 and len(again) == 1
    # The first view counts from the first of the 24 hours; the second only the current
    # (and, in its first minutes, the previous) hour.
    first_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=23
    )
    assert f"{first_hour:%Y-%m-%d %H}:00:00" in first[0], first[0]
    assert f"{first_hour:%Y-%m-%d %H}:00:00" not in again[0], again[0]
    page = admin_client.get(OVERVIEW).content.decode()
    assert "3 succeeded" in page
    assert JobRun.objects.count() == 3


def test_runs_are_found_by_the_start_of_their_id_or_key_and_by_the_error_of_dead_runs(
    admin_client: Client,
) -> None:
    target = make_run(key="report:tenant-7:2026-10")
    make_run(key="report:tenant-8:2026-10")
    dead = make_run(state="dead", error="upstream returned 503 after 3 tries")
    make_run(state="succeeded", error="upstream returned 503 (recovered)")

    def found(term: str) -> set[object]:
        response = admin_client.get(RUNS, {"q": term})
        assert response.status_code == 200
        return {run.id for run in response.context["cl"].result_list}

    assert found(str(target.id)[:8]) == {target.id}  # the 8 characters the list shows
    assert found(str(target.id).upper()) == {target.id}
    assert found(str(target.id)[:13]) == {target.id}  # with its dash
    assert found("report:tenant-7") == {target.id}
    assert found("error:returned 503") == {dead.id}
    assert found("error:") == set()
    assert found("no-such-thing") == set()


def test_each_search_reaches_its_runs_through_an_index() -> None:
    from jobs.admin.lists import run_search

    JobRun.objects.bulk_create(JobRun(job="test.noop", key=f"k{i}") for i in range(3000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_jobrun")
    for term, index in [
        ("0a1b2c3d", "jobs_jobrun_pkey"),
        ("k12", "jobs_run_key_prefix_idx"),
        ("error:boom", "jobs_run_dead_idx"),
    ]:
        plan = JobRun.objects.filter(run_search(term)).order_by("-created_at")[:100].explain()
        assert index in plan, f"{term}: {plan}"

"""The overview page: scheduler health, workers, queue depth from the broker, runs per hour,
late schedules and the latest dead runs; linked from the admin index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
from django.test import Client
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from jobs.models import Heartbeat, JobRun, Schedule
from tests.jobs.admin.support import OVERVIEW, make_run, operator
from tests.jobs.factories import make_schedule

pytestmark = pytest.mark.django_db


def overview(client: Client) -> str:
    response = client.get(OVERVIEW)
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, name: str) -> str:
    start = page.index(f'id="jobs-{name}"')
    end = page.find("<section", start)
    return page[start : end if end > 0 else None]


def beat(kind: str, name: str, age: timedelta, **fields: object) -> Heartbeat:
    now = timezone.now()
    return Heartbeat.objects.create(
        kind=kind, name=name, seen_at=now - age, started_at=now - timedelta(hours=1), **fields
    )


def test_the_index_and_the_app_page_link_to_the_overview(admin_client: Client) -> None:
    for url in ("/admin/", "/admin/jobs/"):
        assert f'<a href="{OVERVIEW}">Overview</a>' in admin_client.get(url).content.decode()


def test_the_index_shows_no_link_to_staff_without_jobs_permissions() -> None:
    clerk = operator("clerk")
    assert OVERVIEW not in clerk.get("/admin/").content.decode()
    assert clerk.get(OVERVIEW).status_code == 403


def test_run_viewers_may_see_the_overview() -> None:
    assert operator("viewer", "view_jobrun").get(OVERVIEW).status_code == 200


def test_scheduler_health_says_when_it_last_ticked_and_how_late(admin_client: Client) -> None:
    assert "No scheduler has ever ticked" in section(overview(admin_client), "scheduler")
    beat("scheduler", "old-host:1", timedelta(minutes=10))
    assert "No tick for 10 min" in section(overview(admin_client), "scheduler")
    beat(
        "scheduler",
        "host:42",
        timedelta(seconds=2),
        info={"ticks": 1234, "fired": 56, "last_lateness_s": 0.31, "clock_skew_s": 30.004},
    )
    html = section(overview(admin_client), "scheduler")
    assert re.search(
        r"Healthy: last tick 2\.\d s ago; the latest fired slot started 0\.31 s after its time",
        html,
    )
    assert "<td>host:42</td>" in html and "<td>1234</td>" in html
    assert re.search(r'<span class="jobs-error"[^>]*>30\.0 s</span>', html), "skew not shown"


def test_a_scheduler_whose_last_tick_failed_is_not_healthy(admin_client: Client) -> None:
    beat("scheduler", "host:1", timedelta(seconds=1), info={"ticks": 9})
    beat(
        "scheduler",
        "host:42",
        timedelta(seconds=2),
        info={"ticks": 3},
        last_error="OperationalError: <b>db gone</b>",
    )
    html = section(overview(admin_client), "scheduler")
    assert "Healthy" not in html
    assert (
        "Scheduler host:42 ticks, but its last tick failed: OperationalError: &lt;b&gt;db" in html
    )
    assert "OperationalError: &lt;b&gt;db gone&lt;/b&gt;" in html


def test_late_schedules_are_listed(admin_client: Client) -> None:
    Schedule.objects.all().delete()
    late = make_schedule(name="<i>late</i>", misfire_grace_seconds=60)
    on_time = make_schedule(name="on time", misfire_grace_seconds=600)
    due = timezone.now() - timedelta(minutes=5)
    Schedule.objects.filter(pk__in=[late.pk, on_time.pk]).update(next_run_at=due)
    html = section(overview(admin_client), "scheduler")
    assert "&lt;i&gt;late&lt;/i&gt;</a>" in html and "on time" not in html
    assert re.search(r"<td>5 min \d+ s</td>", html)


def test_workers_from_heartbeats_and_from_recent_runs(admin_client: Client) -> None:
    now = timezone.now()
    beat("worker", "hb-host:1", timedelta(seconds=5), info={"running": 2, "clock_skew_s": -0.012})
    beat("worker", "gone-host:9", timedelta(hours=2))
    make_run(
        state="succeeded",
        worker="runs-host:7",
        started_at=now - timedelta(seconds=20),
        finished_at=now - timedelta(seconds=10),
    )
    make_run(
        state="running",
        worker="busy-host:8",
        started_at=now - timedelta(hours=1),
        lease_expires_at=now + timedelta(seconds=10),
    )
    make_run(
        state="succeeded",
        worker="old-host:3",
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3),
    )
    html = section(overview(admin_client), "workers")
    workers = re.findall(
        r"<tr><td>([^<]+)</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)\s*</td><td>(\w+)</td></tr>",
        html,
    )
    assert workers == [
        ("busy-host:8", "1", "—", "runs"),
        ("hb-host:1", "2", "0.0 s", "heartbeat"),
        ("runs-host:7", "0", "—", "runs"),
    ]


def test_no_worker_seen_is_a_warning(admin_client: Client) -> None:
    assert "No worker seen" in section(overview(admin_client), "workers")


def test_queue_depth_comes_from_redis(admin_client: Client, broker: RedisBroker) -> None:
    def message() -> dramatiq.Message[object]:
        return dramatiq.Message(
            queue_name="default", actor_name="test.noop", args=(), kwargs={}, options={}
        )

    broker.enqueue(message())
    broker.enqueue(message())
    broker.enqueue(message(), delay=60_000)
    html = section(overview(admin_client), "queues")
    row = re.search(r'<tr data-queue="default">(.*?)</tr>', html, flags=re.S)
    assert row is not None
    assert re.findall(r'<td class="jobs-num">(\d+)</td>', row.group(1)) == ["2", "1", "0"]


@pytest.fixture
def stub_broker() -> Iterator[None]:
    real = dramatiq.get_broker()
    dramatiq.set_broker(StubBroker())
    yield
    dramatiq.set_broker(real)


def test_other_brokers_show_queue_depth_as_not_available(
    admin_client: Client, stub_broker: None
) -> None:
    assert "Queue depth: n/a (StubBroker does not expose queue lengths)" in section(
        overview(admin_client), "queues"
    )


def test_runs_per_hour_are_drawn_as_succeeded_and_failed_bars(admin_client: Client) -> None:
    now = timezone.now()
    hour_ago = now - timedelta(hours=1)
    for _ in range(3):
        make_run(state="succeeded", finished_at=hour_ago)
    make_run(state="dead", finished_at=hour_ago)
    make_run(state="succeeded", finished_at=now)
    make_run(state="succeeded", finished_at=now - timedelta(days=2))  # outside the 24 h
    make_run(state="cancelled", finished_at=now)  # neither succeeded nor failed
    html = section(overview(admin_client), "throughput")
    assert "4 succeeded" in html and "1 failed (dead)" in html
    label = timezone.localtime(hour_ago).strftime("%Y-%m-%d %H:00")
    assert f"<title>{label}: 3 succeeded, 1 failed</title>" in html
    assert html.count("<g><title>") == 24
    bar = re.search(rf"<title>{label}: .*?</g>", html, flags=re.S).group(0)
    ok_height = int(re.search(r'height="(\d+)" class="jobs-chart-ok"', bar).group(1))
    bad_height = int(re.search(r'height="(\d+)" class="jobs-chart-bad"', bar).group(1))
    assert (ok_height, bad_height) == (75, 25), "3:1, the tallest bar is full height"


def test_the_latest_dead_runs_are_listed_escaped(admin_client: Client) -> None:
    schedule = make_schedule(name="nightly")
    dead = make_run(
        schedule,
        state="dead",
        error="ValueError: <script>alert(1)</script>",
        finished_at=timezone.now(),
    )
    make_run(state="succeeded", finished_at=timezone.now())
    html = section(overview(admin_client), "dead")
    assert f'href="/admin/jobs/jobrun/{dead.pk}/change/">{str(dead.pk)[:8]}</a>' in html
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<td>nightly</td>" in html
    assert JobRun.objects.filter(state="dead").count() == 1

"""The run admin: read-only history with filters, search, an escaped detail page and an attempt
timeline; retry and cancel are the only actions, each with its own permission."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from dramatiq.brokers.redis import RedisBroker

from jobs.models import JobRun
from tests.conftest import queued_message_ids
from tests.jobs.admin.support import (
    RUNS,
    action,
    change_form_action,
    make_run,
    messages_of,
    operator,
)
from tests.jobs.factories import make_schedule

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
SCRIPT = "<script>alert('x')</script>"


def page_of(client: Client, run: JobRun) -> str:
    response = client.get(f"{RUNS}{run.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def dead_run(**fields: object) -> JobRun:
    values: dict[str, object] = {
        "job": "test.always_fails",
        "state": "dead",
        "attempts": 2,
        "max_retries": 1,
        "payload": {"note": SCRIPT},
        "error": f"ValueError: {SCRIPT}",
        "traceback": f'Traceback (most recent call last):\n  raise ValueError("{SCRIPT}")',
        "worker": "host-b:22",
        "started_at": T0 + timedelta(seconds=40),
        "finished_at": T0 + timedelta(seconds=45),
        "history": [
            {
                "attempt": 1,
                "worker": "host-a:11",
                "started_at": (T0 + timedelta(seconds=1)).isoformat(),
                "finished_at": (T0 + timedelta(seconds=3)).isoformat(),
                "error": f"ValueError: first {SCRIPT}",
            },
            {
                "attempt": 2,
                "worker": "host-b:22",
                "started_at": (T0 + timedelta(seconds=40)).isoformat(),
                "finished_at": (T0 + timedelta(seconds=45)).isoformat(),
                "error": f"ValueError: {SCRIPT}",
            },
        ],
    }
    values.update(fields)
    return make_run(**values)


def test_the_list_shows_state_attempts_duration_progress_and_lateness(
    admin_client: Client,
) -> None:
    schedule = make_schedule(name="hourly", cron="0 * * * *")
    make_run(
        schedule,
        state="running",
        scheduled_for=T0,
        started_at=T0 + timedelta(seconds=2, milliseconds=500),
        attempts=1,
        max_retries=3,
        progress=40,
        progress_message="step 4 of 10",
    )
    make_run(
        None,
        state="succeeded",
        created_at=T0,
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(minutes=2, seconds=5),
        attempts=1,
    )
    page = admin_client.get(RUNS).content.decode()
    rows = re.findall(r"<tr>.*?</tr>", page, flags=re.S)[1:]
    running = next(r for r in rows if "hourly" in r)
    assert (
        '<span class="jobs-badge jobs-badge-active" data-state="running">Running</span>' in running
    )
    assert "1 / 4" in running
    assert '<progress class="jobs-progress" max="100" value="40"' in running
    assert "step 4 of 10" in running
    assert "2.5 s" in running, "started 2.5 s after its slot"
    assert "so far" in running
    adhoc = next(r for r in rows if "ad hoc" in r and "Succeeded" in r)
    assert "2 min 4 s" in adhoc, "duration"


def test_the_list_does_not_query_per_row(admin_client: Client) -> None:
    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(RUNS).status_code == 200
        return len(ctx.captured_queries)

    make_run(make_schedule(name="first"), state="dead")
    few = queries_for_list()
    for n in range(10):
        make_run(make_schedule(name=f"s{n}"), state="succeeded", progress=100)
    assert queries_for_list() == few


def test_filters_by_state_job_schedule_and_date(admin_client: Client) -> None:
    schedule = make_schedule(name="s")
    a = make_run(schedule, job="test.noop", state="succeeded")
    b = make_run(None, job="test.echo", state="dead")
    c = make_run(schedule, job="test.echo", state="queued", created_at=T0)

    def ids(query: str) -> set[str]:
        response = admin_client.get(RUNS + query)
        assert response.status_code == 200
        return {str(r.pk) for r in response.context["cl"].result_list}

    assert ids("?state__exact=dead") == {str(b.pk)}
    assert ids("?job=test.echo") == {str(b.pk), str(c.pk)}
    assert ids(f"?schedule={schedule.pk}") == {str(a.pk), str(c.pk)}
    assert ids("?schedule=none") == {str(b.pk)}
    assert ids("?schedule=not-a-number") == {str(a.pk), str(b.pk), str(c.pk)}
    # The date filter's own "Today" link (aware bounds).
    page = admin_client.get(RUNS).content.decode()
    today = re.search(r'href="(\?created_at__gte=[^"]+)"[^>]*>Today<', page)
    assert today is not None
    assert ids(today.group(1).replace("&amp;", "&")) == {str(a.pk), str(b.pk)}


def test_search_by_run_id_or_key(admin_client: Client) -> None:
    a = make_run(key="report:7:2026-05")
    b = make_run(key="report:8:2026-05")
    make_run(key=None)

    def ids(term: str) -> set[str]:
        response = admin_client.get(RUNS, {"q": term})
        assert response.status_code == 200
        return {str(r.pk) for r in response.context["cl"].result_list}

    assert ids(str(b.pk)) == {str(b.pk)}
    assert ids(f"  {str(a.pk).upper()} ") == {str(a.pk)}
    assert ids("report:7:2026-05") == {str(a.pk)}
    assert ids("report:") == {str(a.pk), str(b.pk)}
    assert ids("%' OR 1=1 --") == set()


def test_runs_cannot_be_added_changed_or_deleted(admin_client: Client) -> None:
    run = make_run(state="succeeded", result={"ok": 1})
    assert admin_client.get(f"{RUNS}add/").status_code == 403
    assert admin_client.post(f"{RUNS}{run.pk}/change/", {"state": "queued"}).status_code == 403
    assert admin_client.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.state == "succeeded"
    page = page_of(admin_client, run)
    assert 'name="_save"' not in page and "deletelink" not in page


def test_the_detail_escapes_payload_error_and_traceback_in_pre(admin_client: Client) -> None:
    run = dead_run()
    page = page_of(admin_client, run)
    assert "<script>" not in page.replace("<script src=", "").replace("<script id=", "")
    assert (
        '<pre class="jobs-pre ">{\n  &quot;note&quot;: &quot;&lt;script&gt;alert(&#x27;x&#x27;)'
        "&lt;/script&gt;&quot;\n}</pre>"
    ) in page
    assert (
        '<pre class="jobs-pre jobs-error">ValueError: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</pre>'
    ) in page
    assert '<pre class="jobs-pre jobs-traceback">Traceback (most recent call last):' in page


def test_the_timeline_lists_every_attempt(admin_client: Client) -> None:
    page = page_of(admin_client, dead_run())
    timeline = page[page.index("jobs-timeline") :]
    rows = re.findall(r"<tr><td>(\d)</td><td>([^<]*)</td>", timeline)
    assert rows == [("1", "host-a:11"), ("2", "host-b:22")]
    assert "ValueError: first &lt;script&gt;" in timeline
    assert 'data-state="dead">Dead</span>' in timeline, "the last failure ended the run"

    flaky = make_run(
        state="succeeded",
        attempts=2,
        worker="host-c:3",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        history=[{"attempt": 1, "worker": "host-a:1", "error": "boom"}],
    )
    timeline = page_of(admin_client, flaky)
    timeline = timeline[timeline.index("jobs-timeline") :]
    assert re.findall(r"<tr><td>(\d)</td><td>([^<]*)</td>", timeline) == [
        ("1", "host-a:1"),
        ("2", "host-c:3"),
    ]
    assert 'data-state="succeeded"' in timeline


def test_the_detail_links_the_schedule_and_the_retries(admin_client: Client) -> None:
    schedule = make_schedule(name="nightly")
    original = dead_run(schedule=schedule)
    retry = make_run(schedule, retry_of=original, state="queued")
    page = page_of(admin_client, original)
    assert f'<a href="/admin/jobs/schedule/{schedule.pk}/change/">nightly</a>' in page
    assert f'Retried as <a href="/admin/jobs/jobrun/{retry.pk}/change/">{retry.pk}</a>' in page
    assert f'Retry of <a href="/admin/jobs/jobrun/{original.pk}/change/">{original.pk}</a>' in (
        page_of(admin_client, retry)
    )


def test_an_active_runs_page_refreshes_until_it_finishes(admin_client: Client) -> None:
    assert "data-jobs-refresh" in page_of(admin_client, make_run(state="running"))
    assert "data-jobs-refresh" not in page_of(admin_client, make_run(state="succeeded"))


@pytest.mark.django_db(transaction=True)
def test_retry_a_dead_run_as_a_new_linked_run(admin_client: Client, broker: RedisBroker) -> None:
    original = dead_run()
    response = change_form_action(
        admin_client, f"{RUNS}{original.pk}/change/", "retry_runs", original.pk
    )
    retry = JobRun.objects.get(retry_of=original)
    assert response["Location"] == f"{RUNS}{retry.pk}/change/"
    assert retry.state == "queued" and queued_message_ids(broker) == [str(retry.id)]
    original.refresh_from_db()
    assert original.state == "dead" and len(original.history) == 2, "history kept"
    assert [
        e.get_change_message() for e in LogEntry.objects.filter(object_id=str(original.pk))
    ] == [f"Retried as run {retry.id}"]
    assert LogEntry.objects.get(object_id=str(retry.pk)).action_flag == ADDITION


def test_retry_refuses_runs_that_are_not_finished_in_failure(admin_client: Client) -> None:
    ok = make_run(state="succeeded")
    running = make_run(state="running")
    cancelled = make_run(state="cancelled")
    response = action(admin_client, RUNS, "retry_runs", ok.pk, running.pk, cancelled.pk)
    text = " ".join(messages_of(admin_client.get(response["Location"])))
    assert "Retried 1 run(s)" in text
    assert "2 run(s) not retried: only dead, cancelled or skipped runs can be retried" in text
    assert list(
        JobRun.objects.filter(retry_of__isnull=False).values_list("retry_of", flat=True)
    ) == [cancelled.pk]


def test_cancel_pending_and_running_runs(admin_client: Client) -> None:
    queued = make_run(state="queued")
    running = make_run(state="running", attempts=1)
    done = make_run(state="succeeded")
    response = action(admin_client, RUNS, "cancel_runs", queued.pk, running.pk, done.pk)
    text = " ".join(messages_of(admin_client.get(response["Location"])))
    assert "Cancelled 1 run(s)." in text
    assert "Asked 1 running run(s) to stop" in text
    assert "1 run(s) had already finished; nothing to cancel." in text
    queued.refresh_from_db()
    running.refresh_from_db()
    done.refresh_from_db()
    assert queued.state == "cancelled" and queued.reason == "cancelled by an operator in the admin"
    assert running.state == "running" and running.cancel_requested
    assert done.state == "succeeded" and not done.cancel_requested
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


def test_buttons_match_the_runs_state(admin_client: Client) -> None:
    def buttons(run: JobRun) -> list[str]:
        return [n for n, _ in admin_client.get(f"{RUNS}{run.pk}/change/").context["jobs_buttons"]]

    assert buttons(make_run(state="dead")) == ["retry_runs"]
    assert buttons(make_run(state="queued")) == ["cancel_runs"]
    assert buttons(make_run(state="succeeded")) == []


def test_view_only_staff_cannot_retry_or_cancel() -> None:
    dead = dead_run()
    queued = make_run(state="queued")
    viewer = operator("viewer", "view_jobrun")
    listing = viewer.get(RUNS)
    assert listing.status_code == 200 and listing.context["action_form"] is None
    assert viewer.get(f"{RUNS}{dead.pk}/change/").context["jobs_buttons"] == []
    action(viewer, RUNS, "retry_runs", dead.pk)
    action(viewer, RUNS, "cancel_runs", queued.pk)
    assert (
        change_form_action(viewer, f"{RUNS}{dead.pk}/change/", "retry_runs", dead.pk).status_code
        == 403
    )
    assert not JobRun.objects.filter(retry_of=dead).exists()
    queued.refresh_from_db()
    assert queued.state == "queued"
    assert not LogEntry.objects.exists()


def test_retry_and_cancel_need_their_own_permissions() -> None:
    dead = dead_run()
    queued = make_run(state="queued")
    retrier = operator("retrier", "view_jobrun", "retry_jobrun")
    assert [n for n, _ in retrier.get(f"{RUNS}{queued.pk}/change/").context["jobs_buttons"]] == []
    response = action(retrier, RUNS, "cancel_runs", queued.pk)
    assert "No action selected." in messages_of(retrier.get(response["Location"]))
    queued.refresh_from_db()
    assert queued.state == "queued"
    action(retrier, RUNS, "retry_runs", dead.pk)
    assert JobRun.objects.filter(retry_of=dead).exists()


@pytest.mark.django_db(transaction=True)
def test_retry_refuses_a_removed_job_and_a_second_live_retry(
    admin_client: Client, broker: RedisBroker
) -> None:
    gone = dead_run(job="billing.removed_job")
    original = dead_run()
    action(admin_client, RUNS, "retry_runs", original.pk)  # the first retry is queued
    response = action(admin_client, RUNS, "retry_runs", gone.pk, original.pk)
    text = " ".join(messages_of(admin_client.get(response["Location"])))
    assert "'billing.removed_job' is no longer registered" in text
    assert "has a retry that is still waiting or running" in text
    assert JobRun.objects.filter(retry_of=original).count() == 1
    assert not JobRun.objects.filter(retry_of=gone).exists()


def test_the_runs_list_does_not_load_tracebacks(admin_client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    dead_run(traceback="x" * 20_000)
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(RUNS)
    assert page.status_code == 200 and "test.always_fails" in page.text
    listing = [q["sql"] for q in queries if q["sql"].startswith('SELECT "jobs_jobrun"."id"')]
    assert listing and all('"traceback"' not in sql and '"history"' not in sql for sql in listing)
    detail = admin_client.get(f"{RUNS}{JobRun.objects.get().pk}/change/")
    assert "x" * 100 in detail.text, "the run's own page still shows it"

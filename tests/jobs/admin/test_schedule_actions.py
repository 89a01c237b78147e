"""Schedule actions: pause (with a reason), resume, run now, backfill, duplicate. Each calls a
service, needs its own permission (hidden and refused without it) and is in the admin log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.test import Client
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker

from jobs.models import JobRun, Schedule
from tests.conftest import queued_message_ids
from tests.jobs.admin.support import (
    SCHEDULES,
    action,
    change_form_action,
    make_run,
    messages_of,
    operator,
)
from tests.jobs.factories import make_schedule

pytestmark = pytest.mark.django_db


def log_messages(obj: Schedule | JobRun) -> list[tuple[int, str]]:
    return [
        (e.action_flag, e.get_change_message())
        for e in LogEntry.objects.filter(object_id=str(obj.pk)).order_by("action_time")
    ]


def change_url(schedule: Schedule) -> str:
    return f"{SCHEDULES}{schedule.pk}/change/"


# -- pause and resume ---------------------------------------------------------------------------


def test_pause_asks_for_a_reason_then_pauses_and_logs_it(admin_client: Client) -> None:
    schedule = make_schedule(name="nightly")
    page = action(admin_client, SCHEDULES, "pause_schedules", schedule.pk)
    assert page.status_code == 200
    assert b'name="reason"' in page.content and b"nightly" in page.content
    schedule.refresh_from_db()
    assert schedule.enabled, "nothing happens before the reason is given"

    done = action(
        admin_client,
        SCHEDULES,
        "pause_schedules",
        schedule.pk,
        apply="Pause",
        reason="  payment provider outage ",
        next=SCHEDULES,
    )
    assert done.status_code == 302 and done["Location"] == SCHEDULES
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.paused_reason, schedule.next_run_at) == (
        False,
        "payment provider outage",
        None,
    )
    assert log_messages(schedule) == [(CHANGE, "Paused: payment provider outage")]


def test_pause_without_a_reason_is_refused_and_changes_nothing(admin_client: Client) -> None:
    schedule = make_schedule()
    page = action(
        admin_client, SCHEDULES, "pause_schedules", schedule.pk, apply="Pause", reason=" "
    )
    assert page.status_code == 200
    assert "Give a reason for pausing; operators will see it." in page.content.decode()
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_run_at is not None
    assert log_messages(schedule) == []


def test_pause_from_the_change_page_returns_to_it(admin_client: Client) -> None:
    schedule = make_schedule()
    page = change_form_action(admin_client, change_url(schedule), "pause_schedules", schedule.pk)
    assert page.status_code == 200
    assert page.context["next"] == change_url(schedule)
    assert page.context["post_url"] == SCHEDULES
    done = action(
        admin_client,
        SCHEDULES,
        "pause_schedules",
        schedule.pk,
        apply="Pause",
        reason="maintenance",
        next=page.context["next"],
    )
    assert done["Location"] == change_url(schedule)
    assert b"Paused: maintenance" in admin_client.get(change_url(schedule)).content


def test_pause_never_redirects_off_site(admin_client: Client) -> None:
    schedule = make_schedule()
    done = action(
        admin_client,
        SCHEDULES,
        "pause_schedules",
        schedule.pk,
        apply="Pause",
        reason="x",
        next="https://evil.example/",
    )
    assert done["Location"] == SCHEDULES


def test_resume_fires_again_from_the_next_slot_and_logs_it(admin_client: Client) -> None:
    schedule = make_schedule(cron="0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(
        enabled=False, paused_reason="outage", next_run_at=None
    )
    response = action(admin_client, SCHEDULES, "resume_schedules", schedule.pk)
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.paused_reason == ""
    now = timezone.now()
    assert now < schedule.next_run_at <= now + timedelta(hours=1)
    assert schedule.next_run_at.minute == 0
    assert log_messages(schedule) == [(CHANGE, "Resumed")]


def test_resuming_a_one_off_in_the_past_says_why_not(admin_client: Client) -> None:
    past = timezone.now() - timedelta(days=1)
    schedule = make_schedule(kind="once", cron="", run_at=past, now=past - timedelta(hours=1))
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False, next_run_at=None)
    response = action(admin_client, SCHEDULES, "resume_schedules", schedule.pk)
    text = " ".join(messages_of(admin_client.get(response["Location"])))
    assert "has no run left" in text and "change its timing before resuming it" in text
    schedule.refresh_from_db()
    assert not schedule.enabled


# -- run now ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run_now_sends_a_run_outside_the_slot_sequence(
    admin_client: Client, broker: RedisBroker
) -> None:
    schedule = make_schedule(job="test.typed", payload={"tenant_id": 3}, max_retries=7)
    next_slot = schedule.next_run_at
    response = change_form_action(admin_client, change_url(schedule), "run_now", schedule.pk)
    run = JobRun.objects.get(schedule=schedule)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/jobs/jobrun/{run.pk}/change/"
    assert run.scheduled_for is None, "run now takes no slot"
    assert run.payload == {"tenant_id": 3, "note": ""}
    assert run.max_retries == 7, "the schedule's override applies"
    assert run.state == JobRun.State.QUEUED, "sent when the request's transaction committed"
    assert queued_message_ids(broker) == [str(run.id)]
    schedule.refresh_from_db()
    assert schedule.next_run_at == next_slot, "the slot sequence is not disturbed"
    assert log_messages(schedule) == [(CHANGE, f"Ran now: run {run.id}")]


def test_run_now_of_a_schedule_whose_payload_no_longer_fits_says_why(
    admin_client: Client,
) -> None:
    schedule = Schedule.objects.create(
        name="stale", job="test.typed", payload={"wrong": 1}, cron="@daily", timezone="UTC"
    )
    response = action(admin_client, SCHEDULES, "run_now", schedule.pk)
    text = " ".join(messages_of(admin_client.get(response["Location"])))
    assert "stale was not run: tenant_id: Field required" in text
    assert not JobRun.objects.filter(schedule=schedule).exists()


# -- backfill -----------------------------------------------------------------------------------

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def backfill_post(client: Client, schedule: Schedule, step: str, start: str, end: str) -> object:
    return action(
        client,
        SCHEDULES,
        "backfill",
        schedule.pk,
        **{
            step: "1",
            "start_0": start.split()[0],
            "start_1": start.split()[1],
            "end_0": end.split()[0],
            "end_1": end.split()[1],
            "next": SCHEDULES,
        },
    )


@pytest.mark.django_db(transaction=True)
def test_backfill_previews_the_slots_then_creates_one_run_per_new_slot(
    admin_client: Client, broker: RedisBroker
) -> None:
    schedule = make_schedule(T0, cron="0 */6 * * *", timezone="UTC", job="test.noop")
    already = make_run(schedule, scheduled_for=datetime(2026, 6, 1, 6, tzinfo=UTC))

    form = action(admin_client, SCHEDULES, "backfill", schedule.pk)
    assert form.status_code == 200 and b'name="start_0"' in form.content

    preview = backfill_post(
        admin_client, schedule, "preview", "2026-06-01 00:00", "2026-06-02 00:00"
    )
    assert preview.status_code == 200
    slots = preview.context["slots"]
    assert [s["utc"] for s in slots] == [
        "2026-06-01 00:00 UTC",
        "2026-06-01 06:00 UTC",
        "2026-06-01 12:00 UTC",
        "2026-06-01 18:00 UTC",
        "2026-06-02 00:00 UTC",
    ]
    assert [s["exists"] for s in slots] == [False, True, False, False, False]
    assert "4 new runs</strong> will be created; 1 already have a run" in preview.content.decode()
    assert JobRun.objects.filter(schedule=schedule).count() == 1, "the preview creates nothing"

    done = backfill_post(admin_client, schedule, "apply", "2026-06-01 00:00", "2026-06-02 00:00")
    assert done.status_code == 302
    runs = JobRun.objects.filter(schedule=schedule).exclude(pk=already.pk)
    assert sorted(r.scheduled_for.hour for r in runs) == [0, 0, 12, 18]
    assert {r.state for r in runs} == {JobRun.State.QUEUED}, "sent on commit"
    assert sorted(queued_message_ids(broker)) == sorted(str(r.id) for r in runs)
    summary = (
        "Backfilled 2026-06-01 00:00:00 UTC – 2026-06-02 00:00:00 UTC: 4 run(s) created, "
        "1 slot(s) skipped because they already have a run."
    )
    assert log_messages(schedule) == [(CHANGE, summary)]
    assert f"{schedule.name}: {summary}" in messages_of(admin_client.get(done["Location"]))

    again = backfill_post(admin_client, schedule, "apply", "2026-06-01 00:00", "2026-06-02 00:00")
    assert "0 run(s) created, 5 slot(s) skipped" in " ".join(
        messages_of(admin_client.get(again["Location"]))
    )
    assert JobRun.objects.filter(schedule=schedule).count() == 5


def test_backfill_is_capped(admin_client: Client) -> None:
    schedule = make_schedule(T0, cron="* * * * *")
    page = backfill_post(admin_client, schedule, "preview", "2026-06-01 00:00", "2026-06-01 10:00")
    assert page.status_code == 200
    assert page.context["form"].errors["start"] == [
        "The range holds more than 500 slots; a backfill creates at most 500 runs. Choose a "
        "shorter range (or backfill in parts)."
    ]
    page = backfill_post(admin_client, schedule, "apply", "2026-06-01 00:00", "2026-06-01 10:00")
    assert page.status_code == 200
    assert not JobRun.objects.filter(schedule=schedule).exists()


def test_backfill_refuses_a_reversed_or_future_range(admin_client: Client) -> None:
    schedule = make_schedule(T0, cron="0 * * * *")
    page = backfill_post(admin_client, schedule, "preview", "2026-06-02 00:00", "2026-06-01 00:00")
    assert page.context["form"].errors["end"] == [
        "The end of the range must not be before its start."
    ]
    tomorrow = timezone.localtime() + timedelta(days=1)
    page = backfill_post(
        admin_client, schedule, "apply", "2026-06-01 00:00", f"{tomorrow:%Y-%m-%d %H:%M}"
    )
    assert "The range must end in the past" in page.context["form"].errors["end"][0]
    assert not JobRun.objects.filter(schedule=schedule).exists()


def test_backfill_takes_one_schedule_at_a_time(admin_client: Client) -> None:
    a, b = make_schedule(name="a"), make_schedule(name="b")
    response = action(admin_client, SCHEDULES, "backfill", a.pk, b.pk)
    assert response.status_code == 302
    assert "Backfill one schedule at a time: select exactly one." in messages_of(
        admin_client.get(response["Location"])
    )


# -- duplicate ----------------------------------------------------------------------------------


def test_duplicate_creates_a_paused_copy_and_logs_it(admin_client: Client) -> None:
    original = make_schedule(
        name="tenant 7", job="test.typed", payload={"tenant_id": 7}, cron="15 3 * * *"
    )
    response = change_form_action(
        admin_client, change_url(original), "duplicate_schedules", original.pk
    )
    copy = Schedule.objects.get(name="tenant 7 (copy)")
    assert response["Location"] == change_url(copy)
    assert (copy.job, copy.payload, copy.cron, copy.timezone) == (
        "test.typed",
        {"tenant_id": 7, "note": ""},
        "15 3 * * *",
        original.timezone,
    )
    assert not copy.enabled and copy.next_run_at is None
    assert copy.paused_reason == "Copy of 'tenant 7': review it, then resume it."
    assert log_messages(copy) == [(ADDITION, f"Duplicated from tenant 7 (id {original.pk})")]

    action(admin_client, SCHEDULES, "duplicate_schedules", original.pk)
    assert Schedule.objects.filter(name="tenant 7 (copy 2)").exists()


# -- permissions ------------------------------------------------------------------------------

ACTIONS = ["pause_schedules", "resume_schedules", "run_now", "backfill", "duplicate_schedules"]


def test_view_only_staff_see_no_actions_and_cannot_run_any(admin_client: Client) -> None:
    schedule = make_schedule()
    viewer = operator("viewer", "view_schedule", "view_jobrun")
    listing = viewer.get(SCHEDULES)
    assert listing.status_code == 200
    assert listing.context["action_form"] is None, "no action dropdown"
    page = viewer.get(change_url(schedule))
    assert page.status_code == 200
    assert page.context["jobs_buttons"] == []
    html = page.content.decode()
    assert "Run now" not in html and "Pause…" not in html

    for name in ACTIONS:
        response = action(viewer, SCHEDULES, name, schedule.pk, apply="1", reason="x")
        assert response.status_code == 200, "no action is dispatched"
        assert (
            change_form_action(viewer, change_url(schedule), name, schedule.pk).status_code == 403
        )
    schedule.refresh_from_db()
    assert schedule.enabled
    assert not JobRun.objects.filter(schedule=schedule).exists()
    assert Schedule.objects.filter(name__startswith=schedule.name).count() == 1
    assert not LogEntry.objects.filter(object_id=str(schedule.pk)).exists()


def test_each_action_needs_its_own_permission() -> None:
    schedule = make_schedule()
    runner = operator("runner", "view_schedule", "run_schedule", "view_jobrun")
    buttons = runner.get(change_url(schedule)).context["jobs_buttons"]
    assert [name for name, _ in buttons] == ["run_now", "backfill"]
    choices = [c for c, _ in runner.get(SCHEDULES).context["action_form"].fields["action"].choices]
    assert choices == ["", "run_now", "backfill"]

    refused = action(runner, SCHEDULES, "pause_schedules", schedule.pk, apply="1", reason="x")
    assert "No action selected." in messages_of(runner.get(refused["Location"]))
    schedule.refresh_from_db()
    assert schedule.enabled, "pause needs jobs.pause_schedule"

    assert (
        change_form_action(runner, change_url(schedule), "run_now", schedule.pk).status_code == 302
    )
    assert JobRun.objects.filter(schedule=schedule).count() == 1

    pauser = operator("pauser", "view_schedule", "pause_schedule")
    assert [n for n, _ in pauser.get(change_url(schedule)).context["jobs_buttons"]] == [
        "pause_schedules"
    ]
    action(pauser, SCHEDULES, "run_now", schedule.pk)
    assert JobRun.objects.filter(schedule=schedule).count() == 1, "run needs jobs.run_schedule"


def test_a_superuser_sees_every_button(admin_client: Client) -> None:
    schedule = make_schedule()
    html = admin_client.get(change_url(schedule)).content.decode()
    for label in ("Run now", "Pause…", "Backfill…", "Duplicate", "All runs"):
        assert f">{label}<" in html


def test_resuming_a_schedule_whose_job_was_removed_says_why_not(admin_client: Client) -> None:
    schedule = make_schedule(cron="0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(
        enabled=False, paused_reason="outage", job="billing.removed_job"
    )
    response = action(admin_client, SCHEDULES, "resume_schedules", schedule.pk)
    text = " ".join(messages_of(admin_client.get(response["Location"])))
    assert "'billing.removed_job', which is no longer registered" in text
    schedule.refresh_from_db()
    assert not schedule.enabled


def test_backfill_from_year_one_is_a_field_error_not_a_500(admin_client: Client) -> None:
    schedule = make_schedule(T0, cron="0 * * * *")
    page = backfill_post(admin_client, schedule, "preview", "0001-01-01 00:00", "2026-06-01 00:00")
    assert page.status_code == 200
    assert page.context["form"].errors["start"] == ["Start from 1970 or later."]

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count
from dramatiq.brokers.redis import RedisBroker

from jobs.models import JobRun, Schedule
from jobs.scheduling.tick import tick
from tests.conftest import queued_message_ids
from tests.jobs.factories import make_schedule

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_other_schedules() -> None:
    # The migrations seed a retention schedule; these tests count runs of their own.
    Schedule.objects.all().delete()


def test_a_due_slot_becomes_one_queued_run_and_one_message(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="*/5 * * * *", payload={})
    assert schedule.next_run_at == T0 + timedelta(minutes=5)

    assert tick(T0 + timedelta(minutes=4)).fired == 0
    result = tick(T0 + timedelta(minutes=5, seconds=1))

    assert (result.schedules, result.fired, result.sent) == (1, 1, 1)
    run = JobRun.objects.get()
    assert run.schedule == schedule
    assert run.scheduled_for == T0 + timedelta(minutes=5)
    assert run.state == JobRun.State.QUEUED and run.enqueued_at is not None
    assert queued_message_ids(broker) == [str(run.id)]
    schedule.refresh_from_db()
    assert schedule.next_run_at == T0 + timedelta(minutes=10)
    assert schedule.last_fired_at == T0 + timedelta(minutes=5, seconds=1)


def test_a_slot_that_already_has_a_run_does_not_cost_the_rest_of_its_batch(
    broker: RedisBroker,
) -> None:
    """A batch's runs go in by COPY, which has no ON CONFLICT: when one slot already has a run
    (a backfill got there first), the others must still be recorded and sent."""
    backfilled, other = make_schedule(T0), make_schedule(T0)
    slot = T0 + timedelta(minutes=1)
    existing = JobRun.objects.create(
        schedule=backfilled, scheduled_for=slot, job="test.noop", state=JobRun.State.SUCCEEDED
    )

    result = tick(slot + timedelta(seconds=30))

    assert (result.schedules, result.sent) == (2, 1)
    assert list(JobRun.objects.filter(schedule=backfilled)) == [existing]
    run = JobRun.objects.get(schedule=other)
    assert run.scheduled_for == slot and run.state == JobRun.State.QUEUED
    assert queued_message_ids(broker) == [str(run.id)]
    assert set(Schedule.objects.values_list("next_run_at", flat=True)) == {
        T0 + timedelta(minutes=2)
    }


def test_payloads_and_reasons_with_tabs_newlines_and_backslashes_are_stored_as_given(
    broker: RedisBroker,
) -> None:
    """Runs are written in COPY's text format, where a tab, a newline or a backslash in a value
    would split or change it unless escaped."""
    tricky = {"text": "tab\there\nnew line \\ back\\slash \\N", "ünï": ["\t", "\r\n"]}
    make_schedule(T0, job="test.echo", payload=tricky)
    make_schedule(T0, job="test.echo", payload={"value": "\\N"})
    gone = make_schedule(T0)
    Schedule.objects.filter(id=gone.id).update(job="gone\tjob\\x")  # a job no code defines

    tick(T0 + timedelta(minutes=1))

    payloads = [run.payload for run in JobRun.objects.filter(job="test.echo").order_by("id")]
    assert sorted(payloads, key=str) == sorted([tricky, {"value": "\\N"}], key=str)
    skipped = JobRun.objects.get(schedule=gone)
    assert skipped.state == JobRun.State.SKIPPED and skipped.job == "gone\tjob\\x"
    assert repr("gone\tjob\\x") in skipped.reason  # the reason quotes the name with repr()


def test_ticking_again_for_the_same_instant_fires_nothing(broker: RedisBroker) -> None:
    make_schedule(T0, cron="* * * * *")
    now = T0 + timedelta(minutes=1)
    assert tick(now).fired == 1
    assert tick(now).fired == 0
    assert JobRun.objects.count() == 1


def test_the_slot_constraint_refuses_a_second_run_for_a_slot(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="* * * * *")
    tick(T0 + timedelta(minutes=1))
    # An operator (or a bug) puts next_run_at back to a slot that already ran.
    Schedule.objects.filter(id=schedule.id).update(next_run_at=T0 + timedelta(minutes=1))
    tick(T0 + timedelta(minutes=1, seconds=30))
    assert (
        JobRun.objects.filter(schedule=schedule, scheduled_for=T0 + timedelta(minutes=1)).count()
        == 1
    )
    assert len(queued_message_ids(broker)) == 1


def test_misfire_skip_records_missed_slots_and_runs_none(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="0 * * * *", misfire_policy="skip", misfire_grace_seconds=60)
    tick(T0 + timedelta(hours=5, minutes=30))  # the scheduler was down for 5 hours
    runs = JobRun.objects.filter(schedule=schedule).order_by("scheduled_for")
    assert [r.state for r in runs] == ["skipped"] * 5
    assert all("misfire" in r.reason or "missed" in r.reason for r in runs)
    schedule.refresh_from_db()
    assert schedule.next_run_at == T0 + timedelta(hours=6)
    assert queued_message_ids(broker) == []


def test_misfire_latest_runs_only_the_most_recent_missed_slot(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="0 * * * *", misfire_policy="latest")
    tick(T0 + timedelta(hours=5, minutes=30))
    states = dict(JobRun.objects.filter(schedule=schedule).values_list("scheduled_for", "state"))
    assert states.pop(T0 + timedelta(hours=5)) == "queued"
    assert sorted(states.values()) == ["skipped"] * 4


def test_misfire_all_catches_up_every_slot_within_the_grace_window(broker: RedisBroker) -> None:
    schedule = make_schedule(
        T0, cron="0 2 * * *", misfire_policy="all", misfire_grace_seconds=3 * 86400
    )
    tick(T0 + timedelta(days=5))  # down for five days: the last three are caught up
    runs = JobRun.objects.filter(schedule=schedule).order_by("scheduled_for")
    assert [(r.scheduled_for.day, r.state) for r in runs] == [
        (2, "skipped"),
        (3, "skipped"),
        (4, "queued"),
        (5, "queued"),
        (6, "queued"),
    ][: len(runs)]
    assert runs.filter(state="queued").count() == 3
    assert len(queued_message_ids(broker)) == 3


def test_overlap_skip_records_a_skipped_run_while_one_is_active(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="* * * * *", overlap_policy="skip")
    tick(T0 + timedelta(minutes=1))
    tick(T0 + timedelta(minutes=2))  # the first run is still queued
    second = JobRun.objects.get(schedule=schedule, scheduled_for=T0 + timedelta(minutes=2))
    assert second.state == "skipped" and "overlap" in second.reason
    JobRun.objects.filter(schedule=schedule, state="queued").update(state="succeeded")
    tick(T0 + timedelta(minutes=3))
    assert (
        JobRun.objects.get(schedule=schedule, scheduled_for=T0 + timedelta(minutes=3)).state
        == "queued"
    )


def test_overlap_queue_one_queues_behind_a_running_run_but_not_two(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="* * * * *", overlap_policy="queue_one")
    tick(T0 + timedelta(minutes=1))
    JobRun.objects.filter(schedule=schedule).update(state="running")
    tick(T0 + timedelta(minutes=2))  # one may wait behind the running one
    tick(T0 + timedelta(minutes=3))  # but not a second
    states = list(
        JobRun.objects.filter(schedule=schedule)
        .order_by("scheduled_for")
        .values_list("state", flat=True)
    )
    assert states == ["running", "queued", "skipped"]


def test_a_once_schedule_fires_once_and_disables_itself(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, kind="once", cron="", run_at=T0 + timedelta(minutes=10))
    tick(T0 + timedelta(minutes=10))
    tick(T0 + timedelta(minutes=20))
    schedule.refresh_from_db()
    assert JobRun.objects.filter(schedule=schedule).count() == 1
    assert schedule.enabled is False and schedule.next_run_at is None


def test_ends_at_stops_the_schedule(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="0 * * * *", ends_at=T0 + timedelta(hours=2))
    for hour in range(1, 5):
        tick(T0 + timedelta(hours=hour))
    assert JobRun.objects.filter(schedule=schedule).count() == 2
    schedule.refresh_from_db()
    assert schedule.enabled is False


def test_an_interval_is_anchored_and_does_not_drift(broker: RedisBroker) -> None:
    schedule = make_schedule(
        T0, kind="interval", cron="", interval_seconds=600, starts_at=T0 + timedelta(seconds=7)
    )
    for minutes in (10, 20, 29, 40):  # ticks arrive irregularly, one misses a slot
        tick(T0 + timedelta(minutes=minutes, seconds=30))
    runs = JobRun.objects.filter(schedule=schedule).order_by("scheduled_for")
    # Slots are starts_at + k * 10 min whenever the ticks come; ones later than the
    # 60 s grace are skipped (misfire policy skip), the others fire.
    assert [(r.scheduled_for - T0, r.state) for r in runs] == [
        (timedelta(minutes=0, seconds=7), "skipped"),
        (timedelta(minutes=10, seconds=7), "queued"),
        (timedelta(minutes=20, seconds=7), "queued"),
        (timedelta(minutes=30, seconds=7), "skipped"),
        (timedelta(minutes=40, seconds=7), "queued"),
    ]


def test_an_edit_takes_effect_at_the_next_tick(broker: RedisBroker) -> None:
    from jobs.services import schedule_save

    schedule = make_schedule(T0, cron="0 3 * * *")
    assert schedule.next_run_at == datetime(2026, 6, 2, 3, 0, tzinfo=UTC)
    schedule.cron = "*/15 * * * *"
    schedule_save(schedule=schedule, now=T0 + timedelta(minutes=1))
    assert schedule.next_run_at == T0 + timedelta(minutes=15)
    assert tick(T0 + timedelta(minutes=15)).fired == 1


def test_a_slot_in_the_schedules_time_zone(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="0 9 * * *", timezone="America/New_York")
    assert schedule.next_run_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)  # 09:00 EDT


def test_an_unknown_job_is_recorded_as_skipped_not_sent(broker: RedisBroker) -> None:
    schedule = make_schedule(T0, cron="* * * * *")
    Schedule.objects.filter(id=schedule.id).update(job="removed.in.last.deploy")
    tick(T0 + timedelta(minutes=1))
    run = JobRun.objects.get(schedule=schedule)
    assert run.state == "skipped" and "removed.in.last.deploy" in run.reason
    assert queued_message_ids(broker) == []


def test_jitter_delays_the_message_deterministically(broker: RedisBroker) -> None:
    from jobs.timing import slot_jitter

    schedule = make_schedule(T0, cron="* * * * *", jitter_seconds=30)
    slot = T0 + timedelta(minutes=1)
    tick(slot)
    run = JobRun.objects.get(schedule=schedule)
    assert run.scheduled_for == slot
    assert run.run_after == slot + slot_jitter(schedule.id, slot, 30)
    assert 0 <= (run.run_after - slot).total_seconds() < 30


def test_a_schedule_claimed_by_another_scheduler_is_left_alone(broker: RedisBroker) -> None:
    import threading

    from django.db import connection, transaction

    schedule = make_schedule(T0, cron="* * * * *")
    locked, release = threading.Event(), threading.Event()

    def other_scheduler() -> None:
        with transaction.atomic():
            Schedule.objects.select_for_update().get(id=schedule.id)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_scheduler)
    thread.start()
    assert locked.wait(10)
    try:
        assert tick(T0 + timedelta(minutes=1)).schedules == 0  # skipped, not waited for
    finally:
        release.set()
        thread.join()
    assert tick(T0 + timedelta(minutes=1)).fired == 1


def test_batches_cover_every_due_schedule(broker: RedisBroker) -> None:
    for i in range(25):
        make_schedule(T0, name=f"bulk-{i}", cron="* * * * *")
    result = tick(T0 + timedelta(minutes=1), batch_size=10)
    assert (result.schedules, result.fired, result.sent) == (25, 25, 25)
    per_slot = JobRun.objects.values("schedule", "scheduled_for").annotate(n=Count("id"))
    assert {row["n"] for row in per_slot} == {1}


def test_the_django_crontab_entry_point_ticks_and_leaves_a_heartbeat(broker: RedisBroker) -> None:
    from django.conf import settings

    from jobs.models import Heartbeat
    from jobs.scheduling.tick import cron_tick

    assert settings.CRONJOBS == [("* * * * *", "jobs.scheduling.tick.cron_tick")]
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.create(
        name="cron-driven",
        job="test.noop",
        cron="* * * * *",
        next_run_at=slot,
        misfire_grace_seconds=600,
    )
    cron_tick()
    assert JobRun.objects.get().state == "queued"
    beat = Heartbeat.objects.get(kind="scheduler")
    assert beat.name.endswith(":cron") and beat.last_error == ""

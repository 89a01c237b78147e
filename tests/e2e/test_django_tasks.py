"""Django's own tasks API (`@task`, `.enqueue()`, `TaskResult`) on real Dramatiq workers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.tasks import TaskResult, TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils import timezone

from tests.processes import wait_until
from tests.testapp.tasks import SIGNALS_KEY, add, explode, second_time_lucky

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(120)]


def until_finished(result: TaskResult, timeout: float = 30) -> TaskResult:
    def check() -> bool:
        result.refresh()
        return result.is_finished

    wait_until(check, timeout, what=f"task result {result.id}")
    return result


def test_a_task_runs_on_a_worker_and_its_result_comes_back(worker: Path, broker) -> None:  # type: ignore[no-untyped-def]
    result = add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    until_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    fetched = default_task_backend.get_result(result.id)
    assert fetched.return_value == 5 and fetched.args == [2, 3]
    assert add.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_a_failing_task_reports_its_errors(worker: Path, broker) -> None:  # type: ignore[no-untyped-def]
    result = until_finished(explode.using(queue_name="default").enqueue("kaboom"), timeout=90)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 4  # MAX_RETRIES 3
    assert result.errors[-1].exception_class is ValueError
    assert "ValueError: kaboom" in result.errors[-1].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_a_deferred_task_waits_for_run_after(worker: Path, broker) -> None:  # type: ignore[no-untyped-def]
    run_after = timezone.now() + timedelta(seconds=3)
    result = add.using(run_after=run_after).enqueue(1, 1)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    until_finished(result)
    assert result.return_value == 2
    assert result.started_at >= run_after


def test_a_task_with_context_sees_its_attempt_number(worker: Path, broker) -> None:  # type: ignore[no-untyped-def]
    result = until_finished(second_time_lucky.enqueue(), timeout=90)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 2, "result_id": result.id}
    assert result.attempts == 2
    assert result.errors[0].exception_class is RuntimeError


def test_django_task_signals_fire(worker: Path, broker) -> None:  # type: ignore[no-untyped-def]
    result = until_finished(add.enqueue(20, 22))
    import os

    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    events = [e.decode() for e in client.lrange(SIGNALS_KEY, 0, -1)]
    client.delete(SIGNALS_KEY)
    assert f"enqueued:{result.id}:READY" in events
    assert f"started:{result.id}:RUNNING" in events
    assert f"finished:{result.id}:SUCCESSFUL" in events


def test_unknown_result_ids_raise_does_not_exist(broker) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("not-a-uuid")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("5b0c5e53-8c8e-4a77-9d4c-2f1a0f6bb0a1")


def test_tasks_are_registered_as_jobs_a_schedule_can_use(broker) -> None:  # type: ignore[no-untyped-def]
    import jobs
    from jobs.models import Schedule
    from jobs.services import schedule_save

    spec = jobs.get_job("tests.testapp.tasks.add")
    assert spec.description == "Adds two numbers."
    schedule = schedule_save(
        schedule=Schedule(
            name="add nightly",
            job="tests.testapp.tasks.add",
            cron="0 3 * * *",
            payload={"args": [1, 2]},
        )
    )
    assert schedule.next_run_at is not None
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as info:
        schedule_save(
            schedule=Schedule(
                name="bad", job="tests.testapp.tasks.add", cron="0 3 * * *", payload={"argz": 1}
            )
        )
    assert "argz" in str(info.value.message_dict["payload"])


@pytest.mark.parametrize(
    ("options", "queues", "expected"),
    [({}, [], "jobs.E012"), ({"MAX_RETRIES": -1}, ["default"], "jobs.E011")],
)
def test_backend_misconfiguration_is_a_system_check(
    options: dict, queues: list, expected: str
) -> None:  # type: ignore[type-arg]
    from django.core.checks import run_checks
    from django.test import override_settings

    config = {
        "default": {
            "BACKEND": "jobs.backends.DramatiqBackend",
            "QUEUES": queues,
            "OPTIONS": options,
        }
    }
    with override_settings(TASKS=config):
        ids = {m.id for m in run_checks()}
    assert expected in ids

"""django.tasks tasks for the test suite, written against Django's public API only."""

from __future__ import annotations

import os
from typing import Any

import redis
from django.tasks import TaskContext, task
from django.tasks.signals import task_enqueued, task_finished, task_started

SIGNALS_KEY = "test:task-signals"


@task
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


@task
def explode(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def second_time_lucky(context: TaskContext) -> dict[str, Any]:
    """Fails on its first attempt; returns what the context says on the second."""
    if context.attempt < 2:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return {"attempt": context.attempt, "result_id": context.task_result.id}


def _record(name: str) -> Any:
    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        # Worker-side signals are observed by the tests through Redis (whatever the broker).
        if os.environ.get("REDIS_URL"):
            redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(
                SIGNALS_KEY, f"{name}:{task_result.id}:{task_result.status}"
            )

    return receiver


_receivers = [_record("enqueued"), _record("started"), _record("finished")]
task_enqueued.connect(_receivers[0])
task_started.connect(_receivers[1])
task_finished.connect(_receivers[2])

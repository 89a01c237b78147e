"""A `django.tasks` backend on Dramatiq whose results are `jobs.JobRun` rows.

    TASKS = {"default": {"BACKEND": "jobs.backends.DramatiqBackend", "QUEUES": ["default"]}}

Every task defined with this backend is also a registered job (named by its import path),
so it gets the run records, retries, leases, admin pages and schedules of every other job.
"""

from __future__ import annotations

import traceback as tb
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dramatiq
import pydantic
from django.core.checks import Error
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from jobs.registry import JobSpec, get_job, job, registered_jobs

STATUS = {
    "pending": TaskResultStatus.READY,
    "queued": TaskResultStatus.READY,
    "retrying": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "dead": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
    "skipped": TaskResultStatus.FAILED,
}


class TaskPayload(pydantic.BaseModel):
    """The payload of a run of a django.tasks task: its call arguments."""

    model_config = pydantic.ConfigDict(extra="forbid")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class DramatiqTask(Task):  # type: ignore[type-arg]
    """A django.tasks Task that registers itself as a job when it is defined."""

    def __post_init__(self) -> None:
        Task.__post_init__(self)
        backend = self.get_backend()
        if isinstance(backend, DramatiqBackend):
            backend.register(self)


class DramatiqBackend(BaseTaskBackend):
    task_class = DramatiqTask
    supports_defer = True
    supports_get_result = True
    supports_priority = True
    supports_async_task = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.max_retries = int(self.options.get("MAX_RETRIES", 3))
        self.time_limit = int(self.options.get("TIME_LIMIT", 600))
        self.min_backoff_ms = int(self.options.get("MIN_BACKOFF_MS", 15_000))
        self.max_backoff_ms = int(self.options.get("MAX_BACKOFF_MS", 3_600_000))
        broker = dramatiq.get_broker()
        # Workers consume the queues declared on the broker: declare every allowed one.
        for queue in self.queues:
            broker.declare_queue(queue)

    def register(self, task: Task[Any, Any]) -> JobSpec:
        """The job that runs `task` (registered once, under the task's import path)."""
        name = task.module_path
        existing = registered_jobs().get(name)
        if existing is not None:
            return existing

        def run_task(args: list[Any] | None = None, kwargs: dict[str, Any] | None = None) -> Any:
            return _run(task, args or [], kwargs or {})

        run_task.__doc__ = (task.func.__doc__ or f"django.tasks task {name}").strip().split("\n")[0]
        run_task.__qualname__ = f"{task.func.__qualname__}.<django task>"
        return job(
            name=name,
            schema=TaskPayload,
            queue=task.queue_name,
            max_retries=self.max_retries,
            time_limit=self.time_limit,
            min_backoff_ms=self.min_backoff_ms,
            max_backoff_ms=self.max_backoff_ms,
            description=run_task.__doc__,
        )(run_task)

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        from jobs.services import enqueue

        self.validate_task(task)
        spec = self.register(task)
        delay = None
        if task.run_after is not None:
            delay = max(task.run_after - timezone.now(), timedelta(0))
        run = enqueue(
            spec,
            {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))},
            delay=delay,
            queue=task.queue_name,
            priority=task.priority,
        )
        result = result_from_run(run, task=task, backend=self.alias)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        from jobs.models import JobRun

        try:
            run = JobRun.objects.get(id=uuid.UUID(str(result_id)))
        except (ValueError, JobRun.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        try:
            task = import_string(run.job)
        except ImportError:
            raise TaskResultDoesNotExist(
                f"{result_id} is a run of {run.job!r}, not of a task"
            ) from None
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"{result_id} is a run of {run.job!r}, not of a task")
        return result_from_run(run, task=task, backend=self.alias)

    def check(self, **kwargs: Any) -> list[Any]:
        from django.conf import settings

        errors = []
        middleware = (
            settings.DRAMATIQ_BROKER.get("MIDDLEWARE", [])
            if hasattr(settings, "DRAMATIQ_BROKER")
            else []
        )
        if "jobs.worker.middleware.RunRecorder" not in middleware:
            errors.append(
                Error(
                    f"TASKS[{self.alias!r}] uses jobs.backends.DramatiqBackend but DRAMATIQ_BROKER has no "
                    "jobs.worker.middleware.RunRecorder, so no task would ever run to completion.",
                    hint="Configure django-dramatiq as in docs/tasks.md.",
                    id="jobs.E010",
                )
            )
        for name in ("MAX_RETRIES", "TIME_LIMIT", "MIN_BACKOFF_MS", "MAX_BACKOFF_MS"):
            value = self.options.get(name)
            if value is not None and (not isinstance(value, int) or value < 0):
                errors.append(
                    Error(
                        f"TASKS[{self.alias!r}]['OPTIONS'][{name!r}] must be a non-negative integer, not {value!r}.",
                        id="jobs.E011",
                    )
                )
        if not self.queues:
            errors.append(
                Error(
                    f"TASKS[{self.alias!r}]['QUEUES'] is empty: workers would not know which queues to consume.",
                    hint='List the queue names, e.g. "QUEUES": ["default"].',
                    id="jobs.E012",
                )
            )
        return errors


def _run(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Execute one attempt of a task inside a worker, with Django's task signals."""
    from jobs.models import JobRun
    from jobs.worker.claim import current_run

    claim = current_run()
    run = JobRun.objects.get(id=claim.run_id)
    result = result_from_run(run, task=task, backend=task.backend)
    task_started.send(DramatiqBackend, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = normalize_json(value)
    except BaseException as exc:
        if claim.attempt > run.max_retries:  # the last attempt: the task has failed for good
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            object.__setattr__(result, "finished_at", timezone.now())
            result.errors.append(
                TaskError(
                    exception_class_path=_class_path(exc),
                    traceback="".join(tb.format_exception(exc)),
                )
            )
            task_finished.send(DramatiqBackend, task_result=result)
        raise
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "_return_value", value)
    task_finished.send(DramatiqBackend, task_result=result)
    return value


def result_from_run(run: Any, *, task: Task[Any, Any], backend: str) -> TaskResult[Any, Any]:
    """A TaskResult that describes a JobRun: status, timestamps, attempts, errors, return value."""
    workers = [entry.get("worker", "") for entry in run.history]
    if run.attempts > len(workers):
        workers.append(run.worker)
    errors = [
        TaskError(
            exception_class_path=entry.get("exception", "builtins.Exception"),
            traceback=entry.get("error", ""),
        )
        for entry in run.history
    ]
    if errors and run.traceback:
        errors[-1] = TaskError(
            exception_class_path=errors[-1].exception_class_path, traceback=run.traceback
        )
    payload = run.payload or {}
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(run.id),
        status=STATUS[run.state],
        enqueued_at=run.enqueued_at or run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        last_attempted_at=run.started_at,
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        backend=backend,
        errors=errors,
        worker_ids=workers,
    )
    if run.state == "succeeded":
        object.__setattr__(result, "_return_value", run.result)
    return result


def _class_path(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


__all__ = ["DramatiqBackend", "DramatiqTask", "get_job", "result_from_run"]

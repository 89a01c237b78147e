"""The job registry: `@job` turns a function into a Dramatiq actor whose runs are recorded."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import dramatiq
import pydantic
from django.db import transaction

from jobs.conf import jobs_settings
from jobs.errors import Cancelled, LeaseLost, NotClaimed, PayloadError, UnknownJob

_REGISTRY: dict[str, JobSpec] = {}


@dataclass(frozen=True)
class JobSpec:
    """What the system knows about one registered job."""

    name: str
    fn: Callable[..., Any]
    schema: type[pydantic.BaseModel] | None
    queue: str
    max_retries: int
    time_limit_seconds: int
    atomic: bool
    description: str
    actor: dramatiq.Actor[Any, Any] = field(repr=False)

    def validate(self, payload: Any) -> dict[str, Any]:
        """Return the payload normalised by the schema, or raise PayloadError naming the fields."""
        return validate_payload(self, payload)

    def json_schema(self) -> dict[str, Any] | None:
        return self.schema.model_json_schema() if self.schema else None


def validate_payload(spec: JobSpec, raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PayloadError([("", f"must be a JSON object, not {type(raw).__name__}")])
    payload: dict[str, Any] = dict(raw)
    if spec.schema is not None:
        try:
            payload = dict(spec.schema.model_validate(payload).model_dump(mode="json"))
        except pydantic.ValidationError as exc:
            raise PayloadError(
                [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
            ) from None
    try:
        encoded = json.dumps(payload)
        size = len(encoded)
    except (TypeError, ValueError) as exc:
        raise PayloadError([("", f"is not JSON-serialisable: {exc}")]) from None
    if "\\u0000" in encoded:
        # PostgreSQL's jsonb cannot store NUL characters.
        raise PayloadError([("", "contains a NUL character (\\u0000), which cannot be stored")])
    limit = jobs_settings().MAX_PAYLOAD_BYTES
    if size > limit:
        raise PayloadError(
            [("", f"is {size} bytes; the limit is {limit} bytes (JOBS_MAX_PAYLOAD_BYTES)")]
        )
    return payload


def job(
    *,
    name: str,
    schema: type[pydantic.BaseModel] | None = None,
    queue: str = "default",
    max_retries: int | None = None,
    time_limit: int | None = None,
    atomic: bool = False,
    description: str = "",
    min_backoff_ms: int = 15_000,
    max_backoff_ms: int = 3_600_000,
) -> Callable[[Callable[..., Any]], JobSpec]:
    """Register `fn` as a job: a Dramatiq actor called with the run's payload as keyword arguments.

    `time_limit` is in seconds. With `atomic=True` the job's database writes and the run's
    success are committed in one transaction, so a redelivered message either sees the
    finished run or repeats the whole job — never half of it.
    The return value must be JSON-serialisable; it is stored as the run's result.
    """
    settings = jobs_settings()
    retries = settings.DEFAULT_MAX_RETRIES if max_retries is None else max_retries
    limit_s = settings.DEFAULT_TIME_LIMIT_SECONDS if time_limit is None else time_limit

    def decorate(fn: Callable[..., Any]) -> JobSpec:
        if name in _REGISTRY and _REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(
                f"A job named {name!r} is already registered by {_REGISTRY[name].fn!r}."
            )

        def execute(**payload: Any) -> None:
            _execute(spec, payload)

        execute.__name__ = fn.__name__
        execute.__qualname__ = fn.__qualname__
        actor: dramatiq.Actor[Any, Any] = dramatiq.actor(  # type: ignore[call-overload]
            execute,
            actor_name=name,
            queue_name=queue,
            max_retries=retries,
            time_limit=limit_s * 1000,
            min_backoff=min_backoff_ms,
            max_backoff=max_backoff_ms,
            # Never retried by Dramatiq: cancellation is final and a lost lease means
            # another worker owns the run now.
            throws=(Cancelled, LeaseLost),
        )
        spec = JobSpec(
            name=name,
            fn=fn,
            schema=schema,
            queue=queue,
            max_retries=retries,
            time_limit_seconds=limit_s,
            atomic=atomic,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            actor=actor,
        )
        _REGISTRY[name] = spec
        return spec

    return decorate


def _execute(spec: JobSpec, payload: dict[str, Any]) -> None:
    from jobs.worker.claim import current_claim

    claim = current_claim()
    if claim is None:
        # The run could not be claimed (database unreachable): fail so Dramatiq retries later.
        raise NotClaimed("the run could not be claimed in the database; retrying later")
    if spec.atomic:
        with transaction.atomic():
            result = spec.fn(**payload)
            claim.record_success(result)
    else:
        result = spec.fn(**payload)
        claim.record_success(result)


def get_job(name: str) -> JobSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJob(name) from None


def registered_jobs() -> Mapping[str, JobSpec]:
    """Every registered job by name (a read-only view; cheap enough for the worker's hot path)."""
    return _VIEW


_VIEW = MappingProxyType(_REGISTRY)

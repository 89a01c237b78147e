"""Jobs for the test suite. They run in real worker processes, so they report through the
database (their run rows), never through test-process memory."""

from __future__ import annotations

import time

import pydantic

import jobs


@jobs.job(name="test.noop", max_retries=0)
def noop() -> None:
    """Does nothing."""


@jobs.job(name="test.echo", max_retries=0)
def echo(value: object = None) -> object:
    """Returns its payload's value."""
    return {"echo": value}


class TenantPayload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    tenant_id: int
    note: str = ""


@jobs.job(name="test.typed", schema=TenantPayload, max_retries=0, description="Takes a tenant id.")
def typed(tenant_id: int, note: str = "") -> dict[str, object]:
    return {"tenant_id": tenant_id, "note": note}


@jobs.job(name="test.flaky", max_retries=3, min_backoff_ms=200, max_backoff_ms=1000)
def flaky(fail_times: int = 1) -> dict[str, int]:
    """Fails its first `fail_times` attempts, then succeeds."""
    attempt = jobs.current_run().attempt
    if attempt <= fail_times:
        raise RuntimeError(f"planned failure on attempt {attempt}")
    return {"succeeded_on_attempt": attempt}


@jobs.job(name="test.always_fails", max_retries=2, min_backoff_ms=200, max_backoff_ms=500)
def always_fails() -> None:
    raise ValueError("this job always fails <script>alert(1)</script>")


@jobs.job(name="test.sleepy", max_retries=0, time_limit=60)
def sleepy(seconds: float = 1.0, steps: int = 10) -> dict[str, float]:
    """Sleeps in steps, reporting progress (and honouring cancellation) at each."""
    for step in range(steps):
        jobs.current_run().progress(int(step * 100 / steps), f"step {step + 1} of {steps}")
        time.sleep(seconds / steps)
    return {"slept": seconds}


@jobs.job(name="test.too_slow", max_retries=0, time_limit=1)
def too_slow(seconds: float = 30.0) -> None:
    # Short sleeps: Dramatiq's time limit interrupts Python code, not one long C call.
    for _ in range(int(seconds * 10)):
        time.sleep(0.1)


@jobs.job(name="test.gil_hog", max_retries=0, time_limit=120)
def gil_hog(seconds: float = 5.0) -> dict[str, float]:
    """Holds the GIL for about `seconds` in one C call, so no other thread of the process runs
    (no Dramatiq heartbeat, no lease renewal) for that long."""
    sample = 2_000_000
    started = time.perf_counter()
    sum(range(sample))
    per_item = (time.perf_counter() - started) / sample
    started = time.perf_counter()
    sum(range(int(seconds / per_item)))  # one call: the GIL is not released until it returns
    return {"held_s": round(time.perf_counter() - started, 2)}


@jobs.job(name="test.db_writer", max_retries=2, min_backoff_ms=200, max_backoff_ms=500, atomic=True)
def db_writer(rows: int = 5, pid_file: str = "", pause: float = 0.5) -> dict[str, int]:
    """Writes `rows` markers in the job's transaction, pausing between them; announces its
    database backend pid in `pid_file` so a test can terminate that connection."""
    from pathlib import Path

    from django.db import connection

    from tests.testapp.models import Marker

    claim = jobs.current_run()
    if pid_file:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            Path(pid_file).write_text(f"{claim.attempt} {cursor.fetchone()[0]}")
    for n in range(rows):
        Marker.objects.create(run_id=claim.run_id, attempt=claim.attempt, n=n)
        time.sleep(pause)
    return {"rows": rows}


@jobs.job(name="test.fails_slowly_once", max_retries=3, min_backoff_ms=200, max_backoff_ms=500)
def fails_slowly_once(seconds: float = 3.0, started_file: str = "") -> dict[str, int]:
    """Attempt 1 works for `seconds` and then fails; later attempts succeed at once."""
    from pathlib import Path

    attempt = jobs.current_run().attempt
    if attempt == 1:
        if started_file:
            Path(started_file).write_text("started")
        for _ in range(int(seconds * 10)):
            time.sleep(0.1)
        raise RuntimeError("attempt 1 fails after a while")
    return {"attempt": attempt}


@jobs.job(name="test.count", max_retries=0)
def count() -> None:
    """Writes one marker per execution, outside any transaction, so a second execution of
    the same run would show."""
    from tests.testapp.models import Marker

    claim = jobs.current_run()
    Marker.objects.create(run_id=claim.run_id, attempt=claim.attempt, n=0)


@jobs.job(name="test.blocked", max_retries=0, time_limit=3)
def blocked(seconds: float = 40.0) -> None:
    """One call that blocks past the time limit: Dramatiq's asynchronous TimeLimitExceeded
    cannot interrupt it (as a socket read without a timeout)."""
    jobs.current_run().progress(10, "Waiting on the socket")
    time.sleep(seconds)

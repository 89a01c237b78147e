"""Exceptions of the jobs app; the public ones are re-exported by `jobs`."""

from __future__ import annotations


class JobsError(Exception):
    """Base class of the jobs app's errors."""


class UnknownJob(JobsError, LookupError):
    """No job of that name is registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No job named {name!r} is registered.")
        self.name = name


class PayloadError(JobsError, ValueError):
    """The payload does not fit the job's schema; `errors` lists (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{path}: {msg}" if path else f"payload {msg}" for path, msg in errors)
        )


class Cancelled(JobsError):
    """Raised inside a job at its next progress call after someone cancelled the run."""


class LeaseLost(JobsError):
    """This worker no longer owns the run (its lease expired and another worker took over)."""


class NotClaimed(JobsError):
    """The worker could not record the run's start; the message will be retried."""

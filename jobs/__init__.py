"""Admin-managed periodic and background jobs for Django on Dramatiq.

Public API (other apps import nothing else from `jobs`)::

    import jobs

    @jobs.job(name="billing.reconcile_tenant", schema=ReconcileTenant, max_retries=5)
    def reconcile_tenant(tenant_id: int, date: str) -> dict: ...

    run = jobs.enqueue("billing.reconcile_tenant", {"tenant_id": 1, "date": "2026-11-01"},
                       key="reconcile:1:2026-11-01")
    jobs.current_run().progress(40, "Rendering")   # inside a job

Also `jobs.health_checks()` (what /healthz reports) and `jobs.SchedulerLoop` (to run the
scheduler inside another process, as `manage.py runall` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.errors import Cancelled, JobsError, LeaseLost, PayloadError, UnknownJob
from jobs.registry import JobSpec, get_job, job, registered_jobs
from jobs.worker.claim import current_run

if TYPE_CHECKING:
    from jobs.health import health_checks
    from jobs.models import JobRun, Schedule
    from jobs.scheduling.loop import SchedulerLoop
    from jobs.services import enqueue, enqueue_once, run_cancel, run_retry

__all__ = [
    "Cancelled",
    "JobRun",
    "JobSpec",
    "JobsError",
    "LeaseLost",
    "PayloadError",
    "Schedule",
    "SchedulerLoop",
    "UnknownJob",
    "current_run",
    "enqueue",
    "enqueue_once",
    "get_job",
    "health_checks",
    "job",
    "registered_jobs",
    "run_cancel",
    "run_retry",
]

# Models and services need the app registry; load them on first use so that importing `jobs`
# (e.g. from a job module during app loading) never fails.
_LAZY = {
    "SchedulerLoop": "jobs.scheduling.loop",
    "health_checks": "jobs.health",
    "JobRun": "jobs.models",
    "Schedule": "jobs.models",
    "enqueue": "jobs.services",
    "enqueue_once": "jobs.services",
    "run_cancel": "jobs.services",
    "run_retry": "jobs.services",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jobs' has no attribute {name!r}")

"""Billing's jobs: the daily reconciliation and its per-tenant fan-out.

Both are `atomic=True`: a run's business writes and its "succeeded" mark commit together,
so a redelivered message finds either the finished run (and is dropped) or nothing of it.
"""

from __future__ import annotations

import datetime as dt

import pydantic

import jobs
from billing import services
from billing.models import Tenant


class ReconcileDay(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    date: dt.date | None = pydantic.Field(
        default=None,
        description="The day to reconcile (YYYY-MM-DD). Leave it out in the schedule: the "
        "run then reconciles the local day that ended before its slot.",
    )


class ReconcileTenant(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    tenant_id: int = pydantic.Field(gt=0)
    date: dt.date


@jobs.job(
    name="billing.reconcile_day",
    schema=ReconcileDay,
    max_retries=5,
    time_limit=600,
    atomic=True,
    min_backoff_ms=5_000,
    description="Reconcile one day: one billing.reconcile_tenant run per active tenant.",
)
def reconcile_day(date: str | None = None) -> dict[str, object]:
    """Fan out one `billing.reconcile_tenant` run per active tenant for the day."""
    day = dt.date.fromisoformat(date) if date else _day_from_slot()
    return services.day_reconcile(day=day)


def _day_from_slot() -> dt.date:
    # The slot, never the wall clock: a run that starts late, is retried or is replayed
    # for a backfill reconciles the same day. An operator's retry of a dead run is a new run
    # without a slot (the slot stays unique to the first): it reconciles its original's day.
    run = jobs.JobRun.objects.get(id=jobs.current_run().run_id)
    while run.scheduled_for is None and run.retry_of_id is not None:
        run = jobs.JobRun.objects.get(id=run.retry_of_id)
    if run.scheduled_for is None:
        raise ValueError(
            "date: this run was not fired by a schedule, so it has no slot to take the day "
            'from; enqueue it with a payload such as {"date": "2026-11-01"}.'
        )
    return services.reconciled_day(run.scheduled_for)


@jobs.job(
    name="billing.reconcile_tenant",
    schema=ReconcileTenant,
    max_retries=8,
    time_limit=300,
    atomic=True,
    min_backoff_ms=5_000,
    max_backoff_ms=600_000,
    description="Invoice, charge and check one tenant for one day (idempotent).",
)
def reconcile_tenant(tenant_id: int, date: str) -> dict[str, object]:
    """Invoice the periods that ended on `date`, charge open invoices, record discrepancies."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        # Deleted since the fan-out: nothing to bill, and retrying would not change that.
        return {"tenant_id": tenant_id, "date": date, "skipped": "no such tenant"}
    day = dt.date.fromisoformat(date)
    return services.tenant_reconcile(tenant=tenant, day=day).as_dict()


class GenerateReport(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    tenant_id: int = pydantic.Field(gt=0)
    month: str = pydantic.Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


REPORT_MAX_RETRIES = 2


@jobs.job(
    name="billing.generate_monthly_report",
    schema=GenerateReport,
    max_retries=REPORT_MAX_RETRIES,
    time_limit=300,
    min_backoff_ms=2_000,
    max_backoff_ms=30_000,
    description="Render a tenant's monthly report to PDF, store it and email the requester.",
)
def generate_monthly_report(tenant_id: int, month: str) -> dict[str, object]:
    """Gather the month's invoices and charges, render the PDF, store it, mail a link."""
    from billing import reports

    first = dt.date.fromisoformat(f"{month}-01")
    try:
        return reports.report_generate(tenant_id=tenant_id, month=first)
    except jobs.Cancelled:
        reports.report_fail(tenant_id=tenant_id, month=first, reason="it was cancelled")
        raise
    except Exception as exc:
        if jobs.current_run().attempt > REPORT_MAX_RETRIES:  # no retry left: tell the user
            reports.report_fail(tenant_id=tenant_id, month=first, reason=reports.user_reason(exc))
        raise

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from billing import services
from billing.gateway import LedgerGateway
from billing.models import Plan, Subscription, Tenant
from tests.processes import WORKER_READY, project_env, running, wait_for_log, worker_command

_numbers = itertools.count(1)


@pytest.fixture
def gateway() -> LedgerGateway:
    return LedgerGateway()


def make_plan(**fields: Any) -> Plan:
    n = next(_numbers)
    values: dict[str, Any] = {
        "code": f"plan-{n}",
        "name": f"Plan {n}",
        "price": 1_000,
        "currency": "EUR",
        "interval": Plan.Interval.DAY,
    }
    values.update(fields)
    return Plan.objects.create(**values)


def make_tenant(**fields: Any) -> Tenant:
    n = next(_numbers)
    values: dict[str, Any] = {"name": f"Tenant {n}", "slug": f"tenant-{n}"}
    values.update(fields)
    return Tenant.objects.create(**values)


def subscribed_tenant(
    started_on: date, plan: Plan | None = None, **tenant_fields: Any
) -> tuple[Tenant, Subscription]:
    tenant = make_tenant(**tenant_fields)
    subscription = services.subscription_create(
        tenant=tenant, plan=plan or make_plan(), started_on=started_on
    )
    return tenant, subscription


@pytest.fixture(scope="module")
def billing_worker(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One real `manage.py rundramatiq` for the module's tests; yields its log file."""
    log = tmp_path_factory.mktemp("billing-worker") / "worker.log"
    with django_db_blocker.unblock(), running(worker_command(), project_env(), log) as proc:
        wait_for_log(log, WORKER_READY, proc)
        yield log

"""Crash test: reconcile 20 tenants x 5 days through real worker processes while killing
them with SIGKILL, often between the gateway's charge and the job's commit.

Run it alone (it prints what it survived):
    make test PYTEST_ARGS="tests/billing/test_crash.py"
A failing run prints its seed; BILLING_CRASH_SEED=<seed> repeats its kill timings.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.db import transaction

import jobs
from billing.models import Charge, Discrepancy, Invoice, LedgerCharge
from tests.billing.conftest import make_plan, subscribed_tenant
from tests.e2e.conftest import ready, start
from tests.processes import manage_command, wait_until, worker_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.timeout(240)]

TENANTS = 20
DAYS = 5
FIRST_DAY = date(2026, 11, 1)
KILLS = 10
MIN_KILLS = 5

ENV = {
    # The gateway pauses 0.4 s after recording each charge (see crash_settings.py).
    "DJANGO_SETTINGS_MODULE": "tests.billing.crash_settings",
    # Dead workers' runs are taken over within seconds rather than the production 15-30 s.
    "TEST_JOBS_LEASE_SECONDS": "3",
    "TEST_JOBS_SWEEP_INTERVAL_SECONDS": "1",
    # ... and the messages a dead worker had prefetched go back to the queue as quickly.
    "TEST_BROKER_HEARTBEAT_MS": "2000",
    "TEST_BROKER_MAINTENANCE_CHANCE": "1000000",
}


def test_reconciliation_survives_kill_9_with_one_invoice_and_one_charge_per_period(
    broker: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("BILLING_CRASH_SEED") or random.randrange(1_000_000))
    rng = random.Random(seed)
    jobs.Schedule.objects.update(enabled=False, next_run_at=None)  # only our runs
    prices = {}
    for n in range(TENANTS):
        tenant, subscription = subscribed_tenant(FIRST_DAY, make_plan(price=1_000 + 37 * n))
        prices[tenant.pk] = subscription.plan.price
    days = [FIRST_DAY + timedelta(days=n) for n in range(DAYS)]
    with transaction.atomic():
        for day in days:
            jobs.enqueue("billing.reconcile_day", {"date": day.isoformat()})

    runs = jobs.JobRun.objects.filter(job__startswith="billing.")
    expected_runs = DAYS + DAYS * TENANTS

    def done() -> bool:
        return runs.filter(state="succeeded").count() == expected_runs

    started = time.monotonic()
    kills = 0
    logs: list[Path] = []
    with start(manage_command("runscheduler"), tmp_path / "scheduler.log", **ENV):
        while not done():
            logs.append(tmp_path / f"worker-{len(logs) + 1}.log")
            with start(worker_command(threads=4), logs[-1], **ENV) as worker:
                ready(logs[-1], worker)
                if kills >= KILLS:
                    wait_until(done, 120, interval=0.3, what="the last worker to finish")
                    break
                if rng.random() < 0.6:
                    # Aim for the window: right after this worker's next gateway charge.
                    charged = LedgerCharge.objects.count()
                    deadline = time.monotonic() + 8
                    while LedgerCharge.objects.count() == charged and time.monotonic() < deadline:
                        time.sleep(0.05)
                    time.sleep(rng.uniform(0.0, 0.35))
                else:
                    time.sleep(rng.uniform(0.2, 2.5))  # anywhere
                if done():
                    break
                os.killpg(worker.pid, signal.SIGKILL)
                kills += 1
    elapsed = time.monotonic() - started

    states = Counter(runs.values_list("state", flat=True))
    assert states == {"succeeded": expected_runs}, f"seed {seed}: {states}"

    # Every tenant-period has exactly one invoice, paid, for the plan's price.
    invoices = list(Invoice.objects.all())
    assert sorted((i.tenant_id, i.period_end) for i in invoices) == sorted(
        (tenant_id, day) for tenant_id in prices for day in days
    )
    assert {i.status for i in invoices} == {"paid"}
    assert all(i.amount == prices[i.tenant_id] for i in invoices)

    # ... and exactly one successful gateway charge, the one our books record.
    ledger = {row.idempotency_key: row for row in LedgerCharge.objects.all()}
    assert set(ledger) == {i.charge_key for i in invoices}, f"seed {seed}: extra or missing charges"
    assert {row.status for row in ledger.values()} == {"succeeded"}
    charges = list(Charge.objects.all())
    assert sorted(c.invoice_id for c in charges) == sorted(i.pk for i in invoices)
    assert all(ledger[c.idempotency_key].reference == c.gateway_reference for c in charges)

    # The money adds up.
    expected_total = sum(prices.values()) * DAYS
    assert sum(i.amount for i in invoices) == expected_total
    assert sum(row.amount for row in ledger.values()) == expected_total
    assert sum(c.amount for c in charges) == expected_total

    attempts = sum(runs.values_list("attempts", flat=True))
    lost = sum(
        1
        for history in runs.values_list("history", flat=True)
        for entry in history
        if "worker lost" in entry["error"]
    )
    dropped = sum(log.read_text().count("dropping message for run") for log in logs)
    replayed = sum(c.replayed for c in charges)
    fixed = Discrepancy.objects.filter(kind=Discrepancy.Kind.GATEWAY_PAID_INVOICE_OPEN).count()
    with capsys.disabled():
        print(
            f"\ncrash test (seed {seed}): {TENANTS} tenants x {DAYS} days, {expected_runs} runs, "
            f"{elapsed:.0f} s; survived {kills} SIGKILLs and {attempts - expected_runs} "
            f"redeliveries ({lost} attempts lost with their worker, {dropped} duplicate "
            f"messages dropped); {replayed} charges made before a kill were recovered from "
            f"the gateway, not repeated ({fixed} discrepancies fixed). Result: "
            f"{len(invoices)} invoices, {len(ledger)} gateway charges, "
            f"{expected_total} minor units each side."
        )
    assert kills >= MIN_KILLS, f"the work finished after {kills} kills: the test proved little"
    assert replayed >= 1, "no kill landed between a gateway charge and its commit"
    assert replayed == fixed

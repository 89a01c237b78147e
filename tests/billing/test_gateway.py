"""The ledger gateway: Stripe's idempotency semantics, declines, faults, and its own commits."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from billing.gateway import (
    GatewayTimeout,
    GatewayUnavailable,
    IdempotencyConflict,
    LedgerGateway,
    get_gateway,
)
from billing.models import LedgerCharge

# All aliases: the ledger writes on its own (BILLING_LEDGER_DATABASE, a mirror of the default).
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REQUEST = {"amount": 1_250, "currency": "EUR", "customer": "tenant:1", "description": "Invoice 1"}


def test_the_same_key_with_the_same_parameters_returns_the_first_outcome(
    gateway: LedgerGateway,
) -> None:
    first = gateway.charge(idempotency_key="charge:1:a", **REQUEST)
    again = gateway.charge(idempotency_key="charge:1:a", **REQUEST)
    assert first.succeeded and not first.replayed
    assert again.replayed and again.reference == first.reference and again.amount == 1_250
    assert LedgerCharge.objects.count() == 1, "the second call charged again"


def test_the_same_key_with_a_changed_amount_is_an_idempotency_conflict(
    gateway: LedgerGateway,
) -> None:
    gateway.charge(idempotency_key="charge:1:a", **REQUEST)
    with pytest.raises(IdempotencyConflict, match=r"amount 1250 -> 1300") as info:
        gateway.charge(idempotency_key="charge:1:a", **{**REQUEST, "amount": 1_300})
    assert info.value.differences == {"amount": (1_250, 1_300)}
    assert list(LedgerCharge.objects.values_list("amount", flat=True)) == [1_250]


def test_a_decline_is_an_outcome_stored_under_its_key_and_replayed() -> None:
    gateway = LedgerGateway(decline_customers=["tenant:1"], decline_code="insufficient_funds")
    outcome = gateway.charge(idempotency_key="charge:1:a", **REQUEST)
    assert outcome.status == "declined" and not outcome.succeeded
    assert outcome.decline_code == "insufficient_funds"
    # Stripe replays a decline too: a new attempt needs a new key.
    replay = LedgerGateway().charge(idempotency_key="charge:1:a", **REQUEST)
    assert replay.replayed and replay.status == "declined"
    assert gateway.retrieve(idempotency_key="charge:1:a") == replay


def test_a_timeout_after_recording_leaves_a_charge_that_the_retry_gets_back() -> None:
    flaky = LedgerGateway(timeout_after_record=1.0)
    with pytest.raises(GatewayTimeout):
        flaky.charge(idempotency_key="charge:1:a", **REQUEST)
    retry = flaky.charge(idempotency_key="charge:1:a", **REQUEST)
    assert retry.replayed and retry.succeeded
    assert LedgerCharge.objects.count() == 1


def test_a_failure_before_recording_charges_nothing() -> None:
    with pytest.raises(GatewayUnavailable):
        LedgerGateway(fail_before_record=1.0).charge(idempotency_key="charge:1:a", **REQUEST)
    assert LedgerGateway().retrieve(idempotency_key="charge:1:a") is None
    assert LedgerCharge.objects.count() == 0


def test_a_charge_survives_the_rollback_of_the_transaction_that_asked_for_it(
    gateway: LedgerGateway,
) -> None:
    """The ledger commits on its own connection, as a remote provider would."""
    with pytest.raises(RuntimeError), transaction.atomic():
        gateway.charge(idempotency_key="charge:1:a", **REQUEST)
        raise RuntimeError("the worker's transaction fails after the charge")
    assert not connection.in_atomic_block
    stored = LedgerCharge.objects.get()
    assert (stored.idempotency_key, stored.amount, stored.status) == (
        "charge:1:a",
        1_250,
        "succeeded",
    )


def test_concurrent_requests_with_one_key_charge_once(gateway: LedgerGateway) -> None:
    barrier = threading.Barrier(10)
    references: list[str] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait()
            references.append(gateway.charge(idempotency_key="charge:1:a", **REQUEST).reference)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's connections, the ledger's included

    threads = [threading.Thread(target=request) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(references) == 10 and len(set(references)) == 1
    assert LedgerCharge.objects.count() == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"amount": -1}, "amount: must be a non-negative integer"),
        ({"amount": 10.5}, "amount: must be a non-negative integer"),
        ({"currency": "eur"}, "currency: must be an ISO 4217 code"),
        ({"customer": ""}, "customer: must not be empty"),
    ],
)
def test_bad_requests_are_refused_by_field_before_anything_is_recorded(
    gateway: LedgerGateway, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        gateway.charge(idempotency_key="charge:1:a", **{**REQUEST, **arguments})
    assert LedgerCharge.objects.count() == 0


def test_bad_fault_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="timeout_after_record: a probability"):
        LedgerGateway(timeout_after_record=2)
    with pytest.raises(ValueError, match="decline_customers: a list"):
        LedgerGateway(decline_customers="tenant:1")


def test_the_configured_gateway_follows_the_settings(settings) -> None:
    assert isinstance(get_gateway(), LedgerGateway)
    settings.BILLING_GATEWAY_OPTIONS = {"decline_customers": ["tenant:9"]}
    gateway = get_gateway()
    assert gateway is get_gateway(), "one instance per configuration"
    outcome = gateway.charge(idempotency_key="k", **{**REQUEST, "customer": "tenant:9"})
    assert outcome.status == "declined"

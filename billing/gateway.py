"""The payment gateway interface and its default implementation, the `LedgerGateway`.

A gateway charges money under an idempotency key with Stripe's semantics:

* the same key with the same parameters returns the first outcome (`replayed=True`) and
  charges nothing more;
* the same key with different parameters raises `IdempotencyConflict`;
* a declined payment is an outcome (`status="declined"`), stored under its key like a
  success, never an exception. Exceptions mean "no answer": `GatewayUnavailable` (nothing
  was charged) and `GatewayTimeout` (the charge may have happened: ask again with the same
  key).

The `LedgerGateway` keeps its charges in its own table (`billing_ledger_charge`) and writes
them on a database connection of its own, in autocommit, the way a remote provider commits
on its side: when the worker's transaction rolls back (or its process is killed) after the
charge, the charge stays. That is the state "charged at the gateway, not in our books" that
the reconciliation must and does repair. The connection is Django's for the DATABASES alias
named by BILLING_LEDGER_DATABASE ("ledger" in saas/settings.py: the default database's
settings under a second alias). See docs/billing.md.

Adding a real provider is one subclass of `Gateway` named in `BILLING_GATEWAY`.
"""

from __future__ import annotations

import abc
import logging
import random
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections
from django.utils import timezone
from django.utils.module_loading import import_string

from billing import sql
from billing.conf import billing_settings

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

__all__ = [
    "ChargeOutcome",
    "Gateway",
    "GatewayError",
    "GatewayTimeout",
    "GatewayUnavailable",
    "IdempotencyConflict",
    "LedgerGateway",
    "get_gateway",
]

SUCCEEDED = "succeeded"
DECLINED = "declined"


class GatewayError(Exception):
    """The gateway did not give an outcome."""


class GatewayUnavailable(GatewayError):
    """The request did not reach the provider: nothing was charged. Safe to retry."""


class GatewayTimeout(GatewayError):
    """No answer in time: the charge may or may not have happened. Retry with the same key."""


class IdempotencyConflict(GatewayError):
    """The key was used before with different parameters: refusing to guess which is meant."""

    def __init__(self, key: str, differences: dict[str, tuple[Any, Any]]) -> None:
        self.key = key
        self.differences = differences
        changed = ", ".join(
            f"{name} {old!r} -> {new!r}" for name, (old, new) in differences.items()
        )
        super().__init__(f"Idempotency key {key!r} was used with different parameters: {changed}.")


@dataclass(frozen=True)
class ChargeOutcome:
    """What the gateway says about one charge. Declines are outcomes, not errors."""

    reference: str
    status: str
    amount: int
    currency: str
    decline_code: str = ""
    replayed: bool = False
    """True when the gateway returned a charge it had recorded for this key before."""

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    amount: int
    currency: str
    customer: str
    description: str = ""

    # The parameters that must match for a key to be replayed (Stripe compares them all).
    COMPARED: ClassVar[tuple[str, ...]] = ("amount", "currency", "customer", "description")

    def validate(self) -> None:
        if not self.idempotency_key or len(self.idempotency_key) > 200:
            raise ValueError("idempotency_key: must be 1 to 200 characters")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ValueError(
                f"amount: must be a non-negative integer (minor units), not {self.amount!r}"
            )
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(
                f"currency: must be an ISO 4217 code such as EUR, not {self.currency!r}"
            )
        if not self.customer:
            raise ValueError("customer: must not be empty")


class Gateway(abc.ABC):
    """A payment provider. Implementations must give Stripe's idempotency semantics."""

    name: ClassVar[str]

    @abc.abstractmethod
    def charge(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        customer: str,
        description: str = "",
    ) -> ChargeOutcome:
        """Charge `amount` minor units of `currency` to `customer`, at most once per key.

        Returns the outcome (succeeded or declined; `replayed` if the key was seen before).
        Raises IdempotencyConflict, GatewayUnavailable or GatewayTimeout.
        """

    @abc.abstractmethod
    def retrieve(self, *, idempotency_key: str) -> ChargeOutcome | None:
        """The outcome recorded for `idempotency_key`, or None if the gateway never saw it."""


class LedgerGateway(Gateway):
    """The default gateway: charges live in `billing_ledger_charge`, committed on their own
    connection (the BILLING_LEDGER_DATABASE alias). Options inject faults for tests (all off
    by default):

    * `decline_customers`: customers whose charges are declined with `decline_code`;
    * `fail_before_record`: probability (0-1) of GatewayUnavailable before anything is recorded;
    * `timeout_after_record`: probability (0-1) of GatewayTimeout after the charge was recorded
      (the response is lost; a retry with the same key gets the recorded outcome);
    * `pause_after_record`: seconds to wait after recording before answering, which widens the
      window between the gateway's commit and the caller's (a crash test kills workers there);
    * `seed`: makes the fault rolls repeatable.

    Replays never fail or pause: the faults model a new charge's trip to the provider.
    """

    name = "ledger"

    def __init__(
        self,
        *,
        decline_customers: Iterable[str] = (),
        decline_code: str = "card_declined",
        fail_before_record: float = 0.0,
        timeout_after_record: float = 0.0,
        pause_after_record: float = 0.0,
        seed: int | None = None,
    ) -> None:
        for option, value in (
            ("fail_before_record", fail_before_record),
            ("timeout_after_record", timeout_after_record),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{option}: a probability between 0 and 1, not {value!r}")
        if pause_after_record < 0:
            raise ValueError(f"pause_after_record: seconds >= 0, not {pause_after_record!r}")
        if isinstance(decline_customers, str):
            raise ValueError("decline_customers: a list of customer references, not one string")
        self.decline_customers = frozenset(decline_customers)
        self.decline_code = decline_code
        self.fail_before_record = fail_before_record
        self.timeout_after_record = timeout_after_record
        self.pause_after_record = pause_after_record
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._random_lock = threading.Lock()

    def _roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._random_lock:
            return self._random.random() < probability

    def charge(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        customer: str,
        description: str = "",
    ) -> ChargeOutcome:
        request = ChargeRequest(idempotency_key, amount, currency, customer, description)
        request.validate()
        if self._roll(self.fail_before_record):
            raise GatewayUnavailable("ledger gateway: injected failure before the charge")
        declined = customer in self.decline_customers
        status = DECLINED if declined else SUCCEEDED
        code = self.decline_code if declined else ""
        reference = f"ch_{secrets.token_hex(12)}"
        stored: tuple[Any, ...] | None = None
        ledger = _ledger_connection()
        with ledger.cursor() as cursor:
            now = ledger.ops.adapt_datetimefield_value(timezone.now())
            cursor.execute(
                sql.LEDGER_CHARGE_INSERT,
                [
                    reference,
                    idempotency_key,
                    customer,
                    amount,
                    currency,
                    description,
                    status,
                    code,
                    now,
                ],
            )
            inserted = cursor.fetchone() is not None
            if not inserted:
                stored = _select(cursor, idempotency_key)
        if not inserted:
            if stored is None:  # pragma: no cover - rows are never deleted
                raise GatewayUnavailable(f"ledger gateway: key {idempotency_key!r} vanished")
            return _replay(request, stored)
        outcome = ChargeOutcome(reference, status, amount, currency, code)
        logger.debug("ledger: %s %s %s %s", idempotency_key, status, amount, currency)
        if self.pause_after_record:
            time.sleep(self.pause_after_record)
        if self._roll(self.timeout_after_record):
            raise GatewayTimeout(
                f"ledger gateway: injected timeout after recording {idempotency_key!r}"
            )
        return outcome

    def retrieve(self, *, idempotency_key: str) -> ChargeOutcome | None:
        with _ledger_connection().cursor() as cursor:
            stored = _select(cursor, idempotency_key)
        if stored is None:
            return None
        reference, _customer, amount, currency, _description, status, code = stored
        return ChargeOutcome(reference, status, amount, currency, code, replayed=True)


def _ledger_connection() -> BaseDatabaseWrapper:
    """This thread's Django connection for BILLING_LEDGER_DATABASE.

    Nothing opens a transaction on it, so each statement commits at once; Django opens,
    reuses and closes it like any other alias (CONN_MAX_AGE, close_old_connections() at the
    end of each request and, through django-dramatiq, of each message).
    """
    return connections[billing_settings().LEDGER_DATABASE]


def _select(cursor: Any, key: str) -> tuple[Any, ...] | None:
    cursor.execute(sql.LEDGER_CHARGE_SELECT, [key])
    row = cursor.fetchone()
    return tuple(row) if row is not None else None


def _replay(request: ChargeRequest, stored: tuple[Any, ...]) -> ChargeOutcome:
    reference, customer, amount, currency, description, status, code = stored
    first = {
        "amount": amount,
        "currency": currency,
        "customer": customer,
        "description": description,
    }
    differences = {
        name: (first[name], getattr(request, name))
        for name in ChargeRequest.COMPARED
        if first[name] != getattr(request, name)
    }
    if differences:
        raise IdempotencyConflict(request.idempotency_key, differences)
    return ChargeOutcome(reference, status, amount, currency, code, replayed=True)


# ---------------------------------------------------------------------------------------------
# The configured gateway
# ---------------------------------------------------------------------------------------------

_instances: dict[tuple[str, str], Gateway] = {}
_instances_lock = threading.Lock()


def load_gateway_class(path: str) -> type[Gateway]:
    """Import the class named by BILLING_GATEWAY; ImportError or TypeError says what is wrong."""
    cls = import_string(path)
    if not (isinstance(cls, type) and issubclass(cls, Gateway)):
        raise TypeError(f"{path} is not a subclass of billing.gateway.Gateway")
    return cls


def get_gateway() -> Gateway:
    """The gateway configured by BILLING_GATEWAY and BILLING_GATEWAY_OPTIONS (one per process
    and configuration: a real provider's client keeps its HTTP connections)."""
    conf = billing_settings()
    cache_key = (conf.GATEWAY, repr(sorted(conf.GATEWAY_OPTIONS.items())))
    with _instances_lock:
        gateway = _instances.get(cache_key)
        if gateway is None:
            gateway = load_gateway_class(conf.GATEWAY)(**conf.GATEWAY_OPTIONS)
            _instances[cache_key] = gateway
    return gateway

"""Billing workflows: keyword-only functions that jobs, commands and the admin call.

Exactly-once effects from at-least-once delivery rest on three things (docs/billing.md):

1. every business row has a natural idempotency key with a UNIQUE constraint
   (`invoice:<tenant>:<period>`, `charge:<tenant>:<period>`), so a repeat finds the row
   instead of writing a second one;
2. the gateway is called with the charge key, so a repeat after a rollback gets the charge
   the provider already made instead of a second one;
3. a reconciliation's rows and its run's success mark commit in one transaction (the jobs
   are `atomic=True`), so a redelivered run either sees the finished run or redoes it all.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

import jobs
from billing import periods
from billing.gateway import Gateway, IdempotencyConflict, get_gateway
from billing.models import (
    Charge,
    Discrepancy,
    Invoice,
    Membership,
    Plan,
    Subscription,
    Tenant,
    invoice_key,
)

logger = logging.getLogger(__name__)

_DAY = timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Subscriptions and invoices
# ---------------------------------------------------------------------------------------------


def subscription_create(
    *,
    tenant: Tenant,
    plan: Plan,
    started_on: date,
    ends_on: date | None = None,
    status: str = Subscription.Status.ACTIVE,
) -> Subscription:
    """Put a tenant on a plan from `started_on`; its first period is the current one."""
    first = periods.nth_period(started_on, plan.interval, plan.interval_count, 0)
    subscription = Subscription(
        tenant=tenant,
        plan=plan,
        status=status,
        started_on=started_on,
        ends_on=ends_on,
        current_period_start=first.start,
        current_period_end=first.end,
    )
    subscription.full_clean()
    subscription.save(force_insert=True)
    return subscription


def subscription_advance(*, subscription: Subscription, day: date) -> bool:
    """Move the subscription's current period forward to the one after `day`, if it is not
    there yet (never backwards: reconciling an old day leaves a later period in place)."""
    following = subscription.period_containing(day + _DAY)
    if following is None:
        return False
    return (
        Subscription.objects.filter(
            pk=subscription.pk, current_period_end__lt=following.end
        ).update(current_period_start=following.start, current_period_end=following.end)
        == 1
    )


def invoice_create(
    *,
    tenant: Tenant,
    period_start: date,
    period_end: date,
    amount: int,
    currency: str,
    subscription: Subscription | None = None,
) -> tuple[Invoice, bool]:
    """The tenant's invoice for the period, created if there is none: (invoice, created).

    Idempotent on `invoice:<tenant>:<period>`: a repeat returns the first invoice, whatever
    amount it is called with (the first amount stands). A zero-amount invoice is paid at once.
    Raises ValidationError naming the field for bad input.
    """
    errors: dict[str, str] = {}
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        errors["amount"] = f"Must be a non-negative whole number of minor units, not {amount!r}."
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        errors["currency"] = f"Must be an ISO 4217 code such as EUR, not {currency!r}."
    if period_end < period_start:
        errors["period_end"] = f"The period ends ({period_end}) before it starts ({period_start})."
    if errors:
        raise ValidationError(errors)
    key = invoice_key(tenant.pk, periods.Period(period_start, period_end))
    existing = Invoice.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False
    now = timezone.now()
    paid = amount == 0
    try:
        # A savepoint: a concurrent creator's row makes this INSERT wait for its commit and
        # then fail on the unique key; the caller's transaction carries on with that row.
        with transaction.atomic():
            invoice = Invoice.objects.create(
                tenant=tenant,
                subscription=subscription,
                period_start=period_start,
                period_end=period_end,
                amount=amount,
                currency=currency,
                status=Invoice.Status.PAID if paid else Invoice.Status.OPEN,
                paid_at=now if paid else None,
                idempotency_key=key,
                created_at=now,
            )
    except IntegrityError:
        existing = Invoice.objects.filter(idempotency_key=key).first()
        if existing is None:
            raise
        return existing, False
    return invoice, True


def tenant_customer(tenant_id: int) -> str:
    """The tenant's customer reference at the gateway (stable: never the name or slug)."""
    return f"tenant:{tenant_id}"


def invoice_charge(*, invoice: Invoice, gateway: Gateway, day: date | None = None) -> Charge | None:
    """Charge an open invoice once, with the gateway key `charge:<tenant>:<period>`.

    Returns the invoice's charge (succeeded: the invoice is now paid; declined: it stays
    open), or None if the invoice is not open and was never charged. A charge the gateway
    already had (made by an attempt whose transaction rolled back) is recorded and noted as
    a fixed discrepancy. A charge already declined is not retried: the same key would only
    replay the decline. Raises IdempotencyConflict, GatewayTimeout, GatewayUnavailable.
    """
    day = day or timezone.localdate()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("tenant").get(pk=invoice.pk)
        key = invoice.charge_key
        charge = Charge.objects.filter(idempotency_key=key).first()
        if invoice.status != Invoice.Status.OPEN:
            return charge
        if charge is None:
            outcome = gateway.charge(
                idempotency_key=key,
                amount=invoice.amount,
                currency=invoice.currency,
                customer=tenant_customer(invoice.tenant_id),
                description=f"Invoice {invoice.idempotency_key}",
            )
            charge = Charge.objects.create(
                invoice=invoice,
                gateway=gateway.name,
                gateway_reference=outcome.reference,
                idempotency_key=key,
                status=Charge.Status.SUCCEEDED if outcome.succeeded else Charge.Status.DECLINED,
                amount=outcome.amount,
                currency=outcome.currency,
                decline_code=outcome.decline_code,
                replayed=outcome.replayed,
            )
            if outcome.replayed and outcome.succeeded:
                discrepancy_record(
                    invoice=invoice,
                    kind=Discrepancy.Kind.GATEWAY_PAID_INVOICE_OPEN,
                    resolution=Discrepancy.Resolution.FIXED,
                    day=day,
                    detail=f"The gateway had charge {outcome.reference} for {key} but the "
                    "invoice was open; recorded the charge and marked the invoice paid.",
                )
        elif charge.status == Charge.Status.SUCCEEDED:
            discrepancy_record(
                invoice=invoice,
                kind=Discrepancy.Kind.CHARGED_INVOICE_OPEN,
                resolution=Discrepancy.Resolution.FIXED,
                day=day,
                detail=f"Charge {charge.gateway_reference} succeeded but the invoice was open; "
                "marked it paid.",
            )
        if charge.status == Charge.Status.SUCCEEDED:
            Invoice.objects.filter(pk=invoice.pk, status=Invoice.Status.OPEN).update(
                status=Invoice.Status.PAID, paid_at=timezone.now()
            )
        elif invoice.subscription_id is not None:
            Subscription.objects.filter(
                pk=invoice.subscription_id, status=Subscription.Status.ACTIVE
            ).update(status=Subscription.Status.PAST_DUE)
        return charge


def discrepancy_record(
    *, invoice: Invoice, kind: str, resolution: str, day: date, detail: str = ""
) -> tuple[Discrepancy, bool]:
    """Note a discrepancy once per invoice and kind: (discrepancy, created)."""
    try:
        with transaction.atomic():
            return Discrepancy.objects.get_or_create(
                invoice=invoice,
                kind=kind,
                defaults={"resolution": resolution, "detail": detail, "found_on": day},
            )
    except IntegrityError:
        return Discrepancy.objects.get(invoice=invoice, kind=kind), False


# ---------------------------------------------------------------------------------------------
# Reconciliation
# ---------------------------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    """What one tenant-day reconciliation did (stored as the run's result)."""

    tenant_id: int
    date: str
    invoices_created: list[str] = field(default_factory=list)
    charged: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def tenant_reconcile(
    *, tenant: Tenant, day: date, gateway: Gateway | None = None
) -> ReconcileResult:
    """Bill one tenant for one day; running it again changes nothing.

    In one transaction (the caller's, if any): invoice every period that ended on `day`,
    charge the tenant's open invoices due by then, repair invoices the gateway already
    charged, and flag paid invoices that have no charge. Only the date decides what is
    billed, so a re-run or backfill of a past day gives the same books.
    """
    gateway = gateway or get_gateway()
    result = ReconcileResult(tenant_id=tenant.pk, date=day.isoformat())
    with transaction.atomic():
        # Serialise reconciliations of one tenant: a duplicate (redelivery, a worker that
        # lost its lease, an operator's re-run) waits here, then finds the work done.
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        subscriptions = tenant.subscriptions.select_related("plan").filter(started_on__lte=day)
        for subscription in subscriptions.order_by("started_on", "pk"):
            period = subscription.period_ending_on(day)
            if period is not None:
                invoice, created = invoice_create(
                    tenant=tenant,
                    period_start=period.start,
                    period_end=period.end,
                    amount=subscription.plan.price,
                    currency=subscription.plan.currency,
                    subscription=subscription,
                )
                if created:
                    result.invoices_created.append(invoice.idempotency_key)
            subscription_advance(subscription=subscription, day=day)

        fixed_before = list(
            Discrepancy.objects.filter(invoice__tenant=tenant).values_list("pk", flat=True)
        )
        due = tenant.invoices.open().filter(period_end__lte=day).order_by("period_end", "pk")
        for invoice in due:
            try:
                charge = invoice_charge(invoice=invoice, gateway=gateway, day=day)
            except IdempotencyConflict as exc:
                # The gateway has this key with other parameters (the price changed between
                # a rolled-back attempt and now): a person must decide; bill the rest.
                _, created = discrepancy_record(
                    invoice=invoice,
                    kind=Discrepancy.Kind.CHARGE_CONFLICT,
                    resolution=Discrepancy.Resolution.FLAGGED,
                    day=day,
                    detail=str(exc),
                )
                if created:
                    result.flagged.append(invoice.idempotency_key)
                continue
            if charge is None:
                continue
            if charge.status == Charge.Status.SUCCEEDED:
                result.charged.append(charge.idempotency_key)
            else:
                result.declined.append(charge.idempotency_key)
            if charge.replayed:
                result.replayed.append(charge.idempotency_key)
        result.fixed = list(
            Discrepancy.objects.filter(
                invoice__tenant=tenant, resolution=Discrepancy.Resolution.FIXED
            )
            .exclude(pk__in=fixed_before)
            .values_list("invoice__idempotency_key", flat=True)
        )

        charged = Charge.objects.filter(invoice=OuterRef("pk"), status=Charge.Status.SUCCEEDED)
        unproven = tenant.invoices.filter(
            status=Invoice.Status.PAID, amount__gt=0, period_end__lte=day
        ).filter(~Exists(charged))
        for invoice in unproven:
            _, created = discrepancy_record(
                invoice=invoice,
                kind=Discrepancy.Kind.PAID_WITHOUT_CHARGE,
                resolution=Discrepancy.Resolution.FLAGGED,
                day=day,
                detail="The invoice is paid but no successful charge is recorded for it.",
            )
            if created:
                result.flagged.append(invoice.idempotency_key)
    return result


def reconcile_key(tenant_id: int, day: date) -> str:
    return f"reconcile:{tenant_id}:{day.isoformat()}"


def day_reconcile(*, day: date) -> dict[str, object]:
    """Fan out one `billing.reconcile_tenant` run per active tenant for `day`, keyed
    `reconcile:<tenant>:<date>` so a repeat enqueues nothing new. Sent when the caller's
    transaction commits."""
    tenant_ids = list(Tenant.objects.active().order_by("pk").values_list("pk", flat=True))
    keys = {tenant_id: reconcile_key(tenant_id, day) for tenant_id in tenant_ids}
    existing = set(jobs.JobRun.objects.filter(key__in=keys.values()).values_list("key", flat=True))
    for tenant_id in tenant_ids:
        jobs.enqueue(
            "billing.reconcile_tenant",
            {"tenant_id": tenant_id, "date": day.isoformat()},
            key=keys[tenant_id],
        )
    return {
        "date": day.isoformat(),
        "tenants": len(tenant_ids),
        "enqueued": len(tenant_ids) - len(existing),
    }


def reconciled_day(slot: datetime, time_zone: str | None = None) -> date:
    """The day a slot reconciles: the local day that ended before it (settings.TIME_ZONE).

    The 02:00 slot of 2 November reconciles 1 November, whenever the run actually starts.
    """
    zone = ZoneInfo(time_zone or settings.TIME_ZONE)
    return slot.astimezone(zone).date() - _DAY


# ---------------------------------------------------------------------------------------------
# Demo data
# ---------------------------------------------------------------------------------------------

DEMO_PLANS = [
    # code, name, price (minor units), currency, interval
    ("starter", "Starter", 900, "EUR", Plan.Interval.MONTH),
    ("team", "Team", 4_900, "EUR", Plan.Interval.MONTH),
    ("metered-daily", "Metered (daily)", 150, "EUR", Plan.Interval.DAY),
]
# slug, name, plan code, how many days before `today` the subscription started
DEMO_TENANTS = [
    ("acme", "Acme", "team", 95),
    ("globex", "Globex", "starter", 70),
    ("initech", "Initech", "metered-daily", 14),
]
# username, password, tenant slug, role
DEMO_LOGINS = [
    ("demo", "demo", "acme", Membership.Role.MEMBER),
    ("owner", "owner", "acme", Membership.Role.OWNER),
    ("owner", "owner", "globex", Membership.Role.OWNER),
]


@dataclass
class DemoResult:
    """What demo_seed created (all zero on a second run the same day)."""

    logins: list[tuple[str, str, str]] = field(default_factory=list)
    created: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ["plans", "tenants", "subscriptions", "invoices", "users", "memberships"], 0
        )
    )

    def count(self, what: str, created: bool) -> None:
        self.created[what] += int(created)


def demo_seed(*, today: date, gateway: Gateway | None = None) -> DemoResult:
    """Create demo plans, tenants, logins and subscriptions, and bill every period that
    ended before `today` through the gateway, so the demo has paid invoices with charges.

    Idempotent: everything is found by its natural key, so running it again changes nothing
    (run on a later day, it bills the periods that ended since).
    """
    from django.contrib.auth import get_user_model

    gateway = gateway or get_gateway()
    user_model = get_user_model()
    result = DemoResult()
    with transaction.atomic():
        plans = {}
        for code, name, price, currency, interval in DEMO_PLANS:
            plans[code], created = Plan.objects.get_or_create(
                code=code,
                defaults={"name": name, "price": price, "currency": currency, "interval": interval},
            )
            result.count("plans", created)
        tenants = {}
        for slug, name, plan_code, days_ago in DEMO_TENANTS:
            tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": name})
            tenants[slug] = tenant
            result.count("tenants", created)
            subscription = tenant.subscriptions.select_related("plan").first()
            if subscription is None:
                subscription = subscription_create(
                    tenant=tenant,
                    plan=plans[plan_code],
                    started_on=today - timedelta(days=days_ago),
                )
                result.count("subscriptions", True)
            for period in _ended_periods(subscription, today):
                invoice, created = invoice_create(
                    tenant=tenant,
                    period_start=period.start,
                    period_end=period.end,
                    amount=subscription.plan.price,
                    currency=subscription.plan.currency,
                    subscription=subscription,
                )
                result.count("invoices", created)
                invoice_charge(invoice=invoice, gateway=gateway, day=period.end)
                subscription_advance(subscription=subscription, day=period.end)
        for username, password, slug, role in DEMO_LOGINS:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                user = user_model.objects.create_user(username=username, password=password)
                result.count("users", True)
            _, created = Membership.objects.get_or_create(
                user=user, tenant=tenants[slug], defaults={"role": role}
            )
            result.count("memberships", created)
            result.logins.append((username, password, f"{role} of {tenants[slug].name}"))
    return result


def _ended_periods(subscription: Subscription, today: date) -> list[periods.Period]:
    plan = subscription.plan
    ended = []
    index = 0
    while True:
        period = periods.nth_period(
            subscription.started_on, plan.interval, plan.interval_count, index
        )
        if period.end >= today or (
            subscription.ends_on is not None and period.start >= subscription.ends_on
        ):
            return ended
        ended.append(period)
        index += 1

"""Tenants, plans, subscriptions, invoices and charges; and the ledger gateway's own table.

Money is an integer number of minor units (cents) with an ISO 4217 currency code. The
database refuses what must never happen: negative amounts, periods that end before they
start, a second invoice for a tenant's period (`Invoice.idempotency_key`), a second charge
for an invoice (`Charge.idempotency_key`).
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from billing import periods


class TenantQuerySet(models.QuerySet["Tenant"]):
    def active(self) -> TenantQuerySet:
        """Tenants the daily reconciliation bills."""
        return self.filter(is_active=True)


class Tenant(models.Model):
    """A customer organisation: what is billed."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    is_active = models.BooleanField(
        default=True, help_text="Inactive tenants are left out of the daily reconciliation."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["slug"], name="billing_tenant_slug_unique")]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's access to a tenant."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        """Manages the tenant's billing."""
        MEMBER = "member", "Member"
        """Sees the tenant's invoices and reports."""

    # Indexed by billing_membership_first (user, id), not a plain user index: every signed-in
    # request reads the user's first membership (saas.auth), and with only (user) the planner
    # could walk the primary key instead, filtering every membership, when its statistics
    # were off (seen: 1 ms per request after a bulk import).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["tenant", "user"]
        indexes = [models.Index(fields=["user", "id"], name="billing_membership_first")]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="billing_membership_unique"),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "member"]), name="billing_membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


class Plan(models.Model):
    """A price per billing interval."""

    class Interval(models.TextChoices):
        DAY = "day", "Daily"
        WEEK = "week", "Weekly"
        MONTH = "month", "Monthly"
        YEAR = "year", "Yearly"

    code = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    price = models.BigIntegerField(help_text="Per period, in minor units (cents).")
    currency = models.CharField(max_length=3, default="EUR", help_text="ISO 4217, e.g. EUR.")
    interval = models.CharField(max_length=10, choices=Interval.choices, default=Interval.MONTH)
    interval_count = models.PositiveSmallIntegerField(
        default=1, help_text="Periods last this many intervals."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["price", "code"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="billing_plan_code_unique"),
            models.CheckConstraint(
                condition=Q(price__gte=0),
                name="billing_plan_price_non_negative",
                violation_error_message="The price cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(interval_count__gte=1),
                name="billing_plan_interval_count_positive",
                violation_error_message="A period lasts at least one interval.",
            ),
            models.CheckConstraint(
                condition=Q(interval__in=list(periods.INTERVALS)),
                name="billing_plan_interval_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A tenant on a plan from `started_on` (the anchor of its periods) until `ends_on`."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        """A charge was declined; the invoice stays open."""
        CANCELLED = "cancelled", "Cancelled"
        """No period starting on or after `ends_on` is billed."""

    LIVE_STATUSES = (Status.ACTIVE, Status.PAST_DUE)

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    started_on = models.DateField(help_text="First billed day; every period is counted from it.")
    ends_on = models.DateField(
        null=True, blank=True, help_text="First day no longer billed (empty: open-ended)."
    )
    current_period_start = models.DateField()
    current_period_end = models.DateField(help_text="Inclusive.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["tenant", "-started_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(current_period_end__gte=F("current_period_start")),
                name="billing_subscription_valid_period",
            ),
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gt=F("started_on")),
                name="billing_subscription_ends_after_start",
                violation_error_message="The subscription must end after it starts.",
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | Q(ends_on__isnull=False),
                name="billing_subscription_cancelled_has_end",
                violation_error_message="A cancelled subscription needs the day it ends.",
            ),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status__in=["active", "past_due"]),
                name="billing_subscription_one_live_per_tenant",
                violation_error_message="This tenant already has an active or past-due "
                "subscription: cancel it first.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan}"

    def period_containing(self, day: date) -> periods.Period | None:
        return periods.period_containing(
            self.started_on, self.plan.interval, self.plan.interval_count, day
        )

    def period_ending_on(self, day: date) -> periods.Period | None:
        """The billed period whose last day is `day`, if there is one.

        Decided by dates only (never by the current status), so reconciling a past day gives
        the same answer whenever it runs.
        """
        period = periods.period_ending_on(
            self.started_on, self.plan.interval, self.plan.interval_count, day
        )
        if period is None or (self.ends_on is not None and period.start >= self.ends_on):
            return None
        return period


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def open(self) -> InvoiceQuerySet:
        return self.filter(status=Invoice.Status.OPEN)


class Invoice(models.Model):
    """What a tenant owes for one period; at most one per tenant and period."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        """Being prepared; not charged."""
        OPEN = "open", "Open"
        """Final and due: the reconciliation charges it."""
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        """Cancelled; never charged."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    period_start = models.DateField()
    period_end = models.DateField(help_text="Inclusive.")
    amount = models.BigIntegerField(help_text="In minor units (cents).")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    idempotency_key = models.CharField(
        max_length=200, help_text="invoice:<tenant>:<period start>/<period end>"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    paid_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-period_end", "tenant"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="billing_invoice_idempotency_key_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="billing_invoice_amount_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")),
                name="billing_invoice_valid_period",
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(paid_at__isnull=False),
                name="billing_invoice_paid_has_paid_at",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "period_end"], name="billing_invoice_due_idx")
        ]

    def __str__(self) -> str:
        return self.idempotency_key

    @property
    def period(self) -> periods.Period:
        return periods.Period(self.period_start, self.period_end)

    @property
    def charge_key(self) -> str:
        """The gateway idempotency key for charging this invoice: `charge:<tenant>:<period>`.

        Built from the invoice's natural key, never its database id: an id handed out in a
        transaction that rolled back is not handed out again, so a retry would re-create the
        invoice under a new id and charge it a second time.
        """
        return charge_key(self.tenant_id, self.period)


def invoice_key(tenant_id: int, period: periods.Period) -> str:
    return f"invoice:{tenant_id}:{period}"


def charge_key(tenant_id: int, period: periods.Period) -> str:
    return f"charge:{tenant_id}:{period}"


class Charge(models.Model):
    """Our record of one gateway charge of an invoice (succeeded or declined)."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        DECLINED = "declined", "Declined"
        """The gateway refused the payment; the invoice stays open."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="charges")
    gateway = models.CharField(max_length=100)
    gateway_reference = models.CharField(max_length=200, help_text="The gateway's charge id.")
    idempotency_key = models.CharField(max_length=200, help_text="charge:<tenant>:<period>")
    status = models.CharField(max_length=10, choices=Status.choices)
    amount = models.BigIntegerField(help_text="In minor units (cents).")
    currency = models.CharField(max_length=3)
    decline_code = models.CharField(max_length=100, blank=True)
    replayed = models.BooleanField(
        default=False,
        help_text="The gateway already had this charge: recorded by an attempt that rolled back.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="billing_charge_idempotency_key_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="billing_charge_amount_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} {self.status}"


class Discrepancy(models.Model):
    """Something the reconciliation found where our books and the gateway disagree."""

    class Kind(models.TextChoices):
        GATEWAY_PAID_INVOICE_OPEN = "gateway_paid", "Gateway charged, invoice was open"
        """Fixed: the charge is recorded and the invoice marked paid."""
        CHARGED_INVOICE_OPEN = "charged_open", "Charge recorded, invoice was open"
        """Fixed: the invoice is marked paid."""
        PAID_WITHOUT_CHARGE = "paid_no_charge", "Invoice paid without a charge"
        """Flagged for a person: nothing proves the money arrived."""
        CHARGE_CONFLICT = "conflict", "Gateway has the charge key with other parameters"
        """Flagged for a person: the amount changed after a charge attempt; not charged again."""

    class Resolution(models.TextChoices):
        FIXED = "fixed", "Fixed automatically"
        FLAGGED = "flagged", "Flagged for review"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="discrepancies")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    resolution = models.CharField(max_length=10, choices=Resolution.choices)
    detail = models.TextField(blank=True)
    found_on = models.DateField(help_text="The reconciled day that found it.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "discrepancies"
        constraints = [
            models.UniqueConstraint(fields=["invoice", "kind"], name="billing_discrepancy_unique")
        ]

    def __str__(self) -> str:
        return f"{self.invoice}: {self.get_kind_display()}"


class LedgerCharge(models.Model):
    """The LedgerGateway's own storage: what "the payment provider" has on record.

    Written only by billing.gateway.LedgerGateway, on a connection of its own that commits
    each charge at once (as a remote provider would), so a charge survives the rollback of
    the transaction that asked for it. No foreign key to our tables, on purpose.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        DECLINED = "declined", "Declined"

    reference = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=200)
    customer = models.CharField(max_length=200)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    decline_code = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "billing_ledger_charge"
        ordering = ["-created_at"]
        verbose_name = "ledger gateway charge"
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="billing_ledger_idempotency_key_unique"
            ),
            models.UniqueConstraint(fields=["reference"], name="billing_ledger_reference_unique"),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="billing_ledger_amount_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.idempotency_key}"


class ReportQuerySet(models.QuerySet["Report"]):
    def active(self) -> ReportQuerySet:
        """Reports still being made (they count against the per-tenant limit)."""
        return self.filter(state__in=[Report.State.PENDING, Report.State.RUNNING])


class Report(models.Model):
    """A tenant's monthly report: requested in the app, rendered to PDF by a job."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        """Requested; the job has not started yet."""
        RUNNING = "running", "In progress"
        READY = "ready", "Ready"
        """The PDF is stored and can be downloaded."""
        FAILED = "failed", "Failed"
        """`message` says why, in words for the user."""

    # No index of its own: UNIQUE(tenant, month) leads with it (one index less per report).
    # All on_delete in the database (Django refuses a mix on one model): see `run`.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.DB_CASCADE, related_name="reports", db_index=False
    )
    month = models.DateField(help_text="The first day of the reported month.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    run = models.ForeignKey(
        # DB_SET_NULL: pruning runs is one DELETE, with no query per referring model in Python.
        "jobs.JobRun",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    message = models.CharField(max_length=300, blank=True)
    file = models.CharField(max_length=300, blank=True, help_text="Path in the default storage.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "month"], name="billing_report_tenant_month_unique"
            ),
            models.CheckConstraint(
                condition=Q(month__day=1), name="billing_report_month_first_day"
            ),
        ]
        indexes = [
            # The per-tenant limit counts a tenant's reports in progress on every request.
            models.Index(
                fields=["tenant"],
                condition=Q(state__in=["pending", "running"]),
                name="billing_report_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.month:%Y-%m}"

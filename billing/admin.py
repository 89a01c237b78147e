"""Admin for billing: tenants, plans and subscriptions are edited here; invoices, charges,
discrepancies and the ledger are read-only records (the reconciliation writes them).

Every value is rendered through Django's escaping (no format_html of raw input, no
mark_safe), so a tenant named `<script>` shows as text.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing import services
from billing.models import (
    Charge,
    Discrepancy,
    Invoice,
    LedgerCharge,
    Membership,
    Plan,
    Report,
    Subscription,
    Tenant,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system: viewable and searchable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "price", "currency", "interval", "interval_count", "is_active"]
    list_filter = ["interval", "currency", "is_active"]
    search_fields = ["name", "code"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "plan",
        "status",
        "started_on",
        "ends_on",
        "current_period_start",
        "current_period_end",
    ]
    list_filter = ["status", "plan"]
    search_fields = ["tenant__name", "tenant__slug"]
    autocomplete_fields = ["tenant"]
    readonly_fields = ["current_period_start", "current_period_end", "created_at"]

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new subscription's current period is computed from its anchor by the service.
        created = services.subscription_create(
            tenant=obj.tenant,
            plan=obj.plan,
            started_on=obj.started_on,
            ends_on=obj.ends_on,
            status=obj.status,
        )
        obj.pk = created.pk
        obj.current_period_start = created.current_period_start
        obj.current_period_end = created.current_period_end


class ChargeInline(admin.TabularInline):
    model = Charge
    extra = 0
    can_delete = False
    fields = ["idempotency_key", "status", "amount", "currency", "gateway_reference", "replayed"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DiscrepancyInline(admin.TabularInline):
    model = Discrepancy
    extra = 0
    can_delete = False
    fields = ["kind", "resolution", "found_on", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = [
        "idempotency_key",
        "tenant",
        "period_start",
        "period_end",
        "amount",
        "currency",
        "status",
        "paid_at",
    ]
    list_filter = ["status", "currency", "period_end"]
    search_fields = ["idempotency_key", "tenant__name"]
    date_hierarchy = "period_end"
    list_select_related = ["tenant"]
    inlines = [ChargeInline, DiscrepancyInline]


@admin.register(Charge)
class ChargeAdmin(ReadOnlyAdmin):
    list_display = [
        "idempotency_key",
        "invoice",
        "status",
        "amount",
        "currency",
        "gateway",
        "gateway_reference",
        "replayed",
        "created_at",
    ]
    list_filter = ["status", "gateway", "replayed"]
    search_fields = ["idempotency_key", "gateway_reference", "invoice__idempotency_key"]
    list_select_related = ["invoice"]


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "kind", "resolution", "found_on", "created_at"]
    list_filter = ["kind", "resolution"]
    search_fields = ["invoice__idempotency_key", "detail"]
    list_select_related = ["invoice"]


@admin.register(LedgerCharge)
class LedgerChargeAdmin(ReadOnlyAdmin):
    """What the ledger gateway ("the provider") has on record, for comparing with Charges."""

    list_display = [
        "idempotency_key",
        "reference",
        "customer",
        "amount",
        "currency",
        "status",
        "created_at",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["idempotency_key", "reference", "customer"]


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    """Monthly reports as the tenants see them. Read-only, but an operator may delete one: the
    tenant's next press makes it again (following the month's run if it is still going)."""

    list_display = ["tenant", "month", "state", "message", "requested_by", "created_at", "run"]
    list_filter = ["state", "month"]
    search_fields = ["tenant__name", "tenant__slug"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "requested_by", "run"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("billing.delete_report"))

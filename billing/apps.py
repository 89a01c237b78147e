from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Tenants, subscriptions, invoices and the jobs that bill them."""

    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing import checks  # noqa: F401 - registers the system checks

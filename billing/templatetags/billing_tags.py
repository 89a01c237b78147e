from __future__ import annotations

from django import template

from billing.reports import money as format_money

register = template.Library()


@register.filter
def money(amount: int, currency: str) -> str:
    """Minor units as an amount: {{ invoice.amount|money:invoice.currency }} -> 49.00 EUR."""
    return format_money(int(amount), currency)

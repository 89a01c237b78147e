"""Bookkeeping statements commit without waiting for the WAL flush; nothing else does."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from jobs.db.connection import no_flush_wait

pytestmark = pytest.mark.django_db(transaction=True)


def setting_in_statement() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT current_setting('synchronous_commit') {no_flush_wait()}")  # noqa: S608
        return str(cursor.fetchone()[0])


def show_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_it_applies_to_its_own_statement_and_does_not_leak_into_the_session() -> None:
    assert setting_in_statement() == "off"
    assert show_setting() == "on", "later transactions (a job's own writes) wait for the flush"


def test_inside_a_transaction_it_is_nothing() -> None:
    # An atomic job records its outcome in the same transaction as its own writes, which must
    # be durable when the commit returns.
    with transaction.atomic():
        assert no_flush_wait() == ""
        assert setting_in_statement() == "on"

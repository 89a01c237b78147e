"""The statements every signed-in request and every report request run are prepared once per
connection (billing.db): planning them each time cost more than running them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from billing.db import fetch_prepared

pytestmark = pytest.mark.django_db


def prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_billing_statements_are_prepared_on_the_server() -> None:
    user = get_user_model().objects.create_user("prep", password="x")
    rows = fetch_prepared("SELECT username FROM auth_user WHERE id = %s", [user.pk])
    assert rows == [("prep",)]
    assert any("FROM auth_user WHERE id = $1" in s for s in prepared()), prepared()


def test_the_user_lookup_of_a_signed_in_request_is_prepared() -> None:
    from saas.auth import ModelBackend

    user = get_user_model().objects.create_user("prep2", password="x")
    assert ModelBackend().get_user(user.pk) == user
    assert any("member_tenant" in s or "billing_membership" in s for s in prepared()), prepared()

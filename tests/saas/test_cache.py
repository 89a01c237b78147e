"""Sessions live in Redis (cached_db): a Redis outage must not break logged-in pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings

from billing.models import Membership, Tenant

pytestmark = pytest.mark.django_db(transaction=True)

NO_REDIS = {
    "default": {
        "BACKEND": "saas.cache.ResilientRedisCache",
        # Nothing listens on port 1: every cache call fails to connect.
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


def test_sessions_are_read_from_redis() -> None:
    user = User.objects.create_user("alice", password="pw")
    client = Client()
    client.force_login(user)
    key = client.cookies["sessionid"].value
    assert cache.get(f"django.contrib.sessions.cached_db{key}") is not None


def test_logged_in_pages_work_while_redis_is_down() -> None:
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    user = User.objects.create_user("alice", password="pw")
    Membership.objects.create(user=user, tenant=tenant)
    with override_settings(CACHES=NO_REDIS):
        assert cache.get("anything", "default") == "default"
        cache.set("anything", 1)  # a failed write is skipped, not raised
        client = Client()
        assert client.login(username="alice", password="pw")
        page = client.get("/app/")
        assert page.status_code == 200 and b"Acme" in page.content

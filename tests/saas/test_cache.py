"""Sessions live in Redis (cached_db) when CACHE_URL is set; a Redis outage must not break
logged-in pages, and must not keep a logged-out session alive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings

from billing.models import Membership, Tenant
from saas.cache import ResilientRedisCache

pytestmark = pytest.mark.django_db(transaction=True)

NO_REDIS = {
    "default": {
        "BACKEND": "saas.cache.ResilientRedisCache",
        # Nothing listens on port 1: every cache call fails to connect.
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


@pytest.fixture
def redis_down() -> Iterator[None]:
    with override_settings(CACHES=NO_REDIS):
        yield
    ResilientRedisCache._down_until = 0.0  # the back-off is process-wide


@pytest.fixture
def alice() -> User:
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    user = User.objects.create_user("alice", password="pw")
    Membership.objects.create(user=user, tenant=tenant)
    return user


def test_sessions_are_read_from_redis(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    key = client.cookies["sessionid"].value
    assert cache.get(f"django.contrib.sessions.cached_db{key}") is not None


def test_reads_and_writes_become_misses_while_redis_is_down(redis_down: None) -> None:
    assert cache.get("anything", "default") == "default"
    cache.set("anything", 1)  # skipped, not raised
    assert ResilientRedisCache._down_until > 0, "reads back off after the failure"
    assert cache.get("anything", "default") == "default"


def test_logged_in_pages_work_while_redis_is_down(alice: User) -> None:
    client = Client()
    assert client.login(username="alice", password="pw")  # while Redis is up
    with override_settings(CACHES=NO_REDIS):
        page = client.get("/app/")
        assert page.status_code == 200 and b"Acme" in page.content
        assert client.post("/app/reports/", {"month": "2026-10"}).status_code == 202
    ResilientRedisCache._down_until = 0.0


def test_a_logout_that_cannot_drop_the_cached_session_fails(alice: User) -> None:
    client = Client()
    assert client.login(username="alice", password="pw")  # while Redis is up
    with override_settings(CACHES=NO_REDIS), pytest.raises(redis.RedisError):
        client.post("/accounts/logout/")
    ResilientRedisCache._down_until = 0.0
    # Once Redis is back, the logout can be done, and the session is gone.
    client.post("/accounts/logout/")
    assert client.get("/app/").status_code == 302

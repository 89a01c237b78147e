"""The two internals of Django's Redis cache that saas.cache relies on (see its docstring).

If one of these fails after a Django upgrade, saas.cache must follow the change (or drop its
client and pay for a new `redis.Redis` on every cache call)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from saas.cache import ResilientRedisCache, ReusingRedisCacheClient

URL = os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/13")


def test_the_backend_instantiates_the_client_class_set_as_its__class() -> None:
    assert RedisCache(URL, {})._class is RedisCacheClient
    backend = ResilientRedisCache(URL, {"OPTIONS": {"socket_timeout": 1}})
    client = backend._cache
    assert type(client) is ReusingRedisCacheClient
    assert client._pool_options["socket_timeout"] == 1, "OPTIONS still reach the client"


def test_djangos_client_wraps_the_pool_of__get_connection_pool_in_each_new_client() -> None:
    client = RedisCacheClient([URL])
    pool = client._get_connection_pool(True)
    assert isinstance(pool, redis.ConnectionPool)
    assert client._get_connection_pool(False) is pool, "one server: reads use the write pool"
    first, second = client.get_client(write=True), client.get_client(write=True)
    assert first is not second, "Django builds a client per call (else saas.cache can go)"
    assert first.connection_pool is pool and second.connection_pool is pool


def test_cache_calls_build_one_redis_client_not_one_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[Any] = []
    real_init = redis.Redis.__init__

    def counting_init(self: redis.Redis, *args: Any, **kwargs: Any) -> None:
        built.append(kwargs.get("connection_pool"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    backend = ResilientRedisCache(URL, {"KEY_PREFIX": "contract"})
    for n in range(20):
        backend.set("k", n)
        assert backend.get("k") == n
        assert backend.has_key("k")
    assert backend.delete("k") and backend.get("k") is None
    assert len(built) == 1, f"{len(built)} redis.Redis built for 62 cache calls"

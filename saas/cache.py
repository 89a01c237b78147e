"""Django's Redis cache, made cheaper per call and tolerant of a Redis outage.

Sessions are read through the cache (cached_db), so a Redis outage must not turn every
logged-in page into a 500: a failed read is a miss (the session comes from the database) and a
failed write is skipped (and the old value dropped, if Redis allows). After a failure, reads
leave Redis alone for a few seconds, so a Redis that stopped answering costs one timeout per
few seconds, not one per request. Deletes still raise: a logout whose
cached session could not be deleted must fail rather than leave a session that comes back with
Redis.

Django's client also builds a new `redis.Redis` for every call, and that object registers some
170 response callbacks in its constructor: 0.13 ms here against 0.05 ms for the GET round trip
itself (redis-py 8.1). Django's public options (`OPTIONS`: `pool_class`, `parser_class`,
`serializer` and the pool's keyword arguments) cannot change that: they shape the connection
pool, and the client is built around it afterwards. So this module keeps one `redis.Redis` per
connection pool (redis-py clients are thread-safe), through two internals of
django.core.cache.backends.redis, both there since Django 4.0:

* `RedisCache._class`, set in `RedisCache.__init__`: the client class that `RedisCache._cache`
  instantiates, Django's only way to choose it (its comment on `get_client(key, *, write)`
  expects custom cache clients, e.g. for sharding, but no setting names one);
* `RedisCacheClient._get_connection_pool(write)`: the pool (created once per server) that
  Django's own `get_client` wraps in a new `redis.Redis` on every call.

tests/saas/test_cache_contract.py fails if Django changes either.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)

BACK_OFF_SECONDS = 5.0


class ReusingRedisCacheClient(RedisCacheClient):
    """Django's Redis cache client, with one `redis.Redis` per connection pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[redis.ConnectionPool, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)  # type: ignore[no-untyped-call]  # Django internal
        client = self._clients.get(pool)
        if client is None:
            client = self._clients.setdefault(pool, redis.Redis(connection_pool=pool))
        return client


class ResilientRedisCache(RedisCache):
    # Process-wide: cache objects are per thread, an outage is not.
    _down_until = 0.0

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient  # Django internal: see the module docstring

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        if self._backing_off():
            return default
        try:
            return super().get(key, default, version)
        except redis.RedisError as exc:
            self._failed("read", exc)
            return default

    # Writes are rare (a session changes at login, logout, password change) and always tried:
    # a skipped write would leave the old value to be served once reads resume.
    def set(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> None:  # type: ignore[override]
        try:
            super().set(key, value, timeout, version)
        except redis.RedisError as exc:
            self._failed("write", exc)
            self._forget(key, version)

    def add(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> bool:  # type: ignore[override]
        try:
            return bool(super().add(key, value, timeout, version))
        except redis.RedisError as exc:
            self._failed("write", exc)
            return False

    def has_key(self, key: Any, version: int | None = None) -> bool:
        if self._backing_off():
            return False
        try:
            return bool(super().has_key(key, version))
        except redis.RedisError as exc:
            self._failed("read", exc)
            return False

    def _forget(self, key: Any, version: int | None) -> None:
        # A value that could not be replaced must not be served later as if it were current.
        try:
            super().delete(key, version)
        except redis.RedisError:
            logger.warning("cache: could not drop %r after a failed write either", key)

    def _backing_off(self) -> bool:
        return time.monotonic() < ResilientRedisCache._down_until

    def _failed(self, action: str, exc: Exception) -> None:
        ResilientRedisCache._down_until = time.monotonic() + BACK_OFF_SECONDS
        logger.warning(
            "cache %s failed, going on without the cache for %.0f s: %s",
            action,
            BACK_OFF_SECONDS,
            exc,
        )

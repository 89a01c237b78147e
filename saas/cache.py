"""Django's Redis cache, made cheaper per call and tolerant of a Redis outage.

Sessions are read through the cache (cached_db), so a Redis outage must not turn every
logged-in page into a 500: a failed read is a miss (the session comes from the database) and a
failed write is skipped (and the old value dropped, if Redis allows). After a failure, reads
leave Redis alone for a few seconds, so a Redis that stopped answering costs one timeout per
few seconds, not one per request. Deletes still raise: a logout whose
cached session could not be deleted must fail rather than leave a session that comes back with
Redis.

Django's client also builds a new `redis.Redis` for every call; that object registers some 170
response callbacks in its constructor (about 0.1 ms, a third of a session read), so this one
keeps one per connection pool. redis-py clients are thread-safe.
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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)  # type: ignore[no-untyped-call]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class ResilientRedisCache(RedisCache):
    # Process-wide: cache objects are per thread, an outage is not.
    _down_until = 0.0

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

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

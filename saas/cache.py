"""Django's Redis cache, made cheaper per call and tolerant of a Redis outage.

Sessions are read through the cache (cached_db), so a Redis outage must not turn every
logged-in page into a 500: a failed read is a miss (the session comes from the database) and a
failed write is skipped. The broker outage itself is handled by the jobs outbox.

Django's client also builds a new `redis.Redis` for every call; that object registers some 170
response callbacks in its constructor (about 0.1 ms, a third of a session read), so this one
keeps one per connection pool. redis-py clients are thread-safe.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)


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
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        try:
            return super().get(key, default, version)
        except redis.RedisError as exc:
            _warn("read", exc)
            return default

    def set(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> None:  # type: ignore[override]
        try:
            super().set(key, value, timeout, version)
        except redis.RedisError as exc:
            _warn("write", exc)

    def add(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> bool:  # type: ignore[override]
        try:
            return bool(super().add(key, value, timeout, version))
        except redis.RedisError as exc:
            _warn("write", exc)
            return False

    def delete(self, key: Any, version: int | None = None) -> bool:
        try:
            return bool(super().delete(key, version))
        except redis.RedisError as exc:
            _warn("delete", exc)
            return False

    def has_key(self, key: Any, version: int | None = None) -> bool:
        try:
            return bool(super().has_key(key, version))
        except redis.RedisError as exc:
            _warn("read", exc)
            return False


def _warn(action: str, exc: Exception) -> None:
    logger.warning("cache %s failed, going on without the cache: %s", action, exc)

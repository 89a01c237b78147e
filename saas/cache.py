"""A Redis cache that degrades to misses when Redis is down.

Sessions are read through the cache (cached_db), so a Redis outage must not turn every
logged-in page into a 500: a failed read is a miss (the session comes from the database) and a
failed write is skipped. The broker outage itself is handled by the jobs outbox.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)


class ResilientRedisCache(RedisCache):
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

"""Django's Redis cache that survives Redis being away: an error is logged and reads as a miss.

The cache is an optimisation here and never the truth: waffle keeps its flags in it and flushes
them on commit after every flag save, and flag evaluation reads each process's snapshot, not
Redis. With the plain backend a stopped Redis turned committed flag writes into 500s (waffle's
flush raised after the commit). django-redis has IGNORE_EXCEPTIONS for this; Django's own backend
has no such switch, hence this subclass.
"""

import logging
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def _failed(operation: str, exc: RedisError) -> None:
    logger.warning("cache %s failed, carrying on without the cache: %s", operation, exc)


class TolerantRedisCache(RedisCache):
    def add(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> bool:
        try:
            return super().add(key, value, timeout, version)
        except RedisError as exc:
            _failed("add", exc)
            return False

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        try:
            return super().get(key, default, version)
        except RedisError as exc:
            _failed("get", exc)
            return default

    def set(self, key: Any, value: Any, timeout: Any = None, version: int | None = None) -> None:
        try:
            super().set(key, value, timeout, version)
        except RedisError as exc:
            _failed("set", exc)

    def touch(self, key: Any, timeout: Any = None, version: int | None = None) -> bool:
        try:
            return super().touch(key, timeout, version)
        except RedisError as exc:
            _failed("touch", exc)
            return False

    def delete(self, key: Any, version: int | None = None) -> bool:
        try:
            return super().delete(key, version)
        except RedisError as exc:
            _failed("delete", exc)
            return False

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        try:
            return super().get_many(keys, version)
        except RedisError as exc:
            _failed("get_many", exc)
            return {}

    def has_key(self, key: Any, version: int | None = None) -> bool:
        try:
            return super().has_key(key, version)
        except RedisError as exc:
            _failed("has_key", exc)
            return False

    def set_many(self, data: Any, timeout: Any = None, version: int | None = None) -> list[Any]:
        try:
            return super().set_many(data, timeout, version)
        except RedisError as exc:
            _failed("set_many", exc)
            return list(data)  # Django's contract: the keys that were not set

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        try:
            super().delete_many(keys, version)
        except RedisError as exc:
            _failed("delete_many", exc)

    def clear(self) -> bool:
        try:
            return super().clear()
        except RedisError as exc:
            _failed("clear", exc)
            return False

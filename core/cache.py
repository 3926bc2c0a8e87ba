"""Django's Redis cache, made to degrade instead of fail (and to reuse its client objects): the cache holds marks and counters that save work (a Stripe
coupon already created, a session re-read a moment ago, throttle and login counters), never data. While Redis is
down every read misses and every write is dropped, so a checkout or a webhook never fails for want of it."""

import logging

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class _ClientReusingRedisCacheClient(RedisCacheClient):
    """Django builds a new redis.Redis object for every cache call, and each one fills a dict of ~170 response
    callbacks: half a millisecond a checkout. One client per connection pool does the same work."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class DegradingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ClientReusingRedisCacheClient

    def _degrade(self, operation: str, fallback):
        logger.warning("Cache %s skipped: Redis unavailable", operation)
        return fallback

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except REDIS_DOWN:
            return self._degrade("get", default)

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except REDIS_DOWN:
            return self._degrade("get_many", {})

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except REDIS_DOWN:
            return self._degrade("has_key", False)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # True: the caller proceeds as if it held the mark (it does the work the mark would have saved).
        try:
            return super().add(key, value, timeout, version)
        except REDIS_DOWN:
            return self._degrade("add", True)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set(key, value, timeout, version)
        except REDIS_DOWN:
            return self._degrade("set", None)

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except REDIS_DOWN:
            return self._degrade("delete", False)

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except REDIS_DOWN:
            raise ValueError("Redis unavailable: counter not kept") from None

    def clear(self):
        try:
            return super().clear()
        except REDIS_DOWN:
            return self._degrade("clear", False)

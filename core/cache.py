"""Django's Redis cache, made to degrade instead of fail, with one Redis client per connection pool.

The cache holds marks and counters that save work (a Stripe coupon already created, a session re-read a moment ago,
the password-reset counters), never data. While Redis is down every read misses and every write is dropped, so a
checkout or a webhook never fails for want of it."""

import logging

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class _ClientReusingRedisCacheClient(RedisCacheClient):
    """Django's client builds a new redis.Redis for every cache call, and redis-py fills each one's table of ~170
    response callbacks; this keeps one per connection pool.

    Measured for issue 11 by bench/micro_optimisations.py, both clients alternating in one process against one
    Redis: a cache.get costs 0.19 million instructions with this client and 0.91 million with Django's (4.7x). A
    checkout makes two cache calls: 26.9 against 28.3 million instructions in-process (+5.3 %); a poll of a pending
    session past the re-read mark makes one (add). End to end through gunicorn and the sandbox, 400 checkouts each
    interleaved, Django's client made a checkout 1.6 % slower (median of the paired ratios; 95 % interval 0.8-3.8 %,
    35.3 against 36.1 ms; 4.8 % in a run on a busier machine). django-redis also keeps one client per pool (0.44 million
    instructions a get and a set, against 0.45 here), but its outage mode does not suit our callers (see
    DegradingRedisCache). The price: private members of Django's backend are used (RedisCacheClient's
    `_get_connection_pool` and `_client`, RedisCache's `_class` below); tests/test_cache_backend.py fails if a Django
    upgrade moves them."""

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
    """Each operation with Redis down: reads miss (the default), writes are dropped and `add` answers True, each
    logged as a warning; `incr` raises ValueError. Only connection and timeout errors degrade; any other Redis error
    raises.

    django-redis's IGNORE_EXCEPTIONS mode was weighed against this (issue 11): it answers None for add, incr,
    has_key and delete. None from add would make checkout_session_refresh believe another process holds the re-read
    mark, so a paid session whose webhook is late would never be re-read from the success page; None from incr
    would make password_reset_request_allowed compare None with its limit (a TypeError, a 500). It also swallows
    Redis's ResponseError."""

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
            # Django's own answer for a counter that is not there: callers catch it (a key that expired) and decide.
            raise ValueError("Redis unavailable: counter not kept") from None

    def clear(self):
        try:
            return super().clear()
        except REDIS_DOWN:
            return self._degrade("clear", False)

"""Per-client-IP throttling shared by every worker: one Redis round trip a request, failing open if Redis is down."""

import functools
import logging
import time

import redis
from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=2)
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


class ClientIpThrottle(SimpleRateThrottle):
    """A fixed-window counter per scope and client IP (DRF's `get_ident`, which honours NUM_PROXIES).

    DRF's own throttle keeps a list of timestamps in the cache: a read and a write per request. With Redis we count
    with INCR and EXPIRE in one pipelined round trip instead; without Redis (development, tests) DRF's version over
    the local cache is used. A Redis outage lets requests through rather than failing checkouts.
    """

    def get_rate(self):
        # Read at request time, not import time, so a changed setting applies.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view):
        if not settings.REDIS_URL:
            return super().allow_request(request, view)
        now = time.time()
        window = int(now // self.duration)
        key = f"throttle:{self.scope}:{self.get_ident(request)}:{window}"
        self._window_ends = (window + 1) * self.duration
        self._now = now
        try:
            pipeline = _redis_client(settings.REDIS_URL).pipeline(transaction=False)
            pipeline.incr(key)
            pipeline.expire(key, self.duration + 1)
            count, _ = pipeline.execute()
        except redis.RedisError:
            logger.warning("Throttling skipped: Redis unavailable")
            return True
        return count <= self.num_requests

    def wait(self):
        if not settings.REDIS_URL:
            return super().wait()
        return max(self._window_ends - self._now, 1)

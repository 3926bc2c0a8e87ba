"""core.cache.DegradingRedisCache against a real redis-server of its own: one Redis client per connection pool, and
what each operation answers once that server is stopped (the semantics its callers were written for)."""

import logging
import shutil

import pytest
import redis
from django.test import RequestFactory

from core.cache import DegradingRedisCache
from tests.e2e.conftest import Redis, free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")


@pytest.fixture
def redis_server():
    server = Redis(port=free_port())
    server.start()
    yield server
    server.stop()


def cache_at(url: str) -> DegradingRedisCache:
    return DegradingRedisCache(url, {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}})


def test_the_cache_builds_one_redis_client_per_pool_not_one_per_call(redis_server, monkeypatch):
    # Django's stock backend builds a redis.Redis (and its ~170 response callbacks) for every call; ours keeps one.
    # This fails if a Django upgrade moves the internals core.cache overrides and the override stops applying.
    built = []
    original_init = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting_init)
    cache = cache_at(redis_server.url)

    for n in range(5):
        cache.set(f"key-{n}", n, 60)
        assert cache.get(f"key-{n}") == n
    assert cache.add("counter", 0, 60) is True
    assert cache.incr("counter") == 1

    assert len(built) == 1


def test_while_redis_is_stopped_each_operation_degrades_as_its_callers_expect(redis_server, caplog):
    cache = cache_at(redis_server.url)
    cache.set("mark", True, 60)
    assert cache.get("mark") is True
    redis_server.stop()

    with caplog.at_level(logging.WARNING, logger="core.cache"):
        assert cache.get("mark", "missed") == "missed"
        assert cache.get_many(["mark"]) == {}
        assert cache.has_key("mark") is False
        assert cache.set("mark", True, 60) is None
        assert cache.delete("mark") is False
        # add: True, so a caller that takes the mark does the work it would have saved (re-reading Stripe) instead
        # of believing another process holds it.
        assert cache.add("checkout-refresh:cs_1", True, 5) is True
        with pytest.raises(ValueError, match="Redis unavailable"):
            cache.incr("password-reset:address:a@example.com:1")

    assert [record.getMessage() for record in caplog.records] == [
        f"Cache {operation} skipped: Redis unavailable"
        for operation in ("get", "get_many", "has_key", "set", "delete", "add")
    ]


@pytest.mark.django_db
def test_password_reset_requests_go_through_while_redis_is_stopped(redis_server, settings):
    from accounts.forms import password_reset_request_allowed

    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.DegradingRedisCache",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    redis_server.stop()

    allowed = [
        password_reset_request_allowed(RequestFactory().post("/", REMOTE_ADDR="10.0.0.9"), "a@example.com")
        for _ in range(settings.PASSWORD_RESET_MAX_PER_ADDRESS + 2)
    ]

    # incr's ValueError is what the counter's caller catches (as for a key that expired): the request counts as the
    # first, and no reset request fails with a 500 for want of Redis.
    assert allowed == [True] * (settings.PASSWORD_RESET_MAX_PER_ADDRESS + 2)

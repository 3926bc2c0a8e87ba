"""/api/ready/: the database, Redis (the cache) and the Celery broker, each checked; 503 naming what failed."""

import socket
import threading
import time

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a Redis server (REDIS_URL)")


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: connections to it are refused


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers, as a hung Redis does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def point_redis_at(settings, url: str) -> None:
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    settings.CELERY_BROKER_URL = url


@needs_redis
def test_with_everything_up_it_answers_200_with_each_check(client):
    response = client.get("/api/ready/")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "broker": "ok"}}


@needs_redis
def test_with_redis_at_a_dead_port_it_answers_503_naming_redis_and_the_broker(client, settings):
    point_redis_at(settings, f"redis://127.0.0.1:{dead_port()}/0")

    response = client.get("/api/ready/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("failed: ")
    assert body["checks"]["broker"].startswith("failed: ")
    assert "127.0.0.1" not in response.content.decode()  # no addresses or error texts for an unauthenticated caller


@needs_redis
def test_a_redis_that_hangs_is_reported_within_two_seconds(client, settings, silent_server):
    point_redis_at(settings, f"redis://127.0.0.1:{silent_server}/0")

    started = time.monotonic()
    response = client.get("/api/ready/")
    elapsed = time.monotonic() - started

    print(f"readiness with a hung Redis answered in {elapsed:.2f} s")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] in ("timeout", "failed: TimeoutError")
    assert response.json()["checks"]["broker"] != "ok"
    assert elapsed < 2.0


def test_without_redis_configured_the_in_process_setup_is_ready(client, settings):
    # `make run`: local-memory cache, tasks in-process
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CELERY_BROKER_URL = "memory://"

    response = client.get("/api/ready/")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "not used", "broker": "not used"}


def test_readiness_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/ready/"]["get"]
    assert {"200", "503"} <= operation["responses"].keys()

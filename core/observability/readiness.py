"""Readiness: can this instance do its work now? The database, Redis (the cache) and the Celery broker, each asked
at once in a thread of its own with short timeouts, so the answer comes within CHECK_DEADLINE_SECONDS whatever hangs."""

import concurrent.futures
import logging
import time

from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections

# Each dependency gets this long to connect and to answer; all are asked at once, so a probe's total stays under it
# plus the thread start-up, far below the 2 s a probe may take.
logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 0.5
CHECK_DEADLINE_SECONDS = 1.5


def _database() -> str:
    # A connection of its own, opened for this check and closed after it: a database that accepts no new connection
    # is not ready either, and a hung one costs this thread, not a connection the request threads use.
    connection = connections.create_connection(DEFAULT_DB_ALIAS)
    if connection.vendor == "postgresql":
        options = {**connection.settings_dict.get("OPTIONS", {}), "connect_timeout": 1}
        connection.settings_dict = {**connection.settings_dict, "OPTIONS": options}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()
    return "ok"


def _redis() -> str:
    cache = caches["default"]
    client_factory = getattr(cache, "_cache", None)
    if client_factory is None or not hasattr(client_factory, "get_client"):
        return "not used"  # local memory cache (`make run`): nothing to reach
    client_factory.get_client(write=True).ping()  # the cache's own pool and socket timeouts
    return "ok"


def _broker() -> str:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return "not used"  # tasks run in-process
    options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "socket_connect_timeout": CHECK_TIMEOUT_SECONDS,
        "socket_timeout": CHECK_TIMEOUT_SECONDS,
        "max_retries": 0,
    }
    with Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS, transport_options=options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=CHECK_TIMEOUT_SECONDS)
        client = getattr(connection.default_channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()  # Redis as the broker: a round trip, not just an open socket
    return "ok"


CHECKS = {"database": _database, "redis": _redis, "broker": _broker}


def readiness_check() -> tuple[bool, dict[str, str]]:
    """(all passed, {check: "ok" | "not used" | "failed: <error type>" | "timeout"}). Error texts stay in the logs,
    not in the answer: it is served without authentication."""
    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readiness")
    futures = {name: pool.submit(check) for name, check in CHECKS.items()}
    results = {}
    for name, future in futures.items():
        remaining = max(CHECK_DEADLINE_SECONDS - (time.monotonic() - started), 0.0)
        try:
            results[name] = future.result(timeout=remaining)
        except concurrent.futures.TimeoutError:
            results[name] = "timeout"
            logger.warning("Not ready: %s did not answer within %s s", name, CHECK_DEADLINE_SECONDS)
        except Exception as error:  # any failure means "not ready", never a traceback
            results[name] = f"failed: {type(error).__name__}"
            logger.warning("Not ready: %s failed: %s", name, error)
    pool.shutdown(wait=False)  # a check past the deadline ends on its own socket timeout
    return all(value in ("ok", "not used") for value in results.values()), results

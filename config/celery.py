"""The Celery application: configuration from Django settings (CELERY_*), JSON only, tasks found in every app, and the
worker's consumer with a guard that keeps a Redis outage from ending the worker (see RecoveringConsumer)."""

import logging
import os

from celery import Celery
from celery.worker.consumer import Consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

logger = logging.getLogger(__name__)


class RecoveringConsumer(Consumer):
    """Celery's consumer, but a lost broker connection that cannot be closed cleanly does not end the worker.

    celery 5.7.0 (https://github.com/celery/celery/pull/10242, for https://github.com/celery/celery/issues/9705)
    closes the broken connection after `collect()` has already detached it from its transport. With Redis down while
    the worker holds unacknowledged messages (countdowns, acks_late), kombu 5.7.0's Redis channel, whose first close
    was cut short by the dead socket, is closed a second time and tries to restore those messages through a transport
    that no longer has a client: `AttributeError: 'NoneType' object has no attribute 'hostname'` in
    `QoS.restore_unacked`, which celery does not expect and treats as unrecoverable, so the worker exits.

    Nothing is lost by going on: Redis could not take the messages back anyway (it is down). They stay in Redis's
    unacked set, if Redis kept its data, until the visibility timeout hands them out again, and the outbox sweeper
    sends every job and e-mail that waited too long in any case; the tasks claim their rows, so a duplicate is a no-op.
    The next attempt to connect starts from a fresh connection, as celery intends.

    Remove once a celery or kombu release closes a collected connection without raising (tests/e2e/
    test_worker_recovery.py fails without this guard; it must keep passing without it).
    """

    def on_connection_error_after_connected(self, exc):
        connection = self.connection
        if connection is not None:
            close = connection.close

            def close_collected_connection() -> None:
                try:
                    close()
                except AttributeError as error:
                    logger.warning("The lost broker connection could not be closed cleanly (%r); its unacknowledged "
                                   "messages stay with the broker, the worker reconnects", error)

            # Only this connection object, which celery drops right after closing it.
            connection.close = close_collected_connection
        super().on_connection_error_after_connected(exc)


app = Celery("checkout_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.worker_consumer = f"{__name__}:{RecoveringConsumer.__name__}"
app.autodiscover_tasks()

# --- What operators see (core/observability/, README: Operations) ---------------------------------------------------------
from celery.signals import setup_logging  # noqa: E402

from core.observability.celery_hooks import celery_signals_connect  # noqa: E402

# A task's log lines carry the id of the request that sent it; workers leave a heartbeat for /metrics.
celery_signals_connect()


@setup_logging.connect(weak=False)
def _logging_from_django_settings(**kwargs):
    """Workers and beat log as the web does (LOGGING: LOG_FORMAT, LOG_LEVEL, the request id), not in Celery's own
    format; connecting this receiver is what stops Celery from configuring logging itself."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)

"""The Celery application: configuration from Django settings (CELERY_*), JSON only, tasks found in every app, and the
worker's consumer with a guard that keeps a Redis outage from ending the worker (see RecoveringConsumer)."""

import logging
import os
from functools import wraps

from celery import Celery
from celery.worker.consumer import Consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

logger = logging.getLogger(__name__)


def _is_detached_transport_error(error: BaseException) -> bool:
    """The one failure the guards below tolerate: kombu's Redis channel building a connection pool from a transport
    that its connection already gave up (`transport.client` is None), i.e. `AttributeError: 'NoneType' object has no
    attribute 'hostname'` in `Channel._connparams`. Any other AttributeError is a bug and still ends the worker."""
    return isinstance(error, AttributeError) and error.name == "hostname" and error.obj is None


class RecoveringConsumer(Consumer):
    """Celery's consumer, but a lost broker connection that cannot be closed cleanly, or a message of that connection
    that can no longer be acknowledged, does not end the worker.

    celery 5.7.0 (https://github.com/celery/celery/pull/10242, for https://github.com/celery/celery/issues/9705)
    closes the broken connection after `collect()` has already detached it from its transport. With Redis down while
    the worker holds unacknowledged messages (countdowns, acks_late), kombu 5.7.0's Redis channel, whose first close
    was cut short by the dead socket (a BRPOP was in flight), is closed a second time: it drops its connection pool and
    tries to restore those messages through a transport that no longer has a client: `AttributeError: 'NoneType'
    object has no attribute 'hostname'` in `QoS.restore_unacked`, which celery does not expect and treats as
    unrecoverable, so the worker exits.

    The same channel stays without a pool and without a client for good, and the messages it delivered still refer to
    it. A task that was running through the outage (acks_late) finishes, and once the worker has reconnected its
    acknowledgement goes to that channel: `QoS.ack` -> `_remove_from_indices` -> `conn_or_acquire` -> the same
    AttributeError, raised from the event loop, and the worker exits again (a reject, on a lost child, takes the same
    way). So the channel that held the task messages acknowledges and rejects through a guard too.

    Nothing is lost by going on: a connection celery has given up cannot reach Redis again, so the acknowledgement is
    not made; the message stays in Redis's unacked set (if Redis kept its data) until the visibility timeout
    (CELERY_VISIBILITY_TIMEOUT) hands it out again, and its task then finds its row done: the job and e-mail tasks claim
    their row with a conditional UPDATE that a finished job or a sent e-mail does not match, billing actions return
    once they left `requested` (Stripe's idempotency key covers the call), and the sweeps only act on what is due. A
    message that could not be restored on close is in the same place. The outbox sweeper sends every job and e-mail
    that waited too long in any case. The next attempt to connect starts from a fresh connection and channel, as
    celery intends.

    Remove once a celery or kombu release closes a collected connection and its channels without raising
    (tests/e2e/test_worker_recovery.py fails without this guard; it must keep passing without it).
    """

    def on_connection_error_after_connected(self, exc):
        connection = self.connection
        if connection is not None:
            close = connection.close

            def close_collected_connection() -> None:
                try:
                    close()
                except AttributeError as error:
                    if not _is_detached_transport_error(error):
                        raise
                    logger.warning(
                        "The lost broker connection could not be closed cleanly (%r); its unacknowledged "
                        "messages stay with the broker, the worker reconnects",
                        error,
                    )

            # Only this connection object, which celery drops right after closing it.
            connection.close = close_collected_connection
        task_consumer = getattr(self, "task_consumer", None)
        channel = getattr(task_consumer, "channel", None)
        if channel is not None:
            # Only the channel of this connection (it is never used again but by the messages it delivered).
            channel.basic_ack = _settle_unless_transport_detached(channel.basic_ack, "acknowledged")
            channel.basic_reject = _settle_unless_transport_detached(channel.basic_reject, "rejected")
        super().on_connection_error_after_connected(exc)


def _settle_unless_transport_detached(settle, what: str):
    """`settle` (a lost channel's basic_ack or basic_reject), tolerating only the detached-transport error."""

    @wraps(settle)
    def settle_unless_transport_detached(delivery_tag, *args, **kwargs):
        try:
            return settle(delivery_tag, *args, **kwargs)
        except AttributeError as error:
            if not _is_detached_transport_error(error):
                raise
            logger.warning(
                "Message %s could not be %s: its broker connection was lost and closed (%r); it stays "
                "in the broker's unacked set and is delivered again after the visibility timeout",
                delivery_tag,
                what,
                error,
            )

    return settle_unless_transport_detached


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

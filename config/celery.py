"""The Celery application: configuration from Django settings (CELERY_*), JSON only, tasks found in every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("checkout_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
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

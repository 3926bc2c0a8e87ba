"""The Celery application: configuration from Django settings (CELERY_*), JSON only, tasks found in every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("checkout_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

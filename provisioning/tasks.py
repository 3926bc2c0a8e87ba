"""Celery tasks of provisioning. The fulfilment tasks arrive with the webhook work; this one proves the wiring."""

from celery import shared_task


@shared_task(name="provisioning.ping")
def ping() -> str:
    return "pong"

"""Celery tasks of provisioning. Each takes an id and calls one service; the services make a repeated or late
delivery harmless (a conditional UPDATE claims the row), so acks_late with reject_on_worker_lost is safe: a worker
killed mid-task gives its message back instead of losing it."""

from celery import shared_task

from provisioning.outbox import EMAIL_SEND_TASK, JOB_RUN_TASK
from provisioning.services import email_notification_send, provisioning_job_run, provisioning_outbox_sweep


@shared_task(name=JOB_RUN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def provisioning_job_run_task(job_id: int) -> str | None:
    job = provisioning_job_run(job_id=job_id)
    return job.status if job else None


@shared_task(name=EMAIL_SEND_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def email_notification_send_task(email_id: int) -> str | None:
    notification = email_notification_send(email_id=email_id)
    return notification.status if notification else None


@shared_task(name="provisioning.outbox_sweep", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def provisioning_outbox_sweep_task() -> dict[str, int]:
    return provisioning_outbox_sweep()

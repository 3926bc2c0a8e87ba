"""Celery tasks of billing: each takes an id (or nothing) and calls one service; the services make a repeated or
late delivery harmless."""

from celery import shared_task

from billing.services import ACTION_PERFORM_TASK, billing_action_perform, billing_sweep


@shared_task(name=ACTION_PERFORM_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def billing_action_perform_task(action_id: int) -> str:
    return billing_action_perform(action_id=action_id).status


@shared_task(name="billing.sweep", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def billing_sweep_task() -> dict[str, int]:
    return billing_sweep()

"""Sending tasks with the broker down: nothing raises into the caller, the rows wait, and the sweeper sends them
once the broker is back. The broker here is real: a Redis URL on a port where nothing listens."""

import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from provisioning.models import EmailNotification, EmailPurpose, ProvisioningJob
from provisioning.services import email_notification_create, provisioning_job_create, provisioning_outbox_sweep
from tests.accounts.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def test_with_the_broker_unreachable_fulfilment_still_commits_and_the_work_waits(
    unreachable_broker, django_capture_on_commit_callbacks, caplog
):
    subscription = SubscriptionFactory()
    started = time.monotonic()

    with (
        caplog.at_level(logging.WARNING, logger="provisioning.outbox"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        job = provisioning_job_create(subscription=subscription)
        email = email_notification_create(
            checkout_session=subscription.checkout_session,
            purpose=EmailPurpose.ORDER_CONFIRMATION,
            to=subscription.customer.email,
        )

    assert time.monotonic() - started < 5
    job.refresh_from_db()
    email.refresh_from_db()
    assert (job.status, job.attempts, job.enqueued_at) == ("pending", 0, None)
    assert (email.status, email.attempts, email.enqueued_at) == ("pending", 0, None)
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        message.startswith(f"provisioning.job_run({job.pk}) not sent: the broker is unreachable")
        for message in messages
    )
    # The e-mail's send right after is not made to wait for the broker's timeouts again.
    assert (
        f"provisioning.email_send({email.pk}) not sent: the broker failed moments ago; the sweeper will send it"
        in messages
    )


def test_once_the_broker_is_back_the_sweeper_runs_the_waiting_job_exactly_once(
    unreachable_broker, django_capture_on_commit_callbacks
):
    subscription = SubscriptionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        job = provisioning_job_create(subscription=subscription)
    assert ProvisioningJob.objects.get().status == "pending"

    celery_app.set_current()  # the broker is back (tasks run in-process from here)
    ProvisioningJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        first = provisioning_outbox_sweep()
        second = provisioning_outbox_sweep()

    job.refresh_from_db()
    assert (first["jobs_sent"], second["jobs_sent"]) == (1, 0)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert EmailNotification.objects.get().status == "sent"


def test_a_new_process_knows_every_task_the_services_send_by_name():
    # The outbox and billing send tasks by name from Celery's registry; a process that had not imported the tasks
    # (gunicorn, `make run`) would log a KeyError for each. django.setup() alone must register them (apps' ready()).
    program = (
        "import django; django.setup()\n"
        "from celery import current_app\n"
        "from billing.services import ACTION_PERFORM_TASK\n"
        "from provisioning.outbox import EMAIL_SEND_TASK, JOB_RUN_TASK\n"
        "print(sorted(n for n in (ACTION_PERFORM_TASK, EMAIL_SEND_TASK, JOB_RUN_TASK) if n in current_app.tasks))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip().splitlines()[-1]
        == "['billing.action_perform', 'provisioning.email_send', 'provisioning.job_run']"
    )

"""The outbox sweeper: sends again what waited too long for its task, and nothing else."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone

from provisioning.models import (
    EmailNotification,
    EmailStatus,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.services import provisioning_outbox_sweep
from provisioning.tasks import provisioning_outbox_sweep_task
from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db


def ago(**delta) -> timezone.datetime:
    return timezone.now() - timedelta(**delta)


def job_made(minutes_ago: float = 2, **fields) -> ProvisioningJob:
    """A job written `minutes_ago` (created_at is set on insert, so it is moved back afterwards)."""
    job = ProvisioningJobFactory(**fields)
    ProvisioningJob.objects.filter(pk=job.pk).update(created_at=ago(minutes=minutes_ago))
    job.refresh_from_db()
    return job


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    def run() -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            return provisioning_outbox_sweep_task.delay().get()

    return run


def test_beat_runs_the_sweep_task_every_thirty_seconds():
    entry = django_settings.CELERY_BEAT_SCHEDULE["provisioning-outbox-sweep"]

    assert (entry["task"], entry["schedule"]) == (provisioning_outbox_sweep_task.name, 30.0)


def test_a_pending_job_whose_task_never_left_is_sent_and_runs(sweep):
    job = job_made(minutes_ago=2, enqueued_at=None)

    result = sweep()

    job.refresh_from_db()
    assert result == {"jobs_sent": 1, "emails_sent": 0, "jobs_failed": 0}
    assert (job.status, job.attempts) == ("succeeded", 1)


def test_a_job_whose_task_was_sent_long_ago_and_lost_is_sent_again(sweep):
    job = job_made(minutes_ago=10, enqueued_at=ago(minutes=5))

    sweep()

    job.refresh_from_db()
    assert job.status == "succeeded"


def test_a_due_retry_whose_message_was_lost_is_sent_again(sweep):
    job = job_made(
        minutes_ago=10,
        status=ProvisioningJobStatus.RETRYING,
        attempts=1,
        enqueued_at=ago(minutes=5),
        next_attempt_at=ago(minutes=1),
    )

    sweep()

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)


def test_a_running_job_whose_worker_died_runs_again_once_its_lease_expired(sweep):
    job = job_made(
        minutes_ago=10,
        status=ProvisioningJobStatus.RUNNING,
        attempts=1,
        enqueued_at=ago(minutes=10),
        started_at=ago(minutes=10),
        lease_expires_at=ago(seconds=1),
    )
    ProvisioningAttempt.objects.create(job=job, number=1, started_at=ago(minutes=10))

    sweep()

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert job.attempt_log.get(number=1).error.startswith("abandoned")


def test_a_job_abandoned_on_its_last_attempt_is_failed_and_staff_alerted(sweep):
    job = job_made(
        minutes_ago=10,
        status=ProvisioningJobStatus.RUNNING,
        attempts=5,
        max_attempts=5,
        enqueued_at=ago(minutes=10),
        lease_expires_at=ago(seconds=1),
    )
    ProvisioningAttempt.objects.create(job=job, number=5, started_at=ago(minutes=6))

    result = sweep()

    job.refresh_from_db()
    assert result["jobs_failed"] == 1
    assert (job.status, job.attempts) == ("failed", 5)
    assert job.last_error.startswith("abandoned") and job.finished_at is not None
    assert job.attempt_log.get(number=5).finished_at is not None
    [alert] = mail.outbox
    assert alert.to == ["staff@migrahosting.test"] and f"job {job.pk}" in alert.subject


def test_fresh_waiting_running_and_finished_jobs_are_left_alone(sweep):
    jobs = [
        ProvisioningJobFactory(),  # just written: its on-commit send is on the way
        job_made(minutes_ago=10, enqueued_at=ago(seconds=5)),  # sent moments ago, still queued
        job_made(
            minutes_ago=10,
            status=ProvisioningJobStatus.RETRYING,
            attempts=1,
            enqueued_at=ago(minutes=1),
            next_attempt_at=timezone.now() + timedelta(minutes=5),
        ),  # its retry is not due
        job_made(
            minutes_ago=10,
            status=ProvisioningJobStatus.RETRYING,
            attempts=1,
            enqueued_at=ago(minutes=1),
            next_attempt_at=ago(seconds=5),
        ),  # due just now: its countdown message is being delivered
        job_made(
            minutes_ago=10,
            status=ProvisioningJobStatus.RUNNING,
            attempts=1,
            enqueued_at=ago(minutes=10),
            lease_expires_at=timezone.now() + timedelta(minutes=1),
        ),  # a worker holds it
        job_made(minutes_ago=10, status=ProvisioningJobStatus.SUCCEEDED, attempts=1),
        job_made(minutes_ago=10, status=ProvisioningJobStatus.FAILED, attempts=5),
    ]
    before = list(ProvisioningJob.objects.order_by("pk").values())

    result = sweep()

    assert result == {"jobs_sent": 0, "emails_sent": 0, "jobs_failed": 0}
    assert list(ProvisioningJob.objects.order_by("pk").values()) == before
    assert len(before) == len(jobs)


def test_pending_emails_and_one_handed_over_by_a_worker_that_died_are_sent(sweep):
    waiting = EmailNotificationFactory()
    stuck = EmailNotificationFactory(
        status=EmailStatus.SENDING, attempts=1, lease_expires_at=ago(minutes=25), handed_over_at=ago(minutes=25)
    )
    fresh = EmailNotificationFactory()
    EmailNotification.objects.filter(pk__in=[waiting.pk, stuck.pk]).update(
        created_at=ago(minutes=30), updated_at=ago(minutes=30)
    )

    result = sweep()

    assert result["emails_sent"] == 2
    statuses = dict(EmailNotification.objects.values_list("pk", "status"))
    assert statuses == {waiting.pk: "sent", stuck.pk: "sent", fresh.pk: "pending"}
    assert sorted(message.to for message in mail.outbox) == sorted([[waiting.to], [stuck.to]])
    assert mail.outbox[0].extra_headers["Message-ID"] != mail.outbox[1].extra_headers["Message-ID"]  # one each


def test_sweeping_twice_sends_nothing_the_second_time(sweep):
    job_made(minutes_ago=2)

    sweep()

    assert sweep() == {"jobs_sent": 0, "emails_sent": 0, "jobs_failed": 0}
    assert provisioning_outbox_sweep() == {"jobs_sent": 0, "emails_sent": 0, "jobs_failed": 0}

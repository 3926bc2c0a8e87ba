"""Provisioning jobs: recorded in the caller's transaction, run once per attempt, retried, given up with an alert."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    EmailStatus,
    HostingAccount,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.services import (
    provisioning_job_create,
    provisioning_job_retry,
    provisioning_job_run,
    provisioning_retry_delay,
)
from provisioning.tasks import provisioning_job_run_task
from tests.accounts.factories import SubscriptionFactory
from tests.concurrency import run_at_once
from tests.conftest import database_is_postgres
from tests.provisioning.backends import LeaseOutlivingBackend, RedeliveringBackend
from tests.provisioning.factories import ProvisioningJobFactory, subscription_for_domain

pytestmark = pytest.mark.django_db

STAFF = ["staff@migrahosting.test"]


@pytest.fixture
def run_job(django_capture_on_commit_callbacks):
    """Deliver the job's task once, as a worker would, running what it leaves for after commit (its retries, the
    service-ready e-mail, the staff alert) too."""

    def run(job: ProvisioningJob) -> ProvisioningJob:
        with django_capture_on_commit_callbacks(execute=True):
            provisioning_job_run_task.delay(job.pk)
        job.refresh_from_db()
        return job

    return run


def attempt_log(job: ProvisioningJob) -> list[tuple[int, bool, str]]:
    return list(job.attempt_log.values_list("number", "succeeded", "error"))


def staff_alerts() -> list:
    return [message for message in mail.outbox if message.to == STAFF]


# --- Creation ---------------------------------------------------------------------------------------------------------


def test_creating_the_job_twice_gives_one_job_and_one_task(django_capture_on_commit_callbacks):
    subscription = SubscriptionFactory()

    with django_capture_on_commit_callbacks() as callbacks:
        first = provisioning_job_create(subscription=subscription)
        second = provisioning_job_create(subscription=subscription)

    assert first == second
    assert ProvisioningJob.objects.count() == 1
    assert len(callbacks) == 1
    assert (first.status, first.backend, first.max_attempts, first.attempts) == ("pending", "simulated", 5, 0)


def test_the_task_is_sent_only_once_the_transaction_commits(django_capture_on_commit_callbacks):
    subscription = SubscriptionFactory()

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        job = provisioning_job_create(subscription=subscription)
        job.refresh_from_db()
        assert (job.status, job.enqueued_at) == (ProvisioningJobStatus.PENDING, None)

    job.refresh_from_db()
    assert job.status == ProvisioningJobStatus.SUCCEEDED
    assert job.enqueued_at is not None


def test_a_rolled_back_transaction_leaves_neither_job_nor_task(django_capture_on_commit_callbacks):
    subscription = SubscriptionFactory()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        provisioning_job_create(subscription=subscription)
        raise RuntimeError("fulfilment failed after writing the job")

    assert callbacks == []
    assert not ProvisioningJob.objects.exists()


# --- Success ----------------------------------------------------------------------------------------------------------


def test_a_successful_job_records_the_account_and_sends_one_service_ready_email(run_job):
    job = ProvisioningJobFactory(subscription=subscription_for_domain("example.com"))

    job = run_job(job)

    assert (job.status, job.attempts, job.last_error, job.lease_expires_at) == ("succeeded", 1, "", None)
    assert job.finished_at is not None
    account = HostingAccount.objects.get(subscription=job.subscription)
    assert account.username.startswith("example") and len(account.username) == len("example") + 4
    assert account.server.endswith(".sim.migrahosting.test")
    assert (account.domain, account.panel_reference) == ("example.com", f"sim-{job.idempotency_key.hex[:12]}")
    assert job.result == {
        "username": account.username,
        "server": account.server,
        "domain": "example.com",
        "reference": account.panel_reference,
        "backend": "simulated",
    }
    assert attempt_log(job) == [(1, True, "")]
    email = EmailNotification.objects.get()
    assert (email.purpose, email.status, email.to) == (
        EmailPurpose.SERVICE_READY,
        EmailStatus.SENT,
        job.subscription.customer.email,
    )
    assert [message.subject for message in mail.outbox] == ["Your hosting for example.com is ready"]


def test_a_second_delivery_after_success_changes_nothing(run_job):
    job = run_job(ProvisioningJobFactory())

    assert provisioning_job_run_task.delay(job.pk).get() is None

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert (HostingAccount.objects.count(), EmailNotification.objects.count(), len(mail.outbox)) == (1, 1, 1)


def test_a_second_delivery_while_the_first_is_running_does_not_run_the_backend(settings, run_job):
    settings.PROVISIONING_BACKEND = "tests.provisioning.backends.RedeliveringBackend"
    RedeliveringBackend.calls, RedeliveringBackend.redelivery_results = [], []

    job = run_job(ProvisioningJobFactory())

    assert RedeliveringBackend.calls == [1]
    assert RedeliveringBackend.redelivery_results == [None]
    assert (job.status, job.attempts, job.backend) == ("succeeded", 1, "redelivering")
    assert ProvisioningAttempt.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_deliveries_racing_for_the_same_job_run_the_backend_once():
    if not database_is_postgres():
        pytest.skip("a race needs PostgreSQL's row locks; SQLite serialises every write")
    job = ProvisioningJobFactory(subscription=subscription_for_domain("slow-1s.example.com"))
    results, errors = run_at_once(lambda: provisioning_job_run(job_id=job.pk), 8)

    assert errors == []
    [ran] = [result for result in results if result is not None]
    assert (ran.status, ran.attempts) == ("succeeded", 1)
    assert ProvisioningAttempt.objects.filter(job=job).count() == 1
    assert HostingAccount.objects.count() == 1


# --- Failure and retries ----------------------------------------------------------------------------------------------


def test_a_job_that_fails_three_times_succeeds_on_the_fourth_attempt(run_job):
    job = ProvisioningJobFactory(subscription=subscription_for_domain("fail-3-times.example.com"))

    job = run_job(job)

    assert (job.status, job.attempts, job.last_error) == ("succeeded", 4, "")
    assert attempt_log(job) == [
        (1, False, "simulated failure 1 of 3"),
        (2, False, "simulated failure 2 of 3"),
        (3, False, "simulated failure 3 of 3"),
        (4, True, ""),
    ]
    assert HostingAccount.objects.filter(subscription=job.subscription).exists()
    assert staff_alerts() == []


def test_a_job_that_always_fails_gives_up_after_max_attempts_and_alerts_staff(run_job, caplog):
    job = ProvisioningJobFactory(subscription=subscription_for_domain("always-fail.example.com"))

    job = run_job(job)

    assert (job.status, job.attempts, job.max_attempts) == ("failed", 5, 5)
    assert job.last_error == "simulated failure (attempt 5)"
    assert job.finished_at is not None and job.next_attempt_at is None and job.lease_expires_at is None
    assert [succeeded for _, succeeded, _ in attempt_log(job)] == [False] * 5
    assert not HostingAccount.objects.exists()
    assert not EmailNotification.objects.exists()
    [alert] = staff_alerts()
    assert f"(job {job.pk})" in alert.subject and "always-fail.example.com" in alert.subject
    assert "simulated failure (attempt 5)" in alert.body
    assert f"/admin/provisioning/provisioningjob/{job.pk}/change/" in alert.body
    assert any(record.levelname == "ERROR" and f"job {job.pk}" in record.getMessage() for record in caplog.records)


def test_an_order_the_backend_refuses_fails_at_once(run_job):
    job = run_job(ProvisioningJobFactory(subscription=subscription_for_domain("reject.example.com")))

    assert (job.status, job.attempts) == ("failed", 1)
    assert "rejected" in job.last_error
    assert len(staff_alerts()) == 1


def test_a_backend_that_raises_an_unexpected_error_is_retried_like_a_failure(settings, run_job):
    settings.PROVISIONING_BACKEND = "tests.provisioning.backends.ExplodingBackend"

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts, job.last_error) == ("failed", 5, "KeyError: 'server'")


def test_a_failed_attempt_schedules_the_next_one_after_a_backoff(settings, run_job):
    settings.PROVISIONING_RETRY_BASE_SECONDS = 10
    settings.PROVISIONING_RETRY_CAP_SECONDS = 60
    before = timezone.now()

    # The retry's message arrives at once (tasks run in-process, countdown ignored): too early, so it is dropped.
    job = run_job(ProvisioningJobFactory(subscription=subscription_for_domain("always-fail.example.com")))

    assert (job.status, job.attempts) == ("retrying", 1)
    assert before + timedelta(seconds=5) <= job.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    assert job.enqueued_at is not None


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 5, 10), (2, 10, 20), (3, 20, 40), (4, 30, 60), (9, 30, 60)])
def test_retry_delays_double_up_to_the_cap_with_half_of_them_random(settings, attempt, low, high):
    settings.PROVISIONING_RETRY_BASE_SECONDS = 10
    settings.PROVISIONING_RETRY_CAP_SECONDS = 60

    delays = [provisioning_retry_delay(attempt=attempt) for _ in range(200)]

    assert all(low <= delay <= high for delay in delays)
    assert len(set(delays)) > 1


def test_staff_can_run_a_failed_job_again_with_fresh_attempts(settings, run_job, django_capture_on_commit_callbacks):
    job = run_job(ProvisioningJobFactory(subscription=subscription_for_domain("reject.example.com")))
    job.subscription.domain = "fixed.example.com"
    job.subscription.save()

    with django_capture_on_commit_callbacks(execute=True):
        assert provisioning_job_retry(job=job) is True

    job.refresh_from_db()
    assert (job.status, job.attempts, job.max_attempts) == ("succeeded", 2, 6)
    assert provisioning_job_retry(job=job) is False


# --- Leases -----------------------------------------------------------------------------------------------------------


def test_a_running_job_whose_lease_is_valid_is_left_to_its_worker():
    lease = timezone.now() + timedelta(minutes=5)
    job = ProvisioningJobFactory(status=ProvisioningJobStatus.RUNNING, attempts=1, lease_expires_at=lease)

    assert provisioning_job_run(job_id=job.pk) is None

    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == ("running", 1, lease)


def test_a_running_job_whose_lease_expired_runs_again_and_the_lost_attempt_is_closed(run_job):
    started = timezone.now() - timedelta(minutes=10)
    job = ProvisioningJobFactory(
        status=ProvisioningJobStatus.RUNNING,
        attempts=1,
        started_at=started,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    ProvisioningAttempt.objects.create(job=job, number=1, started_at=started)

    job = run_job(job)

    assert (job.status, job.attempts, job.started_at) == ("succeeded", 2, started)
    [(first, _, error), second] = attempt_log(job)
    assert (first, error) == (1, "abandoned: the worker stopped before finishing and its lease expired")
    assert second == (2, True, "")


def test_an_attempt_that_outlived_its_lease_cannot_overwrite_the_attempt_that_replaced_it(settings, run_job):
    settings.PROVISIONING_BACKEND = "tests.provisioning.backends.LeaseOutlivingBackend"
    LeaseOutlivingBackend.calls = []

    job = run_job(ProvisioningJobFactory())

    assert LeaseOutlivingBackend.calls == [1, 2]
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert HostingAccount.objects.get().username != "late"
    assert job.result["username"] != "late"
    assert EmailNotification.objects.count() == 1

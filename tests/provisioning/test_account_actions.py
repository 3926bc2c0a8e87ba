"""Billing's decisions about a hosting account (suspend, unsuspend, terminate): one job per decision, later
decisions override waiting earlier ones, jobs of a subscription run in order, and a decision carried out leaves the
account's status, its history and the customer's e-mail in one transaction."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    HostingAccount,
    HostingAccountStatusChange,
    ProvisioningAction,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.services import (
    hosting_account_action_request,
    provisioning_job_create,
    provisioning_job_retry,
    provisioning_job_run,
    provisioning_outbox_sweep,
)
from provisioning.tasks import provisioning_job_run_task
from tests.accounts.factories import UserFactory
from tests.concurrency import run_at_once
from tests.conftest import database_is_postgres
from tests.provisioning.backends import RecordingBackend
from tests.provisioning.factories import ProvisioningJobFactory, provisioned_subscription, subscription_for_domain

pytestmark = pytest.mark.django_db

SUSPEND, UNSUSPEND, TERMINATE = ProvisioningAction.SUSPEND, ProvisioningAction.UNSUSPEND, ProvisioningAction.TERMINATE
STAFF = ["staff@migrahosting.test"]


@pytest.fixture
def recording_backend(settings):
    settings.PROVISIONING_BACKEND = "tests.provisioning.backends.RecordingBackend"
    RecordingBackend.calls = []
    return RecordingBackend


@pytest.fixture
def decide(django_capture_on_commit_callbacks):
    """Take a decision as billing does, in a transaction of its own, and run what it sends (the job's task, and
    what that leaves: the next job, e-mails) as the workers would."""

    def run(subscription, action, key, reason="a reason", **kwargs):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            job = hosting_account_action_request(
                subscription=subscription, action=action, decision_key=key, reason=reason, **kwargs
            )
        if job is not None:
            job.refresh_from_db()
        return job

    return run


@pytest.fixture
def decide_only(django_capture_on_commit_callbacks):
    """Take a decision and send nothing: its job stays pending, as when no worker got to it yet."""

    def run(subscription, action, key, reason="a reason", **kwargs):
        with django_capture_on_commit_callbacks(execute=False):
            return hosting_account_action_request(
                subscription=subscription, action=action, decision_key=key, reason=reason, **kwargs
            )

    return run


def account_of(subscription) -> HostingAccount:
    return HostingAccount.objects.get(subscription=subscription)


def history(subscription) -> list[tuple[str, str, str]]:
    return list(
        HostingAccountStatusChange.objects.filter(account__subscription=subscription)
        .order_by("id")
        .values_list("from_status", "to_status", "reason")
    )


def staff_alerts() -> list:
    return [message for message in mail.outbox if message.to == STAFF]


# --- One job per decision ---------------------------------------------------------------------------------------------


def test_the_same_decision_twice_makes_one_job_and_sends_one_task(django_capture_on_commit_callbacks):
    subscription = provisioned_subscription()
    staff = UserFactory()

    with django_capture_on_commit_callbacks() as callbacks:
        first = hosting_account_action_request(
            subscription=subscription,
            action=SUSPEND,
            decision_key="suspend:in_1",
            reason="Invoice 1 unpaid.",
            requested_by=staff,
        )
        second = hosting_account_action_request(
            subscription=subscription, action=SUSPEND, decision_key="suspend:in_1", reason="Invoice 1 unpaid."
        )

    assert first == second
    assert len(callbacks) == 1
    job = ProvisioningJob.objects.get(action=SUSPEND)
    assert (job.status, job.decision_key, job.reason, job.requested_by, job.backend, job.attempts) == (
        "pending",
        "suspend:in_1",
        "Invoice 1 unpaid.",
        staff,
        "simulated",
        0,
    )


def test_the_same_key_after_the_job_ran_returns_that_job_and_does_nothing_again(decide):
    subscription = provisioned_subscription()
    job = decide(subscription, SUSPEND, "suspend:in_1")

    again = decide(subscription, SUSPEND, "suspend:in_1")

    assert again == job and again.status == "succeeded"
    assert ProvisioningJob.objects.filter(action=SUSPEND).count() == 1
    assert len(history(subscription)) == 1


def test_a_key_already_naming_another_decision_is_a_programming_error(decide_only):
    subscription = provisioned_subscription()
    decide_only(subscription, SUSPEND, "staff:1")

    with pytest.raises(ValueError, match="already names job"):
        decide_only(subscription, TERMINATE, "staff:1")


def test_only_suspend_unsuspend_and_terminate_are_decisions():
    with pytest.raises(ValueError):
        hosting_account_action_request(
            subscription=provisioned_subscription(), action="provision", decision_key="provision:1", reason=""
        )


def test_a_decision_rolled_back_with_the_callers_transaction_leaves_no_job(django_capture_on_commit_callbacks):
    subscription = provisioned_subscription()

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        hosting_account_action_request(
            subscription=subscription, action=SUSPEND, decision_key="suspend:in_1", reason=""
        )
        raise RuntimeError("billing failed after deciding")

    assert callbacks == []
    assert not ProvisioningJob.objects.filter(action=SUSPEND).exists()


# --- Carried out ------------------------------------------------------------------------------------------------------


def test_a_suspension_suspends_the_account_records_why_and_emails_the_customer_once(decide, recording_backend):
    subscription = provisioned_subscription("shop.example")

    job = decide(subscription, SUSPEND, "suspend:in_1", reason="Invoice 1 unpaid 5 days after it failed.")

    assert (job.status, job.attempts, job.result) == (
        "succeeded",
        1,
        {"action": "suspend", "status": "suspended", "backend": "recording"},
    )
    account = account_of(subscription)
    assert account.status == "suspended" and account.status_changed_at == job.finished_at
    assert history(subscription) == [("active", "suspended", "Invoice 1 unpaid 5 days after it failed.")]
    assert HostingAccountStatusChange.objects.get().job == job
    assert recording_backend.calls == [("suspend", job.pk, 1)]
    email = EmailNotification.objects.get()
    assert (email.purpose, email.key, email.to, email.context) == (
        EmailPurpose.SERVICE_SUSPENDED,
        "suspend:in_1",
        subscription.customer.email,
        {"reason": "Invoice 1 unpaid 5 days after it failed."},
    )

    assert provisioning_job_run_task.delay(job.pk).get() is None  # the same message, delivered again
    assert (EmailNotification.objects.count(), len(history(subscription)), len(recording_backend.calls)) == (1, 1, 1)


def test_the_facts_decided_for_the_email_go_out_with_it_once_the_panel_suspended(decide):
    subscription = provisioned_subscription()
    facts = {
        "invoice_id": "in_1",
        "amount_due": 1299,
        "currency": "usd",
        "hosted_invoice_url": "https://invoice.stripe.test/i/in_1",
    }

    decide(subscription, SUSPEND, "suspend:in_1", reason="Invoice 1 unpaid.", email_context=facts)

    email = EmailNotification.objects.get()
    assert (email.purpose, email.context) == (EmailPurpose.SERVICE_SUSPENDED, {**facts, "reason": "Invoice 1 unpaid."})


def test_an_unsuspension_makes_the_account_active_and_sends_no_email(decide, recording_backend):
    subscription = provisioned_subscription()
    decide(subscription, SUSPEND, "suspend:in_1", reason="unpaid")

    job = decide(subscription, UNSUSPEND, "unsuspend:in_1", reason="Invoice 1 was paid.")

    assert job.status == "succeeded"
    assert account_of(subscription).status == "active"
    assert history(subscription) == [("active", "suspended", "unpaid"), ("suspended", "active", "Invoice 1 was paid.")]
    assert [call[0] for call in recording_backend.calls] == ["suspend", "unsuspend"]
    assert list(EmailNotification.objects.values_list("purpose", flat=True)) == [EmailPurpose.SERVICE_SUSPENDED]


def test_a_termination_terminates_for_good_and_emails_the_customer(decide, recording_backend):
    subscription = provisioned_subscription()

    job = decide(subscription, TERMINATE, "terminate:sub_1", reason="Canceled 14 days ago.")

    assert job.status == "succeeded"
    assert account_of(subscription).status == "terminated"
    assert history(subscription) == [("active", "terminated", "Canceled 14 days ago.")]
    email = EmailNotification.objects.get()
    assert (email.purpose, email.key, email.context) == (
        EmailPurpose.SERVICE_TERMINATED,
        "terminate:sub_1",
        {"reason": "Canceled 14 days ago."},
    )


def test_a_decision_without_a_key_of_its_own_is_emailed_under_the_jobs_id(run_job):
    subscription = provisioned_subscription()
    job = ProvisioningJobFactory(subscription=subscription, action=SUSPEND, reason="abuse")

    run_job(job)

    assert EmailNotification.objects.get().key == f"job:{job.pk}"


def test_a_decision_for_a_subscription_that_has_no_account_succeeds_without_asking_the_panel(decide, recording_backend):
    subscription = subscription_for_domain("example.com")
    ProvisioningJobFactory(subscription=subscription, status=ProvisioningJobStatus.FAILED, attempts=5)

    job = decide(subscription, SUSPEND, "suspend:in_1")

    assert (job.status, job.result) == ("succeeded", {"skipped": "no hosting account"})
    assert recording_backend.calls == []
    assert not EmailNotification.objects.exists() and not HostingAccountStatusChange.objects.exists()


def test_a_decision_that_reaches_a_terminated_account_leaves_it_terminated(run_job, recording_backend):
    subscription = provisioned_subscription()
    HostingAccount.objects.filter(subscription=subscription).update(status="terminated")
    job = ProvisioningJobFactory(subscription=subscription, action=UNSUSPEND, decision_key="unsuspend:in_9")

    job = run_job(job)

    assert (job.status, job.result) == ("succeeded", {"skipped": "account terminated"})
    assert account_of(subscription).status == "terminated"
    assert recording_backend.calls == []


# --- Later decisions override earlier ones ----------------------------------------------------------------------------


def test_paying_cancels_a_pending_suspension_and_makes_no_job(decide_only, recording_backend):
    subscription = provisioned_subscription()
    suspension = decide_only(subscription, SUSPEND, "suspend:in_1")

    assert decide_only(subscription, UNSUSPEND, "unsuspend:in_1", reason="Invoice 1 was paid.") is None

    suspension.refresh_from_db()
    assert (suspension.status, suspension.superseded_by) == ("canceled", None)
    assert suspension.result == {"canceled_by_decision": "unsuspend:in_1", "reason": "Invoice 1 was paid."}
    assert not ProvisioningJob.objects.filter(action=UNSUSPEND).exists()
    assert provisioning_job_run(job_id=suspension.pk) is None  # its task, arriving late, does nothing
    assert recording_backend.calls == [] and account_of(subscription).status == "active"


def test_a_suspension_cancels_a_pending_unsuspension_of_a_suspended_account(decide, decide_only):
    subscription = provisioned_subscription()
    decide(subscription, SUSPEND, "suspend:in_1")
    unsuspension = decide_only(subscription, UNSUSPEND, "unsuspend:in_1")

    assert decide_only(subscription, SUSPEND, "suspend:in_2") is None

    unsuspension.refresh_from_db()
    assert unsuspension.status == "canceled"
    assert account_of(subscription).status == "suspended"


def test_unsuspending_an_active_account_or_suspending_a_suspended_one_makes_no_job(decide):
    subscription = provisioned_subscription()

    assert decide(subscription, UNSUSPEND, "unsuspend:in_1") is None
    decide(subscription, SUSPEND, "suspend:in_2")
    assert decide(subscription, SUSPEND, "suspend:in_3") is None  # another invoice overdue: already suspended

    assert list(ProvisioningJob.objects.exclude(action="provision").values_list("decision_key", flat=True)) == [
        "suspend:in_2"
    ]


def test_a_second_suspension_while_one_is_waiting_makes_no_second_job(decide_only):
    subscription = provisioned_subscription()
    first = decide_only(subscription, SUSPEND, "suspend:in_1")

    assert decide_only(subscription, SUSPEND, "staff:abc") is None

    first.refresh_from_db()
    assert first.status == "pending"


def test_an_unsuspension_while_the_suspension_runs_is_queued_behind_it(decide_only):
    subscription = provisioned_subscription()
    suspension = decide_only(subscription, SUSPEND, "suspend:in_1")
    ProvisioningJob.objects.filter(pk=suspension.pk).update(
        status=ProvisioningJobStatus.RUNNING, attempts=1, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )

    unsuspension = decide_only(subscription, UNSUSPEND, "unsuspend:in_1")

    assert unsuspension is not None and unsuspension.status == "pending"
    suspension.refresh_from_db()
    assert suspension.status == "running"


def test_termination_cancels_everything_waiting_provisioning_included(decide, decide_only, recording_backend):
    subscription = subscription_for_domain("example.com")
    with transaction.atomic():
        provisioning = provisioning_job_create(subscription=subscription)
    suspension = decide_only(subscription, SUSPEND, "suspend:in_1")

    termination = decide(subscription, TERMINATE, "refund:re_1", reason="Refunded in full.")

    provisioning.refresh_from_db()
    suspension.refresh_from_db()
    assert [(job.status, job.superseded_by) for job in (provisioning, suspension)] == [("canceled", termination)] * 2
    assert (termination.status, termination.result) == ("succeeded", {"skipped": "no hosting account"})
    assert recording_backend.calls == []


def test_termination_waits_for_a_provisioning_that_already_tried_and_then_removes_what_it_made(
    decide_only, recording_backend, django_capture_on_commit_callbacks
):
    subscription = subscription_for_domain("example.com")
    provisioning = ProvisioningJobFactory(
        subscription=subscription, status=ProvisioningJobStatus.RETRYING, attempts=1, last_error="timed out"
    )  # the panel may have made it

    termination = decide_only(subscription, TERMINATE, "refund:re_1")
    with django_capture_on_commit_callbacks(execute=True):
        provisioning_job_run_task.delay(provisioning.pk)

    provisioning.refresh_from_db()
    termination.refresh_from_db()
    assert (provisioning.status, termination.status) == ("succeeded", "succeeded")
    assert [call[0] for call in recording_backend.calls] == ["provision", "terminate"]
    assert account_of(subscription).status == "terminated"


def test_nothing_is_decided_after_termination(decide, decide_only):
    waiting = provisioned_subscription()
    decide_only(waiting, TERMINATE, "terminate:1")
    done = provisioned_subscription()
    decide(done, TERMINATE, "terminate:2")

    for subscription in (waiting, done):
        for action in (SUSPEND, UNSUSPEND, TERMINATE):
            assert decide_only(subscription, action, f"{action}:late:{subscription.pk}") is None

    assert ProvisioningJob.objects.exclude(action="provision").count() == 2


def test_after_a_termination_failed_a_new_one_can_be_decided(decide, settings):
    subscription = provisioned_subscription("terminate-rejected.example.com")
    failed = decide(subscription, TERMINATE, "terminate:1")
    assert failed.status == "failed"

    again = decide(subscription, TERMINATE, "staff:terminate-again")

    failed.refresh_from_db()
    assert (failed.status, failed.superseded_by) == ("canceled", again)
    assert again.status == "failed"  # the panel still refuses: a person has to look


def test_a_failed_suspension_is_canceled_once_the_customer_pays(decide):
    subscription = provisioned_subscription("suspend-rejected.example.com")
    suspension = decide(subscription, SUSPEND, "suspend:in_1")
    assert suspension.status == "failed" and suspension.attempts == 1

    # The refused attempt might, for all we know, have acted: unsuspending costs the panel nothing.
    unsuspension = decide(subscription, UNSUSPEND, "unsuspend:in_1")

    suspension.refresh_from_db()
    assert (suspension.status, suspension.superseded_by) == ("canceled", unsuspension)
    assert unsuspension.status == "succeeded"
    assert account_of(subscription).status == "active" and history(subscription) == []
    assert provisioning_job_retry(job=suspension) is False


def test_a_retrying_suspension_overridden_by_payment_is_followed_by_an_unsuspension(decide_only):
    subscription = provisioned_subscription()
    suspension = decide_only(subscription, SUSPEND, "suspend:in_1")
    ProvisioningJob.objects.filter(pk=suspension.pk).update(status=ProvisioningJobStatus.RETRYING, attempts=1)

    unsuspension = decide_only(subscription, UNSUSPEND, "unsuspend:in_1")

    assert unsuspension is not None
    suspension.refresh_from_db()
    assert (suspension.status, suspension.superseded_by) == ("canceled", unsuspension)


# --- In order, per subscription ---------------------------------------------------------------------------------------


def test_a_suspension_waits_for_the_provisioning_that_runs(decide_only):
    subscription = subscription_for_domain("example.com")
    ProvisioningJobFactory(
        subscription=subscription,
        status=ProvisioningJobStatus.RUNNING,
        attempts=1,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    suspension = decide_only(subscription, SUSPEND, "suspend:in_1")

    assert provisioning_job_run(job_id=suspension.pk) is None

    suspension.refresh_from_db()
    assert (suspension.status, suspension.attempts) == ("pending", 0)
    assert not ProvisioningAttempt.objects.filter(job=suspension).exists()


def test_the_next_decision_runs_as_soon_as_the_one_ahead_finishes(
    recording_backend, django_capture_on_commit_callbacks
):
    subscription = subscription_for_domain("example.com")

    # Paid, and suspended by staff before any worker provisioned it: provisioning runs first, then the suspension.
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        provisioning = provisioning_job_create(subscription=subscription)
        suspension = hosting_account_action_request(
            subscription=subscription, action=SUSPEND, decision_key="staff:1", reason="abuse"
        )

    assert [(action, job) for action, job, _ in recording_backend.calls] == [
        ("provision", provisioning.pk),
        ("suspend", suspension.pk),
    ]
    assert account_of(subscription).status == "suspended"


def test_a_failed_job_does_not_hold_back_the_next(decide_only, recording_backend, django_capture_on_commit_callbacks):
    subscription = provisioned_subscription("suspend-rejected.example.com")
    suspension = decide_only(subscription, SUSPEND, "staff:1")
    termination = decide_only(subscription, TERMINATE, "staff:2")
    ProvisioningJob.objects.filter(pk=termination.pk).update(status=ProvisioningJobStatus.PENDING)
    # Terminate canceled the waiting suspension; put it back to see the order with two live jobs.
    ProvisioningJob.objects.filter(pk=suspension.pk).update(status=ProvisioningJobStatus.PENDING, superseded_by=None)

    with django_capture_on_commit_callbacks(execute=True):
        provisioning_job_run_task.delay(suspension.pk)

    suspension.refresh_from_db()
    termination.refresh_from_db()
    assert (suspension.status, termination.status) == ("failed", "succeeded")
    assert [call[0] for call in recording_backend.calls] == ["suspend", "terminate"]


@pytest.mark.django_db(transaction=True)
def test_deliveries_racing_for_the_same_decision_run_the_panel_once(recording_backend):
    if not database_is_postgres():
        pytest.skip("a race needs PostgreSQL's row locks; SQLite serialises every write")
    subscription = provisioned_subscription("slow-1s.example.com")
    # Made without sending its task: with tasks in-process the commit would run it before the race.
    job = ProvisioningJobFactory(
        subscription=subscription, action=SUSPEND, decision_key="suspend:in_1", reason="unpaid"
    )

    results, errors = run_at_once(lambda: provisioning_job_run(job_id=job.pk), 8)

    assert errors == []
    [ran] = [result for result in results if result is not None]
    assert (ran.status, ran.attempts) == ("succeeded", 1)
    assert recording_backend.calls == [("suspend", job.pk, 1)]
    assert HostingAccountStatusChange.objects.count() == 1
    assert EmailNotification.objects.filter(purpose=EmailPurpose.SERVICE_SUSPENDED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_decisions_taken_at_once_for_one_subscription_make_one_job_and_are_serialised():
    if not database_is_postgres():
        pytest.skip("a race needs PostgreSQL's row locks; SQLite serialises every write")
    subscription = provisioned_subscription()

    def suspend():
        with transaction.atomic():
            return hosting_account_action_request(
                subscription=subscription, action=SUSPEND, decision_key="suspend:in_1", reason="unpaid"
            )

    results, errors = run_at_once(suspend, 8)

    assert errors == []
    assert len({job.pk for job in results}) == 1
    assert ProvisioningJob.objects.filter(action=SUSPEND).count() == 1


# --- Failures, staff, the sweeper -------------------------------------------------------------------------------------


def test_a_suspension_the_panel_cannot_carry_out_alerts_staff(decide):
    subscription = provisioned_subscription("suspend-fails.example.com")

    job = decide(subscription, SUSPEND, "suspend:in_1", reason="Invoice 1 unpaid.")

    assert (job.status, job.attempts) == ("failed", 5)
    assert account_of(subscription).status == "active"
    [alert] = staff_alerts()
    assert "Suspend failed: suspend-fails.example.com" in alert.subject and f"(job {job.pk})" in alert.subject
    assert "still serving" in alert.body and "suspend:in_1" in alert.body and "Invoice 1 unpaid." in alert.body
    assert f"/admin/provisioning/provisioningjob/{job.pk}/change/" in alert.body
    assert not EmailNotification.objects.exists()


def test_staff_can_run_a_failed_decision_again(decide, django_capture_on_commit_callbacks):
    subscription = provisioned_subscription("suspend-rejected.example.com")
    job = decide(subscription, SUSPEND, "suspend:in_1")
    HostingAccount.objects.filter(subscription=subscription).update(domain="fixed.example.com")

    with django_capture_on_commit_callbacks(execute=True):
        assert provisioning_job_retry(job=job) is True

    job.refresh_from_db()
    assert (job.status, job.attempts, job.max_attempts) == ("succeeded", 2, 6)
    assert account_of(subscription).status == "suspended"


def test_a_failed_decision_is_not_run_again_once_a_later_one_was_taken(decide, decide_only):
    subscription = provisioned_subscription("suspend-rejected.example.com")
    failed = decide(subscription, SUSPEND, "suspend:in_1")
    decide_only(subscription, SUSPEND, "staff:1")  # staff suspend again: a decision of its own

    assert provisioning_job_retry(job=failed) is False


def test_nothing_is_run_again_after_termination(decide, decide_only):
    subscription = subscription_for_domain("reject.example.com")
    provisioning = ProvisioningJobFactory(subscription=subscription, status=ProvisioningJobStatus.FAILED, attempts=1)
    decide_only(subscription, TERMINATE, "refund:re_1")

    assert provisioning_job_retry(job=provisioning) is False


def test_the_sweeper_leaves_jobs_queued_behind_a_running_one_alone(django_capture_on_commit_callbacks):
    subscription = provisioned_subscription()
    running = ProvisioningJobFactory(
        subscription=subscription,
        action=SUSPEND,
        status=ProvisioningJobStatus.RUNNING,
        attempts=1,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    queued = ProvisioningJobFactory(subscription=subscription, action=UNSUSPEND)
    ProvisioningJob.objects.filter(pk__in=[running.pk, queued.pk]).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert provisioning_outbox_sweep()["jobs_sent"] == 0

    ProvisioningJob.objects.filter(pk=running.pk).update(status=ProvisioningJobStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        assert provisioning_outbox_sweep()["jobs_sent"] == 1  # its send was lost: once free, the sweeper sends it
    queued.refresh_from_db()
    assert queued.status == "succeeded"

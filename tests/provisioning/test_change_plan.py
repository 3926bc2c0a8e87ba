"""Plan changes as provisioning jobs: one per decision key, in order with the subscription's other jobs, a newer change
superseding a waiting one, nothing after a termination; carried out by the simulated panel and by the HTTP panel as a
signed POST with the new plan."""

import pytest
from django.core import mail
from django.db import transaction

from provisioning.backends.simulated import SimulatedBackend
from provisioning.models import HostingAccount, ProvisioningAction, ProvisioningJob
from provisioning.services import hosting_account_action_request, provisioning_job_retry
from provisioning.tasks import provisioning_job_run_task
from tests.provisioning.factories import ProvisioningJobFactory, provisioned_subscription

pytestmark = pytest.mark.django_db

CHANGE_PLAN = ProvisioningAction.CHANGE_PLAN


def plan(code: str = "premium", cycle: str = "monthly") -> dict:
    return {
        "product_code": code,
        "billing_cycle": cycle,
        "previous_product_code": "starter",
        "previous_billing_cycle": "monthly",
    }


@pytest.fixture
def request_change(django_capture_on_commit_callbacks):
    """Decide a plan change as billing does (inside its transaction); its task runs once the transaction commits."""

    def decide(subscription, key: str = "change_plan:k1", **parameters):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            job = hosting_account_action_request(
                subscription=subscription,
                action=CHANGE_PLAN,
                decision_key=key,
                reason="Plan change from starter/monthly to premium/monthly.",
                parameters=parameters or plan(),
            )
        if job is not None:
            job.refresh_from_db()
        return job

    return decide


class RecordingPanel(SimulatedBackend):
    name = "recording-plans"
    calls: list = []

    def _act(self, request):
        type(self).calls.append(request)
        super()._act(request)


@pytest.fixture
def recording_panel(settings):
    settings.PROVISIONING_BACKEND = "tests.provisioning.test_change_plan.RecordingPanel"
    RecordingPanel.calls = []
    return RecordingPanel


def test_the_simulated_panel_is_asked_once_with_the_new_plan_and_the_account(request_change, recording_panel):
    subscription = provisioned_subscription("shop.example")
    account = HostingAccount.objects.get(subscription=subscription)

    job = request_change(subscription, **plan("business", "yearly"))

    [call] = recording_panel.calls
    assert (call.action, call.product_code, call.billing_cycle, call.previous_product_code) == (
        "change_plan",
        "business",
        "yearly",
        "starter",
    )
    assert (call.username, call.server, call.idempotency_key) == (
        account.username,
        account.server,
        str(job.idempotency_key),
    )
    assert (job.status, job.attempts, job.result) == (
        "succeeded",
        1,
        {"action": "change_plan", "product_code": "business", "billing_cycle": "yearly", "backend": "recording-plans"},
    )
    account.refresh_from_db()
    assert account.status == "active" and not account.status_changes.exists()


def test_the_same_decision_twice_makes_one_job(request_change, recording_panel):
    subscription = provisioned_subscription()

    first = request_change(subscription)
    second = request_change(subscription)

    assert first.pk == second.pk
    assert ProvisioningJob.objects.filter(action=CHANGE_PLAN).count() == 1
    assert len(recording_panel.calls) == 1


def test_a_change_waits_for_the_provisioning_ahead_of_it(request_change, recording_panel):
    subscription = provisioned_subscription()
    ProvisioningJob.objects.filter(subscription=subscription).update(status="running", attempts=1)

    job = request_change(subscription)

    assert job.status == "pending" and recording_panel.calls == []


def test_a_newer_change_supersedes_one_still_waiting(request_change):
    subscription = provisioned_subscription()
    ProvisioningJob.objects.filter(subscription=subscription).update(status="running", attempts=1)
    older = request_change(subscription, "change_plan:k1", **plan("premium"))

    newer = request_change(subscription, "change_plan:k2", **plan("business"))

    older.refresh_from_db()
    assert (older.status, older.superseded_by_id) == ("canceled", newer.pk)
    assert newer.status == "pending"


def test_a_suspension_does_not_cancel_a_waiting_plan_change(request_change, django_capture_on_commit_callbacks):
    subscription = provisioned_subscription()
    ProvisioningJob.objects.filter(subscription=subscription).update(status="running", attempts=1)
    change = request_change(subscription)

    with transaction.atomic():
        hosting_account_action_request(
            subscription=subscription, action="suspend", decision_key="suspend:in_1", reason="Unpaid."
        )

    change.refresh_from_db()
    assert change.status == "pending"


def test_no_plan_change_after_termination_and_termination_cancels_a_waiting_one(request_change):
    subscription = provisioned_subscription()
    ProvisioningJob.objects.filter(subscription=subscription).update(status="running", attempts=1)
    waiting = request_change(subscription, "change_plan:k1")
    with transaction.atomic():
        hosting_account_action_request(
            subscription=subscription, action="terminate", decision_key="terminate:1", reason="Refunded."
        )

    after = request_change(subscription, "change_plan:k2")

    waiting.refresh_from_db()
    assert waiting.status == "canceled" and after is None


def test_a_failed_change_is_not_run_again_once_a_newer_one_exists(settings, request_change):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    subscription = provisioned_subscription("change_plan-rejected.example")
    failed = request_change(subscription, "change_plan:k1")
    assert failed.status == "failed" and "would not change_plan" in failed.last_error
    assert "not on the plan the customer moved to" in mail.outbox[-1].body

    newer = request_change(subscription, "change_plan:k2", **plan("business"))

    failed.refresh_from_db()
    assert failed.status == "canceled" and failed.superseded_by_id == newer.pk
    assert provisioning_job_retry(job=failed) is False


def test_a_failed_change_can_be_run_again_by_staff(settings, request_change):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    subscription = provisioned_subscription("change_plan-rejected.example")
    failed = request_change(subscription)

    assert provisioning_job_retry(job=failed) is True


def test_a_change_for_an_account_never_made_is_skipped(request_change, recording_panel):
    subscription = provisioned_subscription()
    HostingAccount.objects.filter(subscription=subscription).delete()

    job = request_change(subscription)

    assert (job.status, job.result) == ("succeeded", {"skipped": "no hosting account"})
    assert recording_panel.calls == []


# --- The HTTP panel ---------------------------------------------------------------------------------------------------


def test_the_http_panel_gets_a_signed_plan_change(control_panel, django_capture_on_commit_callbacks):
    subscription = provisioned_subscription("shop.example")
    HostingAccount.objects.filter(subscription=subscription).update(
        username="panel7", server="cp01.panel.test", panel_reference="acct-7"
    )
    job = ProvisioningJobFactory(
        subscription=subscription,
        action=CHANGE_PLAN,
        decision_key="change_plan:k1",
        reason="Plan change.",
        parameters=plan("premium", "yearly"),
        backend="http",
    )

    with django_capture_on_commit_callbacks(execute=True):
        provisioning_job_run_task.delay(job.pk)

    job.refresh_from_db()
    [received] = control_panel.received
    assert received.signature_valid and received.headers["Idempotency-Key"] == str(job.idempotency_key)
    assert received.json == {
        "action": "change_plan",
        "idempotency_key": str(job.idempotency_key),
        "job_id": job.pk,
        "attempt": 1,
        "subscription_id": subscription.pk,
        "username": "panel7",
        "server": "cp01.panel.test",
        "domain": "shop.example",
        "panel_reference": "acct-7",
        "reason": "Plan change.",
        "product_code": "premium",
        "billing_cycle": "yearly",
        "previous_product_code": "starter",
        "previous_billing_cycle": "monthly",
    }
    assert (job.status, job.attempts, job.result["product_code"]) == ("succeeded", 1, "premium")

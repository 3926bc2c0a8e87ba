"""The HTTP backend against a real control panel (a local HTTP server): provisioning and billing's decisions,
signed, idempotent, and failures sorted into worth retrying or not."""

import pytest
from django.core import mail

from provisioning.backends import AccountActionRequest, ProvisioningError
from provisioning.backends.http import HttpBackend
from provisioning.models import HostingAccount, ProvisioningJob
from tests.provisioning.factories import (
    ProvisioningJobFactory,
    provisioned_subscription,
    provisioning_request,
    subscription_for_domain,
)

pytestmark = pytest.mark.django_db


def test_the_panel_gets_a_signed_order_with_the_idempotency_key_and_the_account_is_recorded(control_panel, run_job):
    job = ProvisioningJobFactory(subscription=subscription_for_domain("shop.example"))
    subscription = job.subscription

    job = run_job(job)

    [received] = control_panel.received
    assert received.signature_valid
    assert received.headers["Idempotency-Key"] == str(job.idempotency_key)
    assert received.headers["Content-Type"] == "application/json"
    assert received.json == {
        "idempotency_key": str(job.idempotency_key),
        "job_id": job.pk,
        "attempt": 1,
        "subscription_id": subscription.pk,
        "product_code": subscription.product.code,
        "billing_cycle": "monthly",
        "domain": "shop.example",
        "customer_email": subscription.customer.email,
        "customer_name": subscription.customer.name,
    }
    assert (job.status, job.attempts, job.backend) == ("succeeded", 1, "http")
    account = HostingAccount.objects.get(subscription=subscription)
    assert (account.username, account.server, account.domain, account.panel_reference) == (
        "panel1",
        "cp01.panel.test",
        "shop.example",
        "acct-1",
    )


def test_a_wrong_secret_is_caught_by_the_panel(control_panel):
    backend = HttpBackend(url=control_panel.url, secret="not-the-shared-secret", timeout=2)

    with pytest.raises(ProvisioningError) as error:
        backend.provision(provisioning_request())

    assert not control_panel.received[0].signature_valid
    assert "401" in str(error.value) and error.value.retryable is False


@pytest.mark.parametrize("status", [500, 502, 503, 409, 429])
def test_server_errors_conflicts_and_rate_limits_are_retried_with_the_same_key(control_panel, run_job, status):
    control_panel.answer(status)

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts) == ("succeeded", 2)
    assert f"answered {status}" in job.attempt_log.get(number=1).error
    keys = {received.headers["Idempotency-Key"] for received in control_panel.received}
    assert keys == {str(job.idempotency_key)} and len(control_panel.received) == 2


def test_a_panel_that_answers_too_late_is_retried_and_answers_with_the_same_account(control_panel, run_job, settings):
    settings.PROVISIONING_HTTP_TIMEOUT_SECONDS = 0.3
    control_panel.answer(200, delay=1.0)  # it does make the account, but answers after we stopped waiting

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts) == ("succeeded", 2)
    assert job.attempt_log.get(number=1).error == "the control panel did not answer within 0.3 s"
    assert len(control_panel.accounts) == 1
    assert HostingAccount.objects.get().panel_reference == "acct-1"


def test_a_refused_order_is_not_retried_and_staff_are_alerted(control_panel, run_job):
    control_panel.answer(400, {"error": "domain shop.example is not allowed"})

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts) == ("failed", 1)
    assert "answered 400" in job.last_error and "is not allowed" in job.last_error
    assert len(control_panel.received) == 1
    assert [message.to for message in mail.outbox] == [["staff@migrahosting.test"]]


def test_a_success_without_an_account_in_it_is_retried(control_panel, run_job):
    control_panel.answer(200, "<html>maintenance</html>")

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts) == ("succeeded", 2)
    assert "no username and server" in job.attempt_log.get(number=1).error


def test_an_answer_that_does_not_fit_our_records_is_not_retried(control_panel, run_job):
    control_panel.answer(201, {"username": "u" * 65, "server": "cp01.panel.test"})

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts) == ("failed", 1)
    assert "does not fit" in job.last_error


def test_a_panel_that_refuses_connections_is_worth_retrying():
    backend = HttpBackend(url="http://127.0.0.1:1/api/accounts", secret="s", timeout=2)

    with pytest.raises(ProvisioningError) as error:
        backend.provision(provisioning_request())

    assert error.value.retryable and "could not be reached" in str(error.value)


def test_without_url_or_secret_the_job_fails_retryably_until_configured(settings, run_job):
    settings.PROVISIONING_BACKEND = "http"
    settings.PROVISIONING_HTTP_URL = ""

    job = run_job(ProvisioningJobFactory())

    assert (job.status, job.attempts) == ("failed", 5)
    assert "PROVISIONING_HTTP_URL" in job.last_error


# --- Billing's decisions: suspend, unsuspend, terminate ---------------------------------------------------------------


@pytest.fixture
def decision_job():
    """A decision job for an account the panel made, made without sending its task."""

    def make(action: str) -> ProvisioningJob:
        subscription = provisioned_subscription("shop.example")
        HostingAccount.objects.filter(subscription=subscription).update(
            username="panel7",
            server="cp01.panel.test",
            panel_reference="acct-7",
            status="suspended" if action == "unsuspend" else "active",
        )
        return ProvisioningJobFactory(
            subscription=subscription,
            action=action,
            decision_key=f"{action}:in_1",
            reason="Invoice 1 unpaid.",
            backend="http",
        )

    return make


@pytest.mark.parametrize(
    ("action", "status"), [("suspend", "suspended"), ("unsuspend", "active"), ("terminate", "terminated")]
)
def test_the_panel_gets_a_signed_decision_with_the_account_and_the_idempotency_key(
    control_panel, run_job, decision_job, action, status
):
    job = decision_job(action)

    job = run_job(job)

    [received] = control_panel.received
    assert received.signature_valid
    assert received.headers["Idempotency-Key"] == str(job.idempotency_key)
    assert received.headers["Content-Type"] == "application/json"
    assert received.json == {
        "action": action,
        "idempotency_key": str(job.idempotency_key),
        "job_id": job.pk,
        "attempt": 1,
        "subscription_id": job.subscription_id,
        "username": "panel7",
        "server": "cp01.panel.test",
        "domain": "shop.example",
        "panel_reference": "acct-7",
        "reason": "Invoice 1 unpaid.",
    }
    assert (job.status, job.attempts, job.result) == (
        "succeeded",
        1,
        {"action": action, "status": status, "backend": "http"},
    )
    assert HostingAccount.objects.get(subscription=job.subscription).status == status


@pytest.mark.parametrize("answer", [500, 503, 409, 429])
def test_a_decision_the_panel_could_not_take_now_is_retried_with_the_same_key(
    control_panel, run_job, decision_job, answer
):
    control_panel.answer(answer)

    job = run_job(decision_job("suspend"))

    assert (job.status, job.attempts) == ("succeeded", 2)
    assert f"answered {answer}" in job.attempt_log.get(number=1).error
    assert {received.headers["Idempotency-Key"] for received in control_panel.received} == {str(job.idempotency_key)}


def test_a_decision_the_panel_refuses_is_not_retried_and_staff_are_alerted(control_panel, run_job, decision_job):
    control_panel.answer(404, {"error": "no such account"})

    job = run_job(decision_job("terminate"))

    assert (job.status, job.attempts) == ("failed", 1)
    assert "answered 404" in job.last_error
    assert HostingAccount.objects.get(subscription=job.subscription).status == "active"
    [alert] = mail.outbox
    assert alert.to == ["staff@migrahosting.test"] and "Terminate failed" in alert.subject


def test_a_decision_signed_with_the_wrong_secret_is_refused_by_the_panel(control_panel):
    backend = HttpBackend(url=control_panel.url, secret="not-the-shared-secret", timeout=2)
    request = AccountActionRequest(
        idempotency_key="7d9b1c52-8f04-4a0e-9a57-1b1e7b3c2d11",
        job_id=1,
        attempt=1,
        subscription_id=1,
        action="suspend",
        username="panel1",
        server="cp01.panel.test",
        domain="example.com",
        panel_reference="acct-1",
        reason="unpaid",
    )

    with pytest.raises(ProvisioningError) as error:
        backend.suspend(request)

    assert not control_panel.received[0].signature_valid
    assert "401" in str(error.value) and error.value.retryable is False

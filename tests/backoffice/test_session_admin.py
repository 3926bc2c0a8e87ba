"""Support's order pages: the list and its search, the timeline, and actions that are safe to click twice."""

import json
from datetime import timedelta

import pytest
import requests
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger
from rest_framework.test import APIClient

from checkout.models import CheckoutSession
from provisioning.models import EmailNotification, EmailStatus, ProvisioningAttempt, ProvisioningJobStatus
from tests.accounts.factories import SubscriptionFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db


def session_url(session) -> str:
    return reverse("admin:checkout_checkoutsession_change", args=[session.pk])


def action_url(session, action) -> str:
    return reverse("admin:checkout_checkoutsession_support", args=[session.pk, action])


@pytest.fixture
def failed_order(db):
    """A paid order whose provisioning failed for good, with its Stripe event, deliveries and e-mails."""
    subscription = SubscriptionFactory(
        checkout_session__email="Jane.Doe@Example.com",
        stripe_subscription_id="sub_test_timeline1",
        checkout_session__domain_info={"mode": "new-or-transfer", "value": "fail-5-times.example.com"},
        checkout_session__status="completed",
        checkout_session__completed_at=timezone.now(),
        checkout_session__stripe_customer_id="cus_test_timeline1",
    )
    subscription.customer.stripe_customer_id = "cus_test_timeline1"
    subscription.customer.save()
    session = subscription.checkout_session
    job = ProvisioningJobFactory(
        subscription=subscription,
        status=ProvisioningJobStatus.FAILED,
        attempts=5,
        max_attempts=5,
        last_error="simulated failure 5 of 5",
    )
    for number in range(1, 6):
        ProvisioningAttempt.objects.create(
            job=job,
            number=number,
            started_at=timezone.now(),
            finished_at=timezone.now(),
            error=f"simulated failure {number} of 5",
        )
    event = Event.objects.create(
        id="evt_test_timeline1",
        type="checkout.session.completed",
        livemode=False,
        data={"object": {"id": session.stripe_session_id, "object": "checkout.session"}},
    )
    body = json.dumps({"id": event.id, "type": event.type, "data": {"object": {"id": session.stripe_session_id}}})
    WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1", headers={}, body=body, valid=True, processed=True, event=event
    )
    WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1",
        headers={},
        body=body,
        valid=True,
        processed=False,
        exception="Stripe could not be reached",
    )
    EmailNotificationFactory(
        checkout_session=session,
        purpose="set_password",
        to=session.email.lower(),
        status=EmailStatus.SENT,
        sent_at=timezone.now() - timedelta(hours=1),
    )
    EmailNotification.objects.filter(checkout_session=session).update(updated_at=timezone.now() - timedelta(hours=1))
    return session, job


# --- The list ------------------------------------------------------------------------------------------------------


def test_the_list_shows_an_order_as_support_reads_it(support_client):
    CheckoutSessionFactory(email="list@example.com", amount=1299, coupon_code="WELCOME10", status="completed")

    page = support_client.get(reverse("admin:checkout_checkoutsession_changelist")).content.decode()

    for text in ("list@example.com", "$12.99 USD", "WELCOME10", "Completed"):
        assert text in page


@pytest.mark.parametrize(
    "term",
    [
        "jane.doe@example.com",
        "JANE.DOE@EXAMPLE.COM",
        "jane.d",
        "fail-5-times",
        "cus_test_timeline1",
        "sub_test_timeline1",
    ],
)
def test_search_finds_the_order_by_email_domain_and_stripe_ids(support_client, failed_order, term):
    session, _ = failed_order
    CheckoutSessionFactory(email="someone.else@example.com")

    page = support_client.get(reverse("admin:checkout_checkoutsession_changelist"), {"q": term}).content.decode()

    assert session_url(session) in page
    assert "someone.else@example.com" not in page


def test_search_by_stripe_session_id(support_client, failed_order):
    session, _ = failed_order

    page = support_client.get(
        reverse("admin:checkout_checkoutsession_changelist"), {"q": session.stripe_session_id}
    ).content.decode()

    assert session_url(session) in page


@pytest.mark.parametrize(
    "params", [{"status__exact": "expired"}, {"cycle": "monthly"}, {"product": "nope"}, {"created_at__year": "2020"}]
)
def test_filters_answer(support_client, failed_order, params):
    response = support_client.get(reverse("admin:checkout_checkoutsession_changelist"), params)

    assert response.status_code == 200


def test_the_billing_cycle_filter_keeps_its_cycle_parameter_and_lists_only_that_cycle(support_client):
    yearly = CheckoutSessionFactory.create_batch(2, price__billing_cycle="yearly")
    CheckoutSessionFactory(price__billing_cycle="monthly")
    url = reverse("admin:checkout_checkoutsession_changelist")

    response = support_client.get(url, {"cycle": "yearly"})

    assert {session.pk for session in response.context["cl"].result_list} == {session.pk for session in yearly}
    choices = support_client.get(url).content.decode()
    assert "?cycle=yearly" in choices and "?cycle=monthly" in choices  # the links keep the old parameter


def test_sessions_cannot_be_added_changed_or_deleted_even_by_a_superuser(client, superuser, failed_order):
    session, _ = failed_order
    client.force_login(superuser)

    assert client.get(reverse("admin:checkout_checkoutsession_add")).status_code == 403
    assert client.post(session_url(session), {"email": "x@example.com"}).status_code == 403
    assert client.get(reverse("admin:checkout_checkoutsession_delete", args=[session.pk])).status_code == 403


# --- The timeline --------------------------------------------------------------------------------------------------


def test_the_timeline_tells_the_whole_order(support_client, failed_order):
    session, job = failed_order

    page = support_client.get(session_url(session)).content.decode()

    assert "Checkout session created" in page
    assert "Stripe event checkout.session.completed" in page
    assert "1 webhook delivery: 1 processed" in page
    assert "failed" in page and "Stripe could not be reached" in page
    assert "Subscription created" in page
    assert f"Provisioning job #{job.pk}" in page and "simulated failure 3 of 5" in page
    assert "Set your password" in page
    assert "https://dashboard.stripe.com/test/checkout/sessions/" + session.stripe_session_id in page
    assert "https://dashboard.stripe.com/test/subscriptions/sub_test_timeline1" in page
    assert "https://dashboard.stripe.com/test/events/evt_test_timeline1" in page
    assert reverse("admin:accounts_subscription_change", args=[job.subscription.pk]) in page


def test_live_sessions_link_to_the_live_dashboard(support_client):
    session = CheckoutSessionFactory(stripe_session_id="cs_live_abc123")

    page = support_client.get(session_url(session)).content.decode()

    assert "https://dashboard.stripe.com/checkout/sessions/cs_live_abc123" in page


# --- Actions -------------------------------------------------------------------------------------------------------


def test_retry_a_failed_job_twice_runs_it_once(support_client, failed_order, django_capture_on_commit_callbacks):
    session, job = failed_order

    with django_capture_on_commit_callbacks(execute=True):
        first = support_client.post(action_url(session, "retry_job"), {"job": job.pk}, follow=True)
    with django_capture_on_commit_callbacks(execute=True):
        second = support_client.post(action_url(session, "retry_job"), {"job": job.pk}, follow=True)

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 6)
    assert "sent again with a fresh allowance" in first.content.decode()
    assert "has already succeeded" in second.content.decode()
    assert "it was already sent again by support@migrahosting.test" in second.content.decode()
    messages = [entry.get_change_message() for entry in LogEntry.objects.filter(object_id=str(session.pk))]
    assert len(messages) == 2 and all(message.startswith("Retry provisioning:") for message in messages)


def test_a_job_of_another_order_is_not_retried(support_client, failed_order):
    session, _ = failed_order
    other = ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED)

    response = support_client.post(action_url(session, "retry_job"), {"job": other.pk})

    assert response.status_code == 404


def test_actions_need_a_post(support_client, failed_order):
    session, _ = failed_order

    assert support_client.get(action_url(session, "expire")).status_code == 405


def test_resend_set_password_sends_once_per_window(support_client, failed_order, django_capture_on_commit_callbacks):
    session, _ = failed_order

    with django_capture_on_commit_callbacks(execute=True):
        first = support_client.post(action_url(session, "resend_set_password"), follow=True)
    with django_capture_on_commit_callbacks(execute=True):
        second = support_client.post(action_url(session, "resend_set_password"), follow=True)

    assert "Set-password e-mail sent again" in first.content.decode()
    assert "not sent again" in second.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["jane.doe@example.com"]
    email = EmailNotification.objects.get(checkout_session=session, purpose="set_password")
    assert email.status == EmailStatus.SENT and email.attempts == 1


def test_resend_again_after_the_window(support_client, failed_order, django_capture_on_commit_callbacks):
    session, _ = failed_order
    with django_capture_on_commit_callbacks(execute=True):
        support_client.post(action_url(session, "resend_set_password"))
    EmailNotification.objects.filter(checkout_session=session).update(
        sent_at=timezone.now() - timedelta(minutes=6), updated_at=timezone.now() - timedelta(minutes=6)
    )

    with django_capture_on_commit_callbacks(execute=True):
        support_client.post(action_url(session, "resend_set_password"))

    assert len(mail.outbox) == 2


def test_resend_is_refused_once_the_customer_has_a_password(support_client, failed_order):
    session, _ = failed_order
    user = session.subscription.customer.users.get()
    user.set_password("chosen by the customer")
    user.save()

    page = support_client.post(action_url(session, "resend_set_password"), follow=True).content.decode()

    assert "has already set a password" in page


@pytest.fixture
def sandbox_session(stripe_sandbox, db):
    """A pending session made through the public API against the sandbox."""
    from django.core.management import call_command

    call_command("catalog_load", verbosity=0)
    response = APIClient().post(
        "/api/checkout/create-session",
        {
            "planId": "starter",
            "billingCycle": "monthly",
            "trialActive": False,
            "customer": {"name": "Pat Pending", "email": "pat@example.com"},
        },
        format="json",
    )
    assert response.status_code in (200, 201), response.content
    return CheckoutSession.objects.get(email="pat@example.com")


def test_expire_a_pending_session_at_stripe_twice(support_client, sandbox_session, stripe_sandbox):
    first = support_client.post(action_url(sandbox_session, "expire"), follow=True).content.decode()
    second = support_client.post(action_url(sandbox_session, "expire"), follow=True).content.decode()

    sandbox_session.refresh_from_db()
    assert sandbox_session.status == "expired"
    assert "Session expired at Stripe and here" in first
    assert "not pending: nothing to expire" in second
    expire_path = f"/v1/checkout/sessions/{sandbox_session.stripe_session_id}/expire"
    assert len(stripe_sandbox.requests(method="POST", path=expire_path)) == 1
    assert requests.get(sandbox_session.stripe_url, timeout=5).status_code == 410


def test_reread_fulfils_a_session_paid_at_stripe(
    support_client, sandbox_session, stripe_sandbox, django_capture_on_commit_callbacks
):
    paid = requests.post(
        f"{sandbox_session.stripe_url}/pay", data={"payment": "card"}, allow_redirects=False, timeout=10
    )
    assert paid.status_code == 303
    # The success page's rate-limit mark is set, as if the customer's browser had just polled.
    from django.core.cache import cache

    cache.set(f"checkout-refresh:{sandbox_session.stripe_session_id}", True, 60)

    with django_capture_on_commit_callbacks(execute=True):
        first = support_client.post(action_url(sandbox_session, "reread"), follow=True).content.decode()
    second = support_client.post(action_url(sandbox_session, "reread"), follow=True).content.decode()

    sandbox_session.refresh_from_db()
    assert sandbox_session.status == "completed"
    assert sandbox_session.subscription.provisioning_jobs.get().status == "succeeded"
    assert "the session is now completed" in first
    assert "already completed: nothing to re-read" in second


def test_reread_of_an_unpaid_session_changes_nothing(support_client, sandbox_session):
    page = support_client.post(action_url(sandbox_session, "reread"), follow=True).content.decode()

    sandbox_session.refresh_from_db()
    assert sandbox_session.status == "pending"
    assert "still not paid" in page

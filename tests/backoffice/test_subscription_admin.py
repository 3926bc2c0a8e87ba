"""The subscription page and its billing actions: what the page states, who is offered and allowed which action, the
confirmation form (reason required, POST only), a double submit acting once, and Stripe's refusals shown as a
message. The actions go to the Stripe sandbox over HTTP."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingAction, BillingActionKind, RefundRecord, SubscriptionInvoice
from provisioning.models import HostingAccountStatusChange, ProvisioningJob
from tests.accounts.factories import SubscriptionFactory
from tests.backoffice.billing_fixtures import sandbox_subscription
from tests.provisioning.factories import HostingAccountFactory

pytestmark = pytest.mark.django_db


def page_url(subscription) -> str:
    return reverse("admin:accounts_subscription_change", args=[subscription.pk])


def action_url(subscription, action, invoice=None) -> str:
    url = reverse("admin:accounts_subscription_billing_action", args=[subscription.pk, action])
    return f"{url}?invoice={invoice.pk}" if invoice else url


def key_of(page) -> str:
    return page.context["form"]["idempotency_key"].value()


def submit(
    client,
    subscription,
    action,
    *,
    reason="The customer asked by e-mail (ticket 4711)",
    invoice=None,
    key=None,
    **fields,
):
    """Open the action's form (as a person does), then send it back with a reason: the key is the form's own."""
    if key is None:
        form = client.get(action_url(subscription, action, invoice))
        assert form.status_code == 200, form.status_code
        key = key_of(form)
    data = {"reason": reason, "idempotency_key": key, **fields}
    if invoice is not None:
        data["invoice"] = invoice.pk
    return client.post(action_url(subscription, action), data, follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def paid(stripe_sandbox, settings):
    settings.BILLING_TERMINATE_AFTER_DAYS = 14
    settings.BILLING_TERMINATION_WARNING_DAYS = 3
    return sandbox_subscription()


# --- The page ---------------------------------------------------------------------------------------------------------


def test_the_page_states_status_period_renewal_account_and_invoice(billing_client, paid):
    invoice = paid.invoices.get()
    account = paid.hosting_account
    HostingAccountStatusChange.objects.create(
        account=account,
        from_status="active",
        to_status="suspended",
        reason="Invoice unpaid 5 days after its first failed payment.",
    )

    page = billing_client.get(page_url(paid)).content.decode()

    assert 'id="subscription-status">Active<' in page
    assert f"{paid.current_period_start:%Y-%m-%d} – {paid.current_period_end:%Y-%m-%d}" in page
    assert f"{paid.current_period_end:%Y-%m-%d %H:%M} UTC · $7.99 USD" in page
    assert "billcust</strong> on web01.sim.migrahosting.test" in page
    assert "Invoice unpaid 5 days after its first failed payment." in page
    assert invoice.number and invoice.number in page
    assert f"https://dashboard.stripe.com/test/invoices/{invoice.stripe_invoice_id}" in page
    assert invoice.hosted_invoice_url and invoice.hosted_invoice_url in page
    assert "$7.99 USD left" in page
    for button in (
        "action-cancel_at_period_end",
        "action-cancel_now",
        "action-suspend",
        "action-terminate",
        f"refund-{invoice.pk}",
    ):
        assert f'id="{button}"' in page
    assert 'id="action-undo_cancel"' not in page and 'id="action-unsuspend"' not in page


def test_support_is_offered_cancel_and_suspend_but_not_refund_or_terminate(support_client, paid):
    page = support_client.get(page_url(paid)).content.decode()

    assert 'id="action-cancel_now"' in page and 'id="action-suspend"' in page
    assert 'id="action-terminate"' not in page and 'id="refund-' not in page


def test_ended_subscription_and_terminated_account_offer_nothing(billing_client, db):
    subscription = SubscriptionFactory(
        stripe_subscription_id="sub_test_ended1", status="canceled", ended_at=timezone.now(), canceled_at=timezone.now()
    )
    HostingAccountFactory(subscription=subscription, status="terminated")

    page = billing_client.get(page_url(subscription)).content.decode()

    assert 'id="billing-actions"' not in page
    assert "Ended " in page and "None: ended" in page
    assert billing_client.get(action_url(subscription, "cancel_now"), follow=True).redirect_chain


@pytest.mark.parametrize("action", ["cancel_now", "cancel_at_period_end", "suspend", "terminate", "refund"])
def test_catalog_managers_can_run_no_billing_action(catalog_client, paid, action):
    invoice = paid.invoices.get()

    assert catalog_client.get(action_url(paid, action, invoice)).status_code == 403
    assert (
        catalog_client.post(
            action_url(paid, action), {"reason": "because", "idempotency_key": "k1", "invoice": invoice.pk}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("action", ["refund", "terminate"])
def test_support_cannot_refund_or_terminate(support_client, paid, action):
    invoice = paid.invoices.get()

    form = support_client.get(action_url(paid, action, invoice))
    post = support_client.post(
        action_url(paid, action),
        {"reason": "I would like to", "idempotency_key": "k-sup", "invoice": invoice.pk, "scope": "full"},
    )

    assert form.status_code == post.status_code == 403
    assert not BillingAction.objects.exists()
    assert not ProvisioningJob.objects.filter(action="terminate").exists()


# --- The confirmation form --------------------------------------------------------------------------------------------


def test_the_form_says_what_will_happen_and_carries_a_fresh_key(billing_client, paid):
    invoice = paid.invoices.get()

    first = billing_client.get(action_url(paid, "refund", invoice))
    second = billing_client.get(action_url(paid, "refund", invoice))

    text = first.content.decode()
    assert "All that is left: $7.99 USD" in text
    assert "A full refund (all that is left) also ends the subscription at Stripe and terminates" in text
    assert 'name="idempotency_key"' in text and "csrfmiddlewaretoken" in text
    assert key_of(first) != key_of(second)
    terminate = billing_client.get(action_url(paid, "terminate")).content.decode()
    assert "cancelled at Stripe now as well" in terminate and "cannot be undone" in terminate


def test_a_reason_is_required(billing_client, paid):
    response = submit(billing_client, paid, "cancel_now", reason="  ")

    assert response.status_code == 200
    assert "This field is required." in response.content.decode() or "Say why" in response.content.decode()
    assert not BillingAction.objects.exists()
    paid.refresh_from_db()
    assert paid.status == "active"


def test_a_partial_refund_needs_an_amount_no_more_than_what_is_left(billing_client, paid):
    invoice = paid.invoices.get()

    missing = submit(billing_client, paid, "refund", invoice=invoice, scope="partial", amount="")
    too_much = submit(billing_client, paid, "refund", invoice=invoice, scope="partial", amount="8.00")

    assert "Enter the amount to refund." in missing.content.decode()
    assert "at most 7.99" in too_much.content.decode()
    assert not BillingAction.objects.exists()


def test_the_action_page_refuses_put_and_delete(billing_client, paid):
    assert billing_client.put(action_url(paid, "cancel_now")).status_code == 405


# --- Running actions against the sandbox --------------------------------------------------------------------------------


def test_support_cancels_at_period_end_and_then_undoes_it(support_client, paid, stripe_sandbox, support_agent):
    response = submit(support_client, paid, "cancel_at_period_end")

    assert messages_of(response) == ["Cancel at period end: done."]
    paid.refresh_from_db()
    assert paid.cancel_at_period_end and paid.status == "active"
    action = BillingAction.objects.get()
    assert (action.kind, action.status, action.actor, action.reason) == (
        BillingActionKind.CANCEL_AT_PERIOD_END,
        "done",
        support_agent,
        "The customer asked by e-mail (ticket 4711)",
    )
    page = response.content.decode()
    assert 'id="cancel-notice"' in page and 'id="action-undo_cancel"' in page
    assert "None: cancels at period end" in page
    assert "Cancel at period end: done (reason: The customer asked" in LogEntry.objects.get().change_message
    sent = stripe_sandbox.requests(method="POST", path=f"/v1/subscriptions/{paid.stripe_subscription_id}")
    assert len(sent) == 1

    undone = submit(support_client, paid, "undo_cancel", reason="Changed their mind on the phone")

    assert messages_of(undone) == ["Keep the subscription (undo cancellation): done."]
    paid.refresh_from_db()
    assert not paid.cancel_at_period_end


def test_a_double_submit_acts_once(billing_client, paid, stripe_sandbox):
    invoice = paid.invoices.get()
    form = billing_client.get(action_url(paid, "refund", invoice))
    key = key_of(form)

    first = submit(billing_client, paid, "refund", invoice=invoice, key=key, scope="partial", amount="2.50")
    second = submit(billing_client, paid, "refund", invoice=invoice, key=key, scope="partial", amount="2.50")

    assert messages_of(first) == ["Refund $2.50 USD: done."]
    assert messages_of(second) == ["This form was already sent: Refund $2.50 USD: done."]
    assert BillingAction.objects.count() == 1
    assert len(stripe_sandbox.requests(method="POST", path="/v1/refunds")) == 1
    refund = RefundRecord.objects.get()
    assert (refund.amount, refund.status) == (250, "succeeded")
    page = billing_client.get(page_url(paid)).content.decode()
    assert "$5.49 USD left" in page and refund.stripe_refund_id in page


def test_a_double_submit_of_an_account_action_makes_one_job(support_client, paid):
    form = support_client.get(action_url(paid, "suspend"))
    key = key_of(form)

    submit(support_client, paid, "suspend", key=key, reason="Abuse report 99: phishing page")
    again = submit(support_client, paid, "suspend", key=key, reason="Abuse report 99: phishing page")

    assert messages_of(again) == ["This form was already sent: Suspend the account: done."]
    assert ProvisioningJob.objects.filter(action="suspend").count() == 1
    job = ProvisioningJob.objects.get(action="suspend")
    assert job.reason == "Abuse report 99: phishing page" and job.requested_by.email == "support@migrahosting.test"
    page = again.content.decode()
    # The suspension waits in the queue: unsuspending is what applies now.
    assert 'id="action-unsuspend"' in page and 'id="action-suspend"' not in page


def test_billing_terminates_the_account_and_the_subscription_is_cancelled(billing_client, paid, stripe_sandbox):
    response = submit(billing_client, paid, "terminate", reason="Fraud confirmed by the bank")

    assert messages_of(response) == ["Terminate the account: done."]
    assert ProvisioningJob.objects.filter(action="terminate").count() == 1
    kinds = sorted(BillingAction.objects.values_list("kind", "status"))
    assert kinds == [("cancel_now", "done"), ("terminate", "done")]
    paid.refresh_from_db()
    assert paid.status == "canceled"
    assert len(stripe_sandbox.requests(method="DELETE", path=f"/v1/subscriptions/{paid.stripe_subscription_id}")) == 1


def test_stripe_refusing_shows_its_message_not_a_debug_page(billing_client, paid, stripe_sandbox):
    # Refunded in Stripe's dashboard a minute ago; the refund's event has not reached us yet.
    from billing.stripe_billing import stripe_invoice_payment_intent
    from core.stripe_api import stripe_client

    invoice = paid.invoices.get()
    intent = stripe_invoice_payment_intent(invoice.stripe_invoice_id)
    stripe_client().v1.refunds.create({"payment_intent": intent})

    response = submit(billing_client, paid, "refund", invoice=invoice, scope="full")

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Refund failed: Stripe refused"), message
    assert BillingAction.objects.get().status == "failed"


def test_stripe_failing_shows_a_message_not_a_debug_page(billing_client, paid, stripe_sandbox):
    stripe_sandbox.inject_fault(method="DELETE", path_prefix="/v1/subscriptions/", status=500, count=10)

    response = submit(billing_client, paid, "cancel_now")

    assert response.status_code == 200
    assert messages_of(response) == ["Cancel now failed: Stripe failed (500); try again in a minute."]
    paid.refresh_from_db()
    assert paid.status == "active"


def test_an_application_error_of_the_service_is_shown_as_an_error_message(support_client, paid):
    # Cancelled at period end meanwhile (another tab, Stripe's dashboard): the button was stale.
    form = support_client.get(action_url(paid, "cancel_at_period_end"))
    type(paid).objects.filter(pk=paid.pk).update(cancel_at_period_end=True)

    response = submit(support_client, paid, "cancel_at_period_end", key=key_of(form))

    assert messages_of(response) == [
        "Cancel at period end failed: The subscription already cancels at the end of its period."
    ]
    assert not BillingAction.objects.exists()


def test_the_page_lists_billing_actions_with_who_why_and_result(billing_client, paid, billing_agent):
    BillingAction.objects.create(
        subscription=paid,
        kind="refund",
        status="failed",
        amount=100,
        reason="Goodwill for the outage",
        actor=billing_agent,
        error="Stripe refused: no",
    )
    BillingAction.objects.create(
        subscription=paid,
        kind="auto_refund",
        status="requested",
        reason="Provisioning failed",
        created_at=timezone.now() - timedelta(hours=1),
    )

    page = billing_client.get(page_url(paid)).content.decode()

    assert "Goodwill for the outage" in page and "billing@migrahosting.test" in page and "Stripe refused: no" in page
    assert "a rule of ours" in page


def test_the_overview_computes_what_is_left_to_refund_as_billing_does(paid):
    from backoffice.selectors import subscription_billing_overview
    from billing.selectors import invoice_refundable_amount

    SubscriptionInvoice.objects.filter(subscription=paid).update(stripe_payment_intent_id="pi_test_overview")
    invoice = paid.invoices.get()
    RefundRecord.objects.create(
        subscription=paid,
        stripe_refund_id="re_test_a",
        amount=100,
        currency="usd",
        status="succeeded",
        stripe_payment_intent_id=invoice.stripe_payment_intent_id,
        stripe_created=timezone.now(),
    )
    BillingAction.objects.create(
        subscription=paid,
        kind="refund",
        status="requested",
        amount=50,
        reason="pending",
        stripe_object_id=invoice.stripe_invoice_id,
    )

    [row] = subscription_billing_overview(subscription=paid).invoices

    assert row.refundable == invoice_refundable_amount(invoice=SubscriptionInvoice.objects.get()) == 799 - 150


def test_an_account_suspended_for_non_payment_offers_a_staff_hold_and_one_held_offers_none(billing_client, db):
    from accounts.models import User
    from billing.models import BillingActionStatus
    from provisioning.models import ProvisioningJobStatus

    subscription = SubscriptionFactory(stripe_subscription_id="sub_test_hold1", status="past_due")
    HostingAccountFactory(subscription=subscription, status="suspended")
    ProvisioningJob.objects.create(
        subscription=subscription,
        action="suspend",
        decision_key="suspend:in_hold1",
        status=ProvisioningJobStatus.SUCCEEDED,
        reason="Invoice unpaid 5 days",
    )

    page = billing_client.get(page_url(subscription)).content.decode()
    assert 'id="action-suspend"' in page and 'id="action-unsuspend"' in page

    staff = User.objects.filter(is_staff=True).first()
    BillingAction.objects.create(
        subscription=subscription,
        kind=BillingActionKind.SUSPEND,
        status=BillingActionStatus.DONE,
        reason="Abuse report",
        actor=staff,
    )
    page = billing_client.get(page_url(subscription)).content.decode()
    assert 'id="action-suspend"' not in page and 'id="action-unsuspend"' in page

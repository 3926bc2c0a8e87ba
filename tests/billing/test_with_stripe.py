"""A subscription's life against the Stripe sandbox over HTTP: renewals, a card that fails, staff's cancellations
and refunds, and the refund of a setup that failed for good. Events go through dj-stripe as its webhook view hands
them over; our receivers and services do the rest."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import BillingAction, BillingActionStatus, InvoiceStatus, RefundRecord, SubscriptionInvoice
from billing.services import (
    billing_sweep,
    hosting_account_terminate,
    invoice_refund,
    subscription_cancel,
    subscription_cancel_undo,
)
from core.exceptions import ApplicationError
from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    HostingAccountStatus,
    ProvisioningJob,
    ProvisioningJobStatus,
)

pytestmark = pytest.mark.django_db


def mails(purpose: str) -> list[EmailNotification]:
    return list(EmailNotification.objects.filter(purpose=purpose).order_by("pk"))


def renewals(subscription) -> list[SubscriptionInvoice]:
    return list(subscription.invoices.exclude(billing_reason="subscription_create").order_by("stripe_created"))


def test_the_first_payment_is_recorded_with_the_period(world):
    subscription = world.buy("first@example.com")

    subscription.refresh_from_db()
    [first] = SubscriptionInvoice.objects.filter(subscription=subscription)
    assert (first.billing_reason, first.status, first.amount_paid) == ("subscription_create", "paid", 799)
    assert subscription.current_period_end is not None
    assert subscription.hosting_account.status == HostingAccountStatus.ACTIVE


def test_three_renewals_three_receipts(world):
    subscription = world.buy("renews@example.com")
    first_end = subscription.current_period_end or SubscriptionInvoice.objects.get().period_end

    for _ in range(3):
        world.advance(days=31)

    subscription.refresh_from_db()
    assert [invoice.status for invoice in renewals(subscription)] == ["paid"] * 3
    assert len(mails(EmailPurpose.RENEWAL_RECEIPT)) == 3
    assert subscription.current_period_end > first_end + timedelta(days=80)
    assert subscription.status == "active"


def test_a_failing_card_is_suspended_and_paying_the_invoice_unsuspends(world):
    subscription = world.buy("fails@example.com")
    world.set_card(subscription, "pm_card_chargeCustomerFail")

    world.advance(days=31)
    [invoice] = renewals(subscription)
    [failed_mail] = mails(EmailPurpose.RENEWAL_FAILED)
    assert invoice.status == InvoiceStatus.OPEN and invoice.first_failed_at is not None
    assert failed_mail.context["hosted_invoice_url"] == invoice.hosted_invoice_url != ""
    subscription.refresh_from_db()
    assert subscription.status == "past_due"

    world.advance(days=5.5)  # the retries at 3 and 5 days fail too
    subscription.hosting_account.refresh_from_db()
    assert subscription.hosting_account.status == HostingAccountStatus.SUSPENDED
    assert len(mails(EmailPurpose.RENEWAL_FAILED)) == 1  # one per invoice, whatever the retries

    world.api("post", f"/v1/invoices/{invoice.stripe_invoice_id}/pay", payment_method="pm_card_visa")
    world.process()

    subscription.refresh_from_db()
    subscription.hosting_account.refresh_from_db()
    assert subscription.status == "active"
    assert subscription.hosting_account.status == HostingAccountStatus.ACTIVE
    assert [job.action for job in subscription.provisioning_jobs.order_by("pk")] == [
        "provision",
        "suspend",
        "unsuspend",
    ]
    assert len(mails(EmailPurpose.SERVICE_SUSPENDED)) == 1
    assert len(mails(EmailPurpose.RENEWAL_RECEIPT)) == 1


def test_a_card_that_never_pays_ends_canceled_and_terminated(world, settings):
    settings.BILLING_TERMINATE_AFTER_DAYS = 0
    subscription = world.buy("never@example.com")
    world.set_card(subscription, "pm_card_chargeCustomerFail")

    world.advance(days=31)
    world.advance(days=8)  # retries at 3, 5 and 7 days; after the last, Stripe cancels

    subscription.refresh_from_db()
    subscription.hosting_account.refresh_from_db()
    assert subscription.status == "canceled" and subscription.ended_at is not None
    assert subscription.hosting_account.status == HostingAccountStatus.TERMINATED
    actions = list(subscription.provisioning_jobs.order_by("pk").values_list("action", "status"))
    assert actions == [("provision", "succeeded"), ("suspend", "succeeded"), ("terminate", "succeeded")]
    assert len(mails(EmailPurpose.SERVICE_TERMINATED)) == 1
    assert mails(EmailPurpose.CANCELLATION_CONFIRMED) == []


def test_cancel_at_period_end_then_undo_then_cancel_again_ends_at_the_period_end(world, admin_user):
    subscription = world.buy("leaves@example.com")

    subscription_cancel(
        subscription=subscription, at_period_end=True, reason="Customer asked by phone", actor=admin_user
    )
    world.process()
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end
    assert len(mails(EmailPurpose.CANCELLATION_CONFIRMED)) == 1

    subscription_cancel_undo(subscription=subscription, reason="Changed their mind", actor=admin_user)
    world.process()
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end

    subscription_cancel(subscription=subscription, at_period_end=True, reason="Asked again", actor=admin_user)
    world.advance(days=31)

    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    assert renewals(subscription) == []  # no invoice after a cancellation at period end
    assert BillingAction.objects.filter(status=BillingActionStatus.DONE).count() == 3


def test_a_double_click_cancels_once(world, admin_user):
    subscription = world.buy("twice@example.com")

    first = subscription_cancel(
        subscription=subscription, at_period_end=False, reason="Fraud", actor=admin_user, idempotency_key="form-123"
    )
    second = subscription_cancel(
        subscription=subscription, at_period_end=False, reason="Fraud", actor=admin_user, idempotency_key="form-123"
    )

    assert first.pk == second.pk
    assert (
        len(world.sandbox.requests(method="DELETE", path=f"/v1/subscriptions/{subscription.stripe_subscription_id}"))
        == 1
    )
    subscription.refresh_from_db()
    assert subscription.status == "canceled"


def test_a_partial_refund_is_recorded_and_never_exceeds_what_was_paid(world, admin_user):
    subscription = world.buy("partial@example.com")
    invoice = SubscriptionInvoice.objects.get(subscription=subscription)

    invoice_refund(invoice=invoice, amount=300, reason="Downtime credit", actor=admin_user)
    world.process()

    refund = RefundRecord.objects.get()
    assert (refund.amount, refund.status) == (300, "succeeded")
    assert mails(EmailPurpose.REFUND_ISSUED)[0].context["full"] is False
    with pytest.raises(ApplicationError) as error:
        invoice_refund(invoice=invoice, amount=500, reason="Too much", actor=admin_user)
    assert error.value.code == "refund_amount_invalid"
    assert len(world.sandbox.requests(method="POST", path="/v1/refunds")) == 1
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert not subscription.provisioning_jobs.filter(action="terminate").exists()


def test_a_full_refund_ends_the_subscription_and_terminates_the_account(world, admin_user):
    subscription = world.buy("refund@example.com")
    invoice = SubscriptionInvoice.objects.get(subscription=subscription)

    invoice_refund(invoice=invoice, amount=None, reason="Unhappy customer", actor=admin_user)
    world.process()
    world.process()  # the cancellation the refund decided makes events of its own

    subscription.refresh_from_db()
    subscription.hosting_account.refresh_from_db()
    assert subscription.status == "canceled"
    assert subscription.hosting_account.status == HostingAccountStatus.TERMINATED
    assert RefundRecord.objects.get().amount == 799
    assert mails(EmailPurpose.REFUND_ISSUED)[0].context["full"] is True
    assert len(mails(EmailPurpose.SERVICE_TERMINATED)) == 1


def test_staff_termination_also_cancels_at_stripe(world, admin_user):
    subscription = world.buy("abuse@example.com")

    with world.capture(execute=True):  # the job's task goes out when the action commits
        hosting_account_terminate(subscription=subscription, reason="Phishing site", actor=admin_user)
    world.process()

    subscription.refresh_from_db()
    subscription.hosting_account.refresh_from_db()
    assert subscription.status == "canceled"
    assert subscription.hosting_account.status == HostingAccountStatus.TERMINATED
    with pytest.raises(ApplicationError):
        hosting_account_terminate(subscription=subscription, reason="Again", actor=admin_user)


def test_a_setup_that_failed_for_good_is_refunded_cancelled_and_apologised_for(world, settings):
    settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS = 24
    subscription = world.buy("broken@example.com")
    job = subscription.provisioning_jobs.get(action="provision")
    subscription.hosting_account.delete()
    ProvisioningJob.objects.filter(pk=job.pk).update(
        status=ProvisioningJobStatus.FAILED, finished_at=timezone.now() - timedelta(hours=23)
    )
    billing_sweep()
    assert not BillingAction.objects.exists()  # not yet: staff have a day to fix it

    ProvisioningJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(hours=25))
    billing_sweep()
    billing_sweep()
    world.process()

    subscription.refresh_from_db()
    [action] = BillingAction.objects.all()
    assert (action.kind, action.status, action.amount) == ("auto_refund", "done", 799)
    assert subscription.status == "canceled"
    assert len(world.sandbox.requests(method="POST", path="/v1/refunds")) == 1
    [apology] = mails(EmailPurpose.SETUP_FAILED_REFUNDED)
    assert apology.context == {"amount": 799, "currency": "usd"}
    assert mails(EmailPurpose.CANCELLATION_CONFIRMED) == []


@pytest.mark.parametrize("act", ["cancel_at_period_end", "cancel_now", "full_refund"])
def test_a_resubmitted_form_returns_the_first_action_instead_of_an_error(world, admin_user, act):
    subscription = world.buy(f"resubmit-{act}@example.com")
    invoice = SubscriptionInvoice.objects.get(subscription=subscription)

    def submit():
        if act == "full_refund":
            return invoice_refund(
                invoice=invoice, amount=None, reason="Goodwill", actor=admin_user, idempotency_key="form-1"
            )
        return subscription_cancel(
            subscription=subscription,
            at_period_end=act == "cancel_at_period_end",
            reason="Asked by e-mail",
            actor=admin_user,
            idempotency_key="form-1",
        )

    first = submit()
    world.process()
    subscription.refresh_from_db()

    assert submit().pk == first.pk
    assert BillingAction.objects.filter(idempotency_key="form-1").count() == 1

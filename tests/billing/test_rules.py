"""The billing rules, driven by Stripe's events as the receivers hand them over (the object as re-read, and the
event's time): receipts, pay links, suspension after N days, unsuspension on payment, termination after the end,
and that late, repeated and reordered events change nothing twice and never move a state backwards."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Subscription
from billing.models import BillingAction, BillingActionKind, InvoiceStatus, RefundRecord, SubscriptionInvoice
from billing.selectors import stripe_now
from billing.services import (
    billing_sweep,
    charge_refunded_apply,
    invoice_event_apply,
    refund_event_apply,
    stripe_clock_observe,
    subscription_event_apply,
)
from provisioning.models import EmailNotification, EmailPurpose, ProvisioningJob, ProvisioningJobStatus
from tests.accounts.factories import SubscriptionFactory
from tests.billing.stripe_objects import stripe_charge, stripe_invoice, stripe_refund, stripe_subscription
from tests.provisioning.factories import HostingAccountFactory

pytestmark = pytest.mark.django_db

START = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
RENEWAL = START + timedelta(days=30)
NEXT_END = RENEWAL + timedelta(days=31)


@pytest.fixture(autouse=True)
def billing_settings(settings):
    settings.BILLING_SUSPEND_AFTER_DAYS = 5
    settings.BILLING_TERMINATE_AFTER_DAYS = 14
    settings.BILLING_TERMINATION_WARNING_DAYS = 3
    settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS = 24
    settings.PROVISIONING_BACKEND = "simulated"


@pytest.fixture
def subscription() -> Subscription:
    subscription = SubscriptionFactory(
        stripe_subscription_id="sub_rules",
        current_period_start=START,
        current_period_end=RENEWAL,
        stripe_state_at=START,
    )
    HostingAccountFactory(subscription=subscription)
    return subscription


def renewal(
    status: str,
    *,
    at: datetime = RENEWAL,
    attempts: int = 0,
    invoice_id: str = "in_renewal1",
    next_attempt: datetime | None = None,
) -> dict:
    return stripe_invoice(
        id=invoice_id,
        subscription="sub_rules",
        status=status,
        created=RENEWAL,
        period_start=RENEWAL,
        period_end=NEXT_END,
        attempt_count=attempts,
        next_payment_attempt=next_attempt,
        paid_at=at if status == "paid" else None,
    )


def emails(purpose: str) -> list[EmailNotification]:
    return list(EmailNotification.objects.filter(purpose=purpose))


def jobs(action: str) -> list[ProvisioningJob]:
    return list(ProvisioningJob.objects.filter(action=action).order_by("pk"))


# --- A renewal paid ---------------------------------------------------------------------------------------------------


def test_a_paid_renewal_is_recorded_moves_the_period_and_sends_one_receipt(subscription):
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=renewal("paid"), event_created=RENEWAL)
    invoice_event_apply(event_type="invoice.payment_succeeded", stripe_invoice=renewal("paid"), event_created=RENEWAL)

    subscription.refresh_from_db()
    invoice = SubscriptionInvoice.objects.get()
    assert (invoice.status, invoice.amount_paid, invoice.subscription) == (InvoiceStatus.PAID, 799, subscription)
    assert subscription.current_period_end == NEXT_END
    [receipt] = emails(EmailPurpose.RENEWAL_RECEIPT)
    assert receipt.key == "in_renewal1"
    assert receipt.context["amount_paid"] == 799
    assert receipt.context["period_end"] == NEXT_END.isoformat()


def test_the_first_invoice_sends_no_receipt_the_order_confirmation_is_its_receipt(subscription):
    first = stripe_invoice(
        id="in_first",
        subscription="sub_rules",
        status="paid",
        created=START,
        period_start=START,
        period_end=RENEWAL,
        billing_reason="subscription_create",
        paid_at=START,
    )

    invoice_event_apply(event_type="invoice.paid", stripe_invoice=first, event_created=START)

    assert SubscriptionInvoice.objects.get().billing_reason == "subscription_create"
    assert emails(EmailPurpose.RENEWAL_RECEIPT) == []


def test_an_invoice_of_a_subscription_that_is_not_ours_is_ignored(subscription):
    other = stripe_invoice(
        id="in_other",
        subscription="sub_someone_else",
        status="paid",
        created=RENEWAL,
        period_start=RENEWAL,
        period_end=NEXT_END,
    )

    assert invoice_event_apply(event_type="invoice.paid", stripe_invoice=other, event_created=RENEWAL) is None
    assert SubscriptionInvoice.objects.count() == 0


def test_a_late_open_invoice_event_never_reopens_a_paid_invoice(subscription):
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=renewal("paid"), event_created=RENEWAL)

    # invoice.finalized, delivered late, carries a newer timestamp than nothing but an older state
    invoice_event_apply(
        event_type="invoice.finalized", stripe_invoice=renewal("open"), event_created=RENEWAL + timedelta(seconds=5)
    )

    assert SubscriptionInvoice.objects.get().status == InvoiceStatus.PAID


# --- A renewal that fails ---------------------------------------------------------------------------------------------


def test_a_failed_renewal_mails_the_pay_link_once(subscription):
    failed = renewal("open", attempts=1, next_attempt=RENEWAL + timedelta(days=3))

    invoice_event_apply(event_type="invoice.payment_failed", stripe_invoice=failed, event_created=RENEWAL)
    invoice_event_apply(event_type="invoice.payment_failed", stripe_invoice=failed, event_created=RENEWAL)

    [mail] = emails(EmailPurpose.RENEWAL_FAILED)
    assert mail.context["hosted_invoice_url"] == "https://invoice.stripe.test/i/in_renewal1"
    assert mail.context["suspend_on"] == (RENEWAL + timedelta(days=5)).isoformat()
    assert SubscriptionInvoice.objects.get().first_failed_at == RENEWAL
    assert jobs("suspend") == []


def test_the_service_is_suspended_at_the_first_event_five_days_after_the_first_failure(subscription):
    invoice_event_apply(
        event_type="invoice.payment_failed", stripe_invoice=renewal("open", attempts=1), event_created=RENEWAL
    )
    invoice_event_apply(
        event_type="invoice.payment_failed",
        stripe_invoice=renewal("open", attempts=2),
        event_created=RENEWAL + timedelta(days=3),
    )
    assert jobs("suspend") == []

    invoice_event_apply(
        event_type="invoice.payment_failed",
        stripe_invoice=renewal("open", attempts=3),
        event_created=RENEWAL + timedelta(days=5),
    )

    [suspend] = jobs("suspend")
    assert suspend.decision_key == "suspend:in_renewal1"
    assert "5 days" in suspend.reason


def test_reordered_failures_count_from_the_earliest_one(subscription):
    # The retry's failure (day 5) arrives before the first one (day 0)
    invoice_event_apply(
        event_type="invoice.payment_failed",
        stripe_invoice=renewal("open", attempts=3),
        event_created=RENEWAL + timedelta(days=5),
    )
    invoice_event_apply(
        event_type="invoice.payment_failed", stripe_invoice=renewal("open", attempts=1), event_created=RENEWAL
    )

    assert SubscriptionInvoice.objects.get().first_failed_at == RENEWAL
    assert len(jobs("suspend")) == 1


def test_the_sweep_suspends_when_stripes_clock_passed_the_point_without_an_event(subscription):
    invoice_event_apply(
        event_type="invoice.payment_failed", stripe_invoice=renewal("open", attempts=1), event_created=RENEWAL
    )
    stripe_clock_observe(scope="", at=RENEWAL + timedelta(days=6))

    billing_sweep()
    billing_sweep()

    assert len(jobs("suspend")) == 1


def test_paying_before_the_suspension_ran_cancels_it_and_suspends_nothing(subscription):
    invoice_event_apply(
        event_type="invoice.payment_failed", stripe_invoice=renewal("open", attempts=1), event_created=RENEWAL
    )
    invoice_event_apply(
        event_type="invoice.payment_failed",
        stripe_invoice=renewal("open", attempts=3),
        event_created=RENEWAL + timedelta(days=5),
    )
    [suspend] = jobs("suspend")

    invoice_event_apply(
        event_type="invoice.paid",
        stripe_invoice=renewal("paid", at=RENEWAL + timedelta(days=5, hours=1)),
        event_created=RENEWAL + timedelta(days=5, hours=1),
    )

    suspend.refresh_from_db()
    assert suspend.status == ProvisioningJobStatus.CANCELED
    assert jobs("unsuspend") == []  # the account was never suspended
    assert len(emails(EmailPurpose.RENEWAL_RECEIPT)) == 1


def test_a_payment_does_not_lift_a_suspension_staff_decided(subscription, admin_user):
    from billing.services import hosting_account_suspend

    hosting_account_suspend(subscription=subscription, reason="Abuse report #1234", actor=admin_user)

    invoice_event_apply(event_type="invoice.paid", stripe_invoice=renewal("paid"), event_created=RENEWAL)

    [suspend] = jobs("suspend")
    assert suspend.requested_by == admin_user
    assert suspend.status != ProvisioningJobStatus.CANCELED
    assert jobs("unsuspend") == []


# --- The subscription's state -----------------------------------------------------------------------------------------


def test_the_subscription_mirrors_stripe(subscription):
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules", status="past_due", period_start=RENEWAL, period_end=NEXT_END, test_clock="clock_abc"
        ),
        event_created=RENEWAL,
    )

    subscription.refresh_from_db()
    assert subscription.status == "past_due"
    assert (subscription.current_period_start, subscription.current_period_end) == (RENEWAL, NEXT_END)
    assert subscription.stripe_test_clock_id == "clock_abc"
    assert subscription.stripe_state_at == RENEWAL


def test_an_older_event_never_moves_the_state_backwards(subscription):
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules", status="active", period_start=RENEWAL, period_end=NEXT_END
        ),
        event_created=RENEWAL + timedelta(minutes=1),
    )

    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules", status="past_due", period_start=START, period_end=RENEWAL
        ),
        event_created=RENEWAL,
    )

    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert subscription.current_period_end == NEXT_END


def test_an_ended_subscription_never_comes_back(subscription):
    ended = RENEWAL + timedelta(days=7)
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules",
            status="canceled",
            period_start=RENEWAL,
            period_end=NEXT_END,
            canceled_at=ended,
            ended_at=ended,
            cancellation_reason="payment_failed",
        ),
        event_created=ended,
    )

    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules", status="active", period_start=RENEWAL, period_end=NEXT_END
        ),
        event_created=ended + timedelta(seconds=1),
    )

    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    assert subscription.ended_at == ended


def test_cancel_at_period_end_is_confirmed_once(subscription):
    scheduled = stripe_subscription(
        id="sub_rules", status="active", period_start=START, period_end=RENEWAL, cancel_at_period_end=True
    )

    subscription_event_apply(stripe_subscription=scheduled, event_created=START + timedelta(days=2))
    subscription_event_apply(stripe_subscription=scheduled, event_created=START + timedelta(days=2))

    [mail] = emails(EmailPurpose.CANCELLATION_CONFIRMED)
    assert mail.context == {"at_period_end": True, "ends_at": RENEWAL.isoformat()}


# --- Termination ------------------------------------------------------------------------------------------------------


def _end_for_non_payment(subscription, ended: datetime, test_clock: str | None = None) -> None:
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules",
            status="canceled",
            period_start=RENEWAL,
            period_end=NEXT_END,
            canceled_at=ended,
            ended_at=ended,
            cancellation_reason="payment_failed",
            test_clock=test_clock,
        ),
        event_created=ended,
    )


def test_an_ended_subscription_is_warned_three_days_before_and_terminated_after_fourteen(subscription):
    ended = RENEWAL + timedelta(days=7)
    _end_for_non_payment(subscription, ended)
    assert emails(EmailPurpose.CANCELLATION_CONFIRMED) == []  # not a cancellation: the dunning e-mails said it

    stripe_clock_observe(scope="", at=ended + timedelta(days=10))
    billing_sweep()
    assert emails(EmailPurpose.TERMINATION_WARNING) == [] and jobs("terminate") == []

    stripe_clock_observe(scope="", at=ended + timedelta(days=11))
    billing_sweep()
    billing_sweep()
    [warning] = emails(EmailPurpose.TERMINATION_WARNING)
    assert warning.context["terminate_on"] == (ended + timedelta(days=14)).isoformat()
    assert jobs("terminate") == []

    stripe_clock_observe(scope="", at=ended + timedelta(days=14))
    billing_sweep()
    billing_sweep()
    [terminate] = jobs("terminate")
    assert terminate.decision_key == f"terminate:ended:{subscription.pk}"


def test_a_test_clock_moves_only_its_own_subscriptions(subscription):
    ended = RENEWAL + timedelta(days=7)
    _end_for_non_payment(subscription, ended, test_clock="clock_a")

    stripe_clock_observe(scope="clock_b", at=ended + timedelta(days=30))
    billing_sweep()
    assert jobs("terminate") == []

    stripe_clock_observe(scope="clock_a", at=ended + timedelta(days=14))
    billing_sweep()
    assert len(jobs("terminate")) == 1


def test_with_zero_days_the_end_itself_terminates(subscription, settings):
    settings.BILLING_TERMINATE_AFTER_DAYS = 0

    _end_for_non_payment(subscription, RENEWAL + timedelta(days=7))

    assert len(jobs("terminate")) == 1


def test_stripes_clock_only_moves_forward():
    stripe_clock_observe(scope="clock_x", at=RENEWAL + timedelta(days=400))
    stripe_clock_observe(scope="clock_x", at=RENEWAL)

    assert stripe_now(scope="clock_x") == RENEWAL + timedelta(days=400)


# --- Refunds ----------------------------------------------------------------------------------------------------------


def _paid_renewal_with_intent(subscription, intent: str = "pi_renewal1") -> SubscriptionInvoice:
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=renewal("paid"), event_created=RENEWAL)
    SubscriptionInvoice.objects.update(stripe_payment_intent_id=intent)
    return SubscriptionInvoice.objects.get()


def test_a_partial_refund_is_recorded_and_mailed_and_nothing_else(subscription):
    _paid_renewal_with_intent(subscription)

    refund = stripe_refund(id="re_part", payment_intent="pi_renewal1", amount=300, created=RENEWAL + timedelta(days=1))
    refund_event_apply(stripe_refund=refund, event_created=RENEWAL + timedelta(days=1))
    refund_event_apply(stripe_refund=refund, event_created=RENEWAL + timedelta(days=1))
    charge_refunded_apply(
        stripe_charge=stripe_charge(payment_intent="pi_renewal1", amount=799, amount_refunded=300),
        event_created=RENEWAL + timedelta(days=1),
    )

    assert RefundRecord.objects.get().amount == 300
    [mail] = emails(EmailPurpose.REFUND_ISSUED)
    assert mail.context["full"] is False
    assert jobs("terminate") == []
    assert not BillingAction.objects.exists()


def test_a_full_refund_of_the_latest_payment_terminates_and_ends_the_subscription(subscription):
    _paid_renewal_with_intent(subscription)

    charge_refunded_apply(
        stripe_charge=stripe_charge(payment_intent="pi_renewal1", amount=799, amount_refunded=799),
        event_created=RENEWAL + timedelta(days=1),
    )
    charge_refunded_apply(
        stripe_charge=stripe_charge(payment_intent="pi_renewal1", amount=799, amount_refunded=799),
        event_created=RENEWAL + timedelta(days=1),
    )

    [terminate] = jobs("terminate")
    assert "refunded in full" in terminate.reason
    [cancel] = BillingAction.objects.all()
    assert cancel.kind == BillingActionKind.CANCEL_NOW


def test_a_test_clock_in_the_past_is_its_own_time_not_ours():
    past = datetime(2025, 3, 1, tzinfo=UTC)

    stripe_clock_observe(scope="clock_past", at=past)

    assert stripe_now(scope="clock_past") == past


def test_on_a_test_clock_in_the_past_a_fresh_failure_does_not_suspend(subscription):
    past_renewal = datetime(2025, 3, 1, tzinfo=UTC)
    failed = stripe_invoice(
        id="in_past",
        subscription="sub_rules",
        status="open",
        created=past_renewal,
        period_start=past_renewal,
        period_end=past_renewal + timedelta(days=31),
        attempt_count=1,
        test_clock="clock_past",
    )

    invoice_event_apply(event_type="invoice.payment_failed", stripe_invoice=failed, event_created=past_renewal)

    assert jobs("suspend") == []


def test_an_unpaid_renewal_seen_after_the_cancellation_still_suspends(subscription):
    ended = RENEWAL + timedelta(days=7)
    _end_for_non_payment(subscription, ended)

    invoice_event_apply(
        event_type="invoice.payment_failed", stripe_invoice=renewal("open", attempts=4), event_created=RENEWAL
    )

    assert [job.decision_key for job in jobs("suspend")] == ["suspend:in_renewal1"]


def test_a_cancellation_at_period_end_is_announced_once_not_again_when_it_ends(subscription):
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules", status="active", period_start=START, period_end=RENEWAL, cancel_at_period_end=True
        ),
        event_created=START + timedelta(days=2),
    )

    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id="sub_rules",
            status="canceled",
            period_start=START,
            period_end=RENEWAL,
            canceled_at=START + timedelta(days=2),
            ended_at=RENEWAL,
            cancellation_reason="cancellation_requested",
        ),
        event_created=RENEWAL,
    )

    assert len(emails(EmailPurpose.CANCELLATION_CONFIRMED)) == 1

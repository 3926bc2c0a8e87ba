"""Adversarial checks of the billing rules: events late, repeated or reordered, two invoices at once, payments after
the end, refunds of a plan change, and staff decisions mixed with the rules' own. Five of them failed on the code
they were written against (a full refund of a plan change's charge terminated the service; an invoice paid after the
end was kept; a staff suspension over a dunning one was refused and then lifted by a payment; a voided overdue
invoice left the account suspended; a late pending refund overwrote a failed one); the rest held already."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Subscription
from billing import selectors
from billing.models import BillingAction, BillingActionKind, InvoiceStatus, RefundRecord, SubscriptionInvoice
from billing.services import (
    billing_sweep,
    charge_refunded_apply,
    hosting_account_suspend,
    hosting_account_terminate,
    invoice_event_apply,
    refund_event_apply,
    stripe_clock_observe,
    subscription_event_apply,
)
from core.exceptions import ApplicationError
from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    HostingAccount,
    HostingAccountStatus,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.services import provisioning_job_run
from tests.accounts.factories import SubscriptionFactory
from tests.billing.stripe_objects import stripe_charge, stripe_invoice, stripe_refund, stripe_subscription
from tests.provisioning.factories import HostingAccountFactory

pytestmark = pytest.mark.django_db

START = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
RENEWAL = START + timedelta(days=30)
NEXT_END = RENEWAL + timedelta(days=31)
SUB = "sub_adv"


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
        stripe_subscription_id=SUB, current_period_start=START, current_period_end=RENEWAL, stripe_state_at=START
    )
    HostingAccountFactory(subscription=subscription)
    return subscription


def invoice(
    status: str,
    *,
    invoice_id: str = "in_adv_renew1",
    created: datetime = RENEWAL,
    period_start: datetime = RENEWAL,
    period_end: datetime = NEXT_END,
    attempts: int = 0,
    paid_at: datetime | None = None,
    billing_reason: str = "subscription_cycle",
    amount: int = 799,
) -> dict:
    return stripe_invoice(
        id=invoice_id,
        subscription=SUB,
        status=status,
        created=created,
        period_start=period_start,
        period_end=period_end,
        attempt_count=attempts,
        paid_at=(paid_at or created) if status == "paid" else None,
        billing_reason=billing_reason,
        amount=amount,
    )


def jobs(action: str) -> list[ProvisioningJob]:
    return list(ProvisioningJob.objects.filter(action=action).order_by("pk"))


def live_jobs(action: str) -> list[ProvisioningJob]:
    return [job for job in jobs(action) if job.status != ProvisioningJobStatus.CANCELED]


def emails(purpose: str) -> list[EmailNotification]:
    return list(EmailNotification.objects.filter(purpose=purpose))


def run_all_jobs() -> None:
    """Carry every waiting job out on the simulated panel, in order."""
    for _ in range(10):
        waiting = ProvisioningJob.objects.filter(
            status__in=(ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)
        ).order_by("pk")
        if not waiting:
            return
        for job in waiting:
            provisioning_job_run(job_id=job.pk)


def fail_then_suspend(invoice_id: str = "in_adv_renew1", created: datetime = RENEWAL) -> None:
    invoice_event_apply(
        event_type="invoice.payment_failed",
        stripe_invoice=invoice("open", invoice_id=invoice_id, created=created, attempts=1),
        event_created=created,
    )
    invoice_event_apply(
        event_type="invoice.payment_failed",
        stripe_invoice=invoice("open", invoice_id=invoice_id, created=created, attempts=3),
        event_created=created + timedelta(days=5),
    )


def account_status(subscription) -> str:
    return HostingAccount.objects.get(subscription=subscription).status


# --- Defects ----------------------------------------------------------------------------------------------------------


def test_refunding_an_upgrade_charge_in_full_does_not_terminate_the_paid_service(subscription):
    # Given a paid renewal, then an upgrade charged now (its own invoice and payment)
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=invoice("paid"), event_created=RENEWAL)
    SubscriptionInvoice.objects.filter(stripe_invoice_id="in_adv_renew1").update(stripe_payment_intent_id="pi_renew1")
    upgrade_at = RENEWAL + timedelta(days=10)
    invoice_event_apply(
        event_type="invoice.paid",
        stripe_invoice=invoice(
            "paid",
            invoice_id="in_adv_upgrade",
            created=upgrade_at,
            period_start=upgrade_at,
            period_end=NEXT_END,
            billing_reason="subscription_update",
            amount=350,
        ),
        event_created=upgrade_at,
    )
    SubscriptionInvoice.objects.filter(stripe_invoice_id="in_adv_upgrade").update(stripe_payment_intent_id="pi_upgrade")

    # When support refunds the upgrade's charge in full (the customer regretted the upgrade)
    charge_refunded_apply(
        stripe_charge=stripe_charge(payment_intent="pi_upgrade", amount=350, amount_refunded=350),
        event_created=upgrade_at + timedelta(hours=1),
    )

    # Then the month paid by the renewal still runs
    assert jobs("terminate") == []
    assert not BillingAction.objects.filter(kind=BillingActionKind.CANCEL_NOW).exists()


def test_an_invoice_paid_after_the_cancellation_is_not_kept_for_a_service_that_is_terminated(subscription):
    # Given a renewal that failed, a suspension, and Stripe cancelling the subscription after the last retry
    fail_then_suspend()
    ended = RENEWAL + timedelta(days=7)
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id=SUB,
            status="canceled",
            period_start=RENEWAL,
            period_end=NEXT_END,
            canceled_at=ended,
            ended_at=ended,
            cancellation_reason="payment_failed",
        ),
        event_created=ended,
    )

    # When the customer pays the open invoice with the link from the payment-failed e-mail
    paid_at = ended + timedelta(days=1)
    invoice_event_apply(
        event_type="invoice.paid", stripe_invoice=invoice("paid", paid_at=paid_at), event_created=paid_at
    )
    stripe_clock_observe(scope="", at=ended + timedelta(days=14))
    billing_sweep()

    # Then they are either served the period they paid for, or given the money back
    refunded = BillingAction.objects.filter(kind__in=(BillingActionKind.REFUND, BillingActionKind.AUTO_REFUND))
    assert refunded.exists() or not jobs("terminate")


def test_a_staff_suspension_over_a_dunning_suspension_survives_the_payment(subscription, admin_user):
    fail_then_suspend()
    run_all_jobs()
    assert account_status(subscription) == HostingAccountStatus.SUSPENDED

    # Staff suspend it for abuse too (refused today: the account is already suspended)
    try:
        hosting_account_suspend(subscription=subscription, reason="Abuse report #99: phishing kit", actor=admin_user)
    except ApplicationError:
        pass

    invoice_event_apply(
        event_type="invoice.paid",
        stripe_invoice=invoice("paid", paid_at=RENEWAL + timedelta(days=6)),
        event_created=RENEWAL + timedelta(days=6),
    )
    run_all_jobs()

    assert account_status(subscription) == HostingAccountStatus.SUSPENDED


def test_voiding_the_overdue_invoice_lifts_the_suspension(subscription):
    fail_then_suspend()
    run_all_jobs()
    assert account_status(subscription) == HostingAccountStatus.SUSPENDED

    # Staff forgive the debt: Stripe voids the invoice
    voided = invoice("open", attempts=3)
    voided["status"] = "void"
    invoice_event_apply(event_type="invoice.voided", stripe_invoice=voided, event_created=RENEWAL + timedelta(days=6))
    run_all_jobs()

    assert account_status(subscription) == HostingAccountStatus.ACTIVE


def test_a_late_pending_refund_does_not_overwrite_a_failed_one(subscription):
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=invoice("paid"), event_created=RENEWAL)
    SubscriptionInvoice.objects.update(stripe_payment_intent_id="pi_renew1")
    created = RENEWAL + timedelta(days=1)

    refund_event_apply(
        stripe_refund=stripe_refund(
            id="re_adv", payment_intent="pi_renew1", amount=300, created=created, status="failed"
        ),
        event_created=created + timedelta(minutes=5),
    )
    refund_event_apply(
        stripe_refund=stripe_refund(
            id="re_adv", payment_intent="pi_renew1", amount=300, created=created, status="pending"
        ),
        event_created=created,
    )

    assert RefundRecord.objects.get().status == "failed"
    assert emails(EmailPurpose.REFUND_ISSUED) == []


# --- What held --------------------------------------------------------------------------------------------------------


def test_a_paid_event_before_the_failed_one_leaves_the_invoice_paid_and_nothing_suspended(subscription):
    invoice_event_apply(
        event_type="invoice.paid",
        stripe_invoice=invoice("paid", paid_at=RENEWAL + timedelta(days=6)),
        event_created=RENEWAL + timedelta(days=6),
    )
    invoice_event_apply(
        event_type="invoice.payment_failed", stripe_invoice=invoice("open", attempts=1), event_created=RENEWAL
    )
    stripe_clock_observe(scope="", at=RENEWAL + timedelta(days=10))
    billing_sweep()

    row = SubscriptionInvoice.objects.get()
    assert (row.status, row.first_failed_at) == (InvoiceStatus.PAID, None)
    assert jobs("suspend") == [] and emails(EmailPurpose.RENEWAL_FAILED) == []
    assert len(emails(EmailPurpose.RENEWAL_RECEIPT)) == 1


def test_two_overdue_invoices_one_paid_stays_suspended_both_paid_unsuspends_once(subscription):
    second = RENEWAL + timedelta(days=31)
    fail_then_suspend("in_adv_a", RENEWAL)
    fail_then_suspend("in_adv_b", second)
    run_all_jobs()
    assert len(live_jobs("suspend")) == 1
    assert account_status(subscription) == HostingAccountStatus.SUSPENDED

    paid_at = second + timedelta(days=6)
    invoice_event_apply(
        event_type="invoice.paid",
        stripe_invoice=invoice(
            "paid",
            invoice_id="in_adv_b",
            created=second,
            period_start=second,
            period_end=second + timedelta(days=28),
            paid_at=paid_at,
        ),
        event_created=paid_at,
    )
    run_all_jobs()
    assert account_status(subscription) == HostingAccountStatus.SUSPENDED
    assert jobs("unsuspend") == []

    for _ in range(2):
        invoice_event_apply(
            event_type="invoice.paid",
            stripe_invoice=invoice("paid", invoice_id="in_adv_a", paid_at=paid_at + timedelta(hours=1)),
            event_created=paid_at + timedelta(hours=1),
        )
    run_all_jobs()
    assert account_status(subscription) == HostingAccountStatus.ACTIVE
    assert len(jobs("unsuspend")) == 1


def test_a_refund_event_before_the_invoice_is_recorded_is_kept_and_counted(subscription):
    # The refund names our subscription in its metadata; the invoice is recorded afterwards
    created = RENEWAL + timedelta(hours=2)
    refund_event_apply(
        stripe_refund=stripe_refund(
            id="re_early", payment_intent="pi_renew1", amount=799, created=created, subscription_id=subscription.pk
        ),
        event_created=created,
    )
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=invoice("paid"), event_created=RENEWAL)
    SubscriptionInvoice.objects.update(stripe_payment_intent_id="pi_renew1")

    assert RefundRecord.objects.get().subscription == subscription
    assert selectors.invoice_refundable_amount(invoice=SubscriptionInvoice.objects.get()) == 0


def test_staff_suspension_then_termination_is_final_and_a_payment_changes_nothing(subscription, admin_user):
    hosting_account_suspend(subscription=subscription, reason="Abuse report #1", actor=admin_user)
    run_all_jobs()
    # The subscription has already ended at Stripe, so terminating makes no Stripe call
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id=SUB,
            status="canceled",
            period_start=START,
            period_end=RENEWAL,
            canceled_at=START + timedelta(days=3),
            ended_at=START + timedelta(days=3),
            cancellation_reason="cancellation_requested",
        ),
        event_created=START + timedelta(days=3),
    )
    subscription.refresh_from_db()
    hosting_account_terminate(subscription=subscription, reason="Abuse confirmed", actor=admin_user)
    run_all_jobs()
    assert account_status(subscription) == HostingAccountStatus.TERMINATED

    invoice_event_apply(event_type="invoice.paid", stripe_invoice=invoice("paid"), event_created=RENEWAL)
    run_all_jobs()
    assert account_status(subscription) == HostingAccountStatus.TERMINATED
    assert jobs("unsuspend") == []


def test_an_older_subscription_event_does_not_clear_cancel_at_period_end_or_the_period(subscription):
    newer = START + timedelta(days=3)
    subscription_event_apply(
        stripe_subscription=stripe_subscription(
            id=SUB, status="active", period_start=START, period_end=RENEWAL, cancel_at_period_end=True
        ),
        event_created=newer,
    )
    subscription_event_apply(
        stripe_subscription=stripe_subscription(id=SUB, status="active", period_start=START, period_end=RENEWAL),
        event_created=START + timedelta(days=1),
    )

    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True
    assert len(emails(EmailPurpose.CANCELLATION_CONFIRMED)) == 1

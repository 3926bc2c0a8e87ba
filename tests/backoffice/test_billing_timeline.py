"""The order timeline tells the billing half too (invoices, refunds, decisions, account changes) in a fixed number
of queries; the dashboard lists the failed setups heading for an automatic refund, each with its time."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice.selectors import checkout_session_timeline, failed_setups_heading_for_refund
from billing.models import BillingAction, RefundRecord, SubscriptionInvoice
from provisioning.models import HostingAccountStatusChange, ProvisioningJobStatus
from tests.accounts.factories import SubscriptionFactory
from tests.provisioning.factories import HostingAccountFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db


def renewals(subscription, count: int, *, first: int = 0) -> None:
    start = timezone.now() - timedelta(days=31 * count)
    for n in range(first, first + count):
        at = start + timedelta(days=31 * (n - first))
        failed = n == first + count - 1
        SubscriptionInvoice.objects.create(
            subscription=subscription,
            stripe_invoice_id=f"in_test_tl{subscription.pk}_{n}",
            number=f"TL-{n:04d}",
            billing_reason="subscription_cycle" if n else "subscription_create",
            status="open" if failed else "paid",
            amount_due=799,
            amount_paid=0 if failed else 799,
            currency="usd",
            attempt_count=2 if failed else 1,
            first_failed_at=at + timedelta(hours=1) if failed else None,
            paid_at=None if failed else at,
            period_start=at,
            period_end=at + timedelta(days=31),
            stripe_payment_intent_id=f"pi_test_tl{n}",
            hosted_invoice_url=f"https://sandbox.test/invoices/{n}",
            stripe_created=at,
            stripe_state_at=at,
        )


@pytest.fixture
def billed(db, support_agent):
    subscription = SubscriptionFactory(stripe_subscription_id="sub_test_timeline_billing")
    account = HostingAccountFactory(subscription=subscription)
    renewals(subscription, 3)
    RefundRecord.objects.create(
        subscription=subscription,
        stripe_refund_id="re_test_tl1",
        amount=250,
        currency="usd",
        status="succeeded",
        stripe_payment_intent_id="pi_test_tl0",
        stripe_created=timezone.now(),
    )
    BillingAction.objects.create(
        subscription=subscription, kind="suspend", status="done", actor=support_agent, reason="Abuse report 12"
    )
    HostingAccountStatusChange.objects.create(
        account=account, from_status="active", to_status="suspended", reason="Abuse report 12"
    )
    return subscription


def test_the_timeline_shows_invoices_refunds_actions_and_account_changes(support_client, billed):
    page = support_client.get(
        reverse("admin:checkout_checkoutsession_change", args=[billed.checkout_session_id])
    ).content.decode()

    for text in (
        "Invoice TL-0000 created (subscription_create): $7.99 USD due",
        "Invoice TL-0001 paid: $7.99 USD",
        "Invoice TL-0002: payment failed",
        "Refund re_test_tl1: $2.50 USD (succeeded)",
        "Suspend: done",
        "By support@migrahosting.test: Abuse report 12",
        "Hosting account active → suspended",
        "https://dashboard.stripe.com/test/invoices/in_test_tl",
    ):
        assert text in page, text


def test_the_timeline_costs_the_same_queries_with_three_or_thirty_invoices(billed, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    session = billed.checkout_session
    checkout_session_timeline(session=session)  # the content type cache warmed
    with CaptureQueriesContext(connection) as few:
        checkout_session_timeline(session=session)
    renewals(billed, 30, first=3)
    BillingAction.objects.create(subscription=billed, kind="unsuspend", status="done", reason="Paid")

    with django_assert_num_queries(len(few.captured_queries)):
        timeline = checkout_session_timeline(session=session)

    assert sum(entry.kind == "invoice" for entry in timeline.entries) > 30


def test_the_dashboard_lists_failed_setups_with_the_time_of_their_refund(support_client, settings):
    settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS = 24
    failed_at = timezone.now() - timedelta(hours=3)
    job = ProvisioningJobFactory(
        status=ProvisioningJobStatus.FAILED,
        finished_at=failed_at,
        last_error="panel said no",
        subscription__customer__email="x@example.com",
    )
    ProvisioningJobFactory(status=ProvisioningJobStatus.SUCCEEDED)

    [setup], total = failed_setups_heading_for_refund()
    page = support_client.get(reverse("admin:index")).content.decode()

    assert (setup.job, setup.refund_at, total) == (job, failed_at + timedelta(hours=24), 1)
    panel = page.split('id="failed-setups"')[1]
    assert f"{failed_at + timedelta(hours=24):%Y-%m-%d %H:%M} UTC" in panel
    assert job.subscription.customer.email in panel and "panel said no" in panel
    assert "in 20" in panel  # hours left


def test_the_dashboard_says_when_automatic_refunds_are_off(support_client, settings):
    settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS = 0
    ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED, finished_at=timezone.now())

    page = support_client.get(reverse("admin:index")).content.decode()

    assert "Automatic refunds are off" in page and "never (off)" in page


def test_the_dashboard_counts_failed_setups_only_up_to_its_cap(monkeypatch):
    import backoffice.selectors

    monkeypatch.setattr(backoffice.selectors, "FAILED_SETUPS_COUNT_CAP", 3)
    for _ in range(5):
        ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED, finished_at=timezone.now())

    rows, total = failed_setups_heading_for_refund(limit=2)

    assert (len(rows), total) == (2, 4)  # counted to the cap and one more ("3+"), never all five

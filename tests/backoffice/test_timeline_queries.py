"""An order's timeline costs a fixed number of queries, one or two per source, whatever the number of rows each
source holds: an order with everything (Stripe events and deliveries, jobs and their attempts, e-mails, invoices,
refunds, billing decisions, account changes, staff's log) and a bare order without a subscription."""

import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from backoffice.selectors import checkout_session_timeline
from billing.models import BillingAction, RefundRecord, SubscriptionInvoice
from checkout.models import CheckoutSession
from provisioning.models import (
    HostingAccountStatusChange,
    ProvisioningAction,
    ProvisioningAttempt,
    ProvisioningJobStatus,
)
from tests.accounts.factories import SubscriptionFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import EmailNotificationFactory, HostingAccountFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db

# Events, deliveries, the subscription (with its customer, product and price), the customer's first member (with the
# user), jobs (with who asked), their attempts, invoices, refunds, billing decisions (with who decided), the account's
# status changes, e-mails, staff's log (with the user). The content type of sessions is cached after its first read.
FULL_ORDER_QUERIES = 12
# Events, deliveries, the subscription (none), e-mails, staff's log.
BARE_ORDER_QUERIES = 5


def order_with_everything(n: int, *, staff) -> CheckoutSession:
    """A paid order with `n` rows of every source the timeline reads (n attempts for each of its n jobs)."""
    subscription = SubscriptionFactory(
        stripe_subscription_id=f"sub_test_tlq{n}",
        checkout_session__status="completed",
        checkout_session__completed_at=timezone.now(),
    )
    session = subscription.checkout_session
    account = HostingAccountFactory(subscription=subscription)
    now = timezone.now()
    for i in range(n):
        event = Event.objects.create(
            id=f"evt_test_tlq{n}_{i}",
            type="invoice.paid",
            livemode=False,
            data={"object": {"id": session.stripe_session_id, "object": "checkout.session"}},
        )
        body = json.dumps({"id": event.id, "type": event.type, "data": {"object": {"id": session.stripe_session_id}}})
        WebhookEventTrigger.objects.create(remote_ip="127.0.0.1", headers={}, body=body, valid=True, event=event)
        WebhookEventTrigger.objects.create(
            remote_ip="127.0.0.1", headers={}, body=body, valid=True, exception="Stripe could not be reached"
        )
        job = ProvisioningJobFactory(
            subscription=subscription,
            action=ProvisioningAction.PROVISION if i == 0 else ProvisioningAction.SUSPEND,
            status=ProvisioningJobStatus.FAILED,
            attempts=n,
            reason=f"Abuse report {i}",
            requested_by=staff,
        )
        for number in range(1, n + 1):
            ProvisioningAttempt.objects.create(job=job, number=number, started_at=now, finished_at=now, error="no")
        EmailNotificationFactory(checkout_session=session, key=f"attempt-{i}")
        SubscriptionInvoice.objects.create(
            subscription=subscription,
            stripe_invoice_id=f"in_test_tlq{n}_{i}",
            status="paid",
            amount_due=799,
            amount_paid=799,
            currency="usd",
            first_failed_at=now,
            paid_at=now,
            stripe_payment_intent_id=f"pi_test_tlq{n}_{i}",
            stripe_created=now,
            stripe_state_at=now,
        )
        RefundRecord.objects.create(
            subscription=subscription,
            stripe_refund_id=f"re_test_tlq{n}_{i}",
            amount=100,
            currency="usd",
            status="succeeded",
            stripe_payment_intent_id=f"pi_test_tlq{n}_{i}",
            stripe_created=now,
        )
        BillingAction.objects.create(
            subscription=subscription, kind="suspend", status="done", actor=staff, reason=f"Abuse report {i}"
        )
        HostingAccountStatusChange.objects.create(
            account=account, from_status="active", to_status="suspended", reason=f"Abuse report {i}"
        )
        LogEntry.objects.log_actions(
            user_id=staff.pk, queryset=[session], action_flag=CHANGE, change_message=f"Note {i}", single_object=True
        )
    return session


@pytest.fixture(autouse=True)
def session_content_type_cached(db):
    ContentType.objects.get_for_model(CheckoutSession)


@pytest.mark.parametrize("n", [1, 4])
def test_an_order_with_everything_costs_the_same_queries_for_one_row_of_each_as_for_many(
    n, support_agent, django_assert_num_queries
):
    session = order_with_everything(n, staff=support_agent)

    with django_assert_num_queries(FULL_ORDER_QUERIES):
        timeline = checkout_session_timeline(session=session)

    kinds = [entry.kind for entry in timeline.entries]
    for kind, count in {
        "stripe_event": n,
        "delivery": n,  # the failed ones; a processed delivery is told on its event's line
        "job": n,
        "attempt": n * n,
        "email": n,
        "invoice": 3 * n,  # created, failed, paid
        "refund": n,
        "billing": n,
        "staff": n,
    }.items():
        assert kinds.count(kind) == count, kind
    assert kinds.count("account") == 1 + n  # the subscription made, and each status change
    assert (len(timeline.jobs), len(timeline.emails)) == (n, n)


def test_a_bare_order_costs_five_queries(django_assert_num_queries):
    session = CheckoutSessionFactory()

    with django_assert_num_queries(BARE_ORDER_QUERIES):
        timeline = checkout_session_timeline(session=session)

    assert [entry.kind for entry in timeline.entries] == ["session"]
    assert timeline.subscription is None and timeline.jobs == [] and timeline.emails == []

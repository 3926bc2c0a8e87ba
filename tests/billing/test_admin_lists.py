"""The billing records' admin lists: read-only for everyone, searchable by invoice number, Stripe ids and the
customer's e-mail."""

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import BillingAction, RefundRecord, SubscriptionInvoice
from tests.accounts.factories import SubscriptionFactory
from tests.backoffice.conftest import staff_groups, superuser, support_agent, support_client  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(db):
    now = timezone.now()
    mine = SubscriptionFactory(checkout_session__email="Ann.Payer@Example.com", stripe_subscription_id="sub_test_ann")
    other = SubscriptionFactory(checkout_session__email="bob@example.com", stripe_subscription_id="sub_test_bob")
    for subscription, name in ((mine, "ann"), (other, "bob")):
        SubscriptionInvoice.objects.create(
            subscription=subscription,
            stripe_invoice_id=f"in_test_{name}",
            number=f"{name.upper()}-0001",
            status="paid",
            amount_due=799,
            amount_paid=799,
            currency="usd",
            stripe_payment_intent_id=f"pi_test_{name}",
            stripe_created=now,
            stripe_state_at=now,
        )
        RefundRecord.objects.create(
            subscription=subscription,
            stripe_refund_id=f"re_test_{name}",
            amount=100,
            currency="usd",
            status="succeeded",
            stripe_payment_intent_id=f"pi_test_{name}",
            stripe_charge_id=f"ch_test_{name}",
            stripe_created=now,
        )
        BillingAction.objects.create(
            subscription=subscription,
            kind="refund",
            status="done",
            amount=100,
            reason=f"goodwill for {name}",
            stripe_object_id=f"in_test_{name}",
        )
    return mine


LISTS = ["subscriptioninvoice", "refundrecord", "billingaction"]


@pytest.mark.parametrize("model", LISTS)
@pytest.mark.parametrize("term", ["ann.payer@example.com", "ANN.PAYER@EXAMPLE.COM", "sub_test_ann"])
def test_each_list_finds_a_customer_by_email_and_subscription(support_client, records, model, term):
    page = support_client.get(reverse(f"admin:billing_{model}_changelist"), {"q": term}).content.decode()

    assert "ann.payer@example.com" in page.lower()
    assert "bob@example.com" not in page


@pytest.mark.parametrize(
    "model, term",
    [
        ("subscriptioninvoice", "ANN-0001"),
        ("subscriptioninvoice", "in_test_ann"),
        ("subscriptioninvoice", "pi_test_ann"),
        ("refundrecord", "re_test_ann"),
        ("refundrecord", "pi_test_ann"),
        ("refundrecord", "ch_test_ann"),
        ("billingaction", "in_test_ann"),
    ],
)
def test_stripe_ids_and_invoice_numbers_find_the_row(support_client, records, model, term):
    page = support_client.get(reverse(f"admin:billing_{model}_changelist"), {"q": term}).content.decode()

    assert "ann.payer@example.com" in page.lower() and "bob@example.com" not in page


@pytest.mark.parametrize("model", LISTS)
def test_nobody_adds_changes_or_deletes_billing_records(client, superuser, records, model):
    client.force_login(superuser)
    obj = (
        {"subscriptioninvoice": SubscriptionInvoice, "refundrecord": RefundRecord, "billingaction": BillingAction}[
            model
        ]
        .objects.filter(subscription=records)
        .get()
    )

    assert client.get(reverse(f"admin:billing_{model}_add")).status_code == 403
    assert client.get(reverse(f"admin:billing_{model}_delete", args=[obj.pk])).status_code == 403
    page = client.get(reverse(f"admin:billing_{model}_change", args=[obj.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(reverse(f"admin:billing_{model}_change", args=[obj.pk]), {"status": "void"}).status_code == 403


def test_the_invoice_page_links_to_stripe(support_client, records):
    invoice = records.invoices.get()

    page = support_client.get(reverse("admin:billing_subscriptioninvoice_change", args=[invoice.pk])).content.decode()

    assert "https://dashboard.stripe.com/test/invoices/in_test_ann" in page and "$7.99 USD" in page

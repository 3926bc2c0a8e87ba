"""The client area's fixtures: customers with members in each role, services with their hosting account and
invoices, and (re-exported) the billing tests' sandbox world, which buys through the real checkout service."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import CustomerMembership
from billing.models import SubscriptionInvoice
from tests.accounts.factories import SubscriptionFactory, UserFactory
from tests.billing.conftest import tasks_in_process, world  # noqa: F401  (fixtures, used by name)
from tests.provisioning.factories import HostingAccountFactory

PASSWORD = "correct horse battery"


def member(customer, role: str, email: str | None = None):
    """A user with a password, in `customer` with `role`."""
    user = UserFactory(**({"email": email} if email else {}), password=PASSWORD)
    CustomerMembership.objects.create(customer=customer, user=user, role=role)
    return user


def invoice_for(subscription, *, number: str, status: str = "paid", amount: int = 799, days_ago: int = 0):
    created = timezone.now() - timedelta(days=days_ago)
    return SubscriptionInvoice.objects.create(
        subscription=subscription,
        stripe_invoice_id=f"in_test_{number}",
        number=number,
        status=status,
        amount_due=amount,
        amount_paid=amount if status == "paid" else 0,
        amount_remaining=0 if status == "paid" else amount,
        currency=subscription.currency,
        paid_at=created if status == "paid" else None,
        period_start=created,
        period_end=created + timedelta(days=30),
        hosted_invoice_url=f"https://invoice.stripe.test/i/{number}",
        invoice_pdf=f"https://invoice.stripe.test/i/{number}/pdf",
        stripe_created=created,
        stripe_state_at=created,
    )


@pytest.fixture
def service(db):
    """An active monthly service with its hosting account and one paid invoice; its owner has a password."""
    period_end = timezone.now() + timedelta(days=20)
    subscription = SubscriptionFactory(
        stripe_subscription_id="sub_test_client01",
        stripe_customer_id="cus_test_client01",
        current_period_start=period_end - timedelta(days=30),
        current_period_end=period_end,
        checkout_session__domain_info={"mode": "new-or-transfer", "value": "client-area.example.com"},
    )
    HostingAccountFactory(subscription=subscription, username="clientar", server="web02.sim.migrahosting.test")
    invoice_for(subscription, number="INV-0001", days_ago=10)
    owner = subscription.customer.memberships.get().user
    owner.set_password(PASSWORD)
    owner.save()
    return subscription


@pytest.fixture
def owner(service):
    return service.customer.memberships.get(role="owner").user


@pytest.fixture
def other_service(db):
    """Another customer's service, with an invoice: nobody above may see it."""
    subscription = SubscriptionFactory(
        stripe_subscription_id="sub_test_other01",
        stripe_customer_id="cus_test_other01",
        current_period_end=timezone.now() + timedelta(days=5),
        checkout_session__domain_info={"mode": "new-or-transfer", "value": "someone-else.example.com"},
    )
    HostingAccountFactory(subscription=subscription, username="otherone")
    invoice_for(subscription, number="OTHER-0001")
    return subscription

"""The Billing Portal ("Manage payment method") against the Stripe sandbox: a session for the subscription's Stripe
customer that returns to our page, and Stripe's failures as an ApplicationError that says nothing of Stripe."""

import pytest

from accounts.models import Customer
from billing.portal import billing_portal_url
from core.exceptions import ApplicationError

pytestmark = pytest.mark.django_db

RETURN_URL = "https://shop.example/account/services/1/"


def test_a_portal_session_for_the_subscriptions_customer_returns_to_our_page(world):
    subscription = world.buy("portal@example.com")

    url = billing_portal_url(subscription=subscription, return_url=RETURN_URL)

    [request] = world.sandbox.requests("POST", "/v1/billing_portal/sessions")
    assert request["params"]["customer"] == subscription.stripe_customer_id
    assert request["params"]["return_url"] == RETURN_URL
    assert url.startswith("http")


def test_a_portal_session_for_a_customer(world):
    subscription = world.buy("portal-customer@example.com")

    url = billing_portal_url(customer=subscription.customer, return_url=RETURN_URL)

    [request] = world.sandbox.requests("POST", "/v1/billing_portal/sessions")
    assert request["params"]["customer"] == subscription.customer.stripe_customer_id and url


def test_a_stripe_failure_is_an_application_error_without_stripes_words(world):
    subscription = world.buy("portal-down@example.com")
    world.sandbox.inject_fault(path_prefix="/v1/billing_portal/sessions", method="POST", status=500, count=10)

    with pytest.raises(ApplicationError) as raised:
        billing_portal_url(subscription=subscription, return_url=RETURN_URL)

    assert raised.value.code in ("billing_portal_unavailable", "payment_provider_unavailable")
    assert "Stripe" not in raised.value.message


def test_a_customer_without_a_stripe_customer_has_no_portal(db):
    customer = Customer.objects.create(email="nobody@example.com")

    with pytest.raises(ApplicationError) as raised:
        billing_portal_url(customer=customer, return_url=RETURN_URL)

    assert raised.value.code == "no_billing_account"


def test_a_relative_return_url_is_a_programming_error(db):
    with pytest.raises(ValueError):
        billing_portal_url(customer=Customer(email="a@example.com", stripe_customer_id="cus_1"), return_url="/account/")


def test_the_portal_can_open_on_the_card_update(world):
    subscription = world.buy("portal-card@example.com")

    billing_portal_url(subscription=subscription, return_url=RETURN_URL, flow="payment_method_update")

    [request] = world.sandbox.requests("POST", "/v1/billing_portal/sessions")
    assert request["params"]["flow_data"] == {"type": "payment_method_update"}

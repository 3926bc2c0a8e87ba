"""POST /api/checkout/create-session: the seed's test table and contract, checked against what Stripe received."""

import pytest
from django.conf import settings

from checkout.models import CheckoutSession
from core.stripe_api import stripe_client
from tests.checkout.conftest import order

pytestmark = pytest.mark.django_db


def stripe_session(session_id: str):
    return stripe_client().v1.checkout.sessions.retrieve(session_id, {"expand": ["line_items"]})


@pytest.mark.parametrize(
    ("plan", "cycle", "coupon", "unit_amount", "interval", "interval_count", "discount"),
    [
        ("starter", "monthly", None, 799, "month", 1, 0),  # seed test 1
        ("premium", "yearly", None, 4788, "year", 1, 0),  # seed test 2: 3.99 x 12
        ("business", "biennial", None, 11976, "year", 2, 0),  # seed test 3: 4.99 x 24
        ("starter", "monthly", "WELCOME10", 799, "month", 1, 80),  # seed test 4: 10 % of 7.99, rounded
    ],
)
def test_seed_cases_create_the_stripe_session_priced_from_the_catalog(
    create_session, stripe_sandbox, plan, cycle, coupon, unit_amount, interval, interval_count, discount
):
    response = create_session(order(planId=plan, billingCycle=cycle, couponCode=coupon))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    row = CheckoutSession.objects.get()
    assert body["sessionId"] == row.stripe_session_id
    assert body["url"] == row.stripe_url and body["url"].startswith(stripe_sandbox.url)
    assert (row.product_code, row.billing_cycle, row.amount, row.currency, row.status) == (
        plan,
        cycle,
        unit_amount,
        "usd",
        "pending",
    )
    assert row.amount_discount == discount
    assert row.coupon_code == coupon

    sent = stripe_session(row.stripe_session_id)
    assert sent.mode == "subscription"
    assert sent.customer_email == "john@example.com"
    assert sent.client_reference_id == str(row.id)
    assert sent.metadata["checkout_session_id"] == str(row.id)
    assert sent.metadata["product_code"] == plan
    assert sent.amount_subtotal == unit_amount
    assert sent.amount_total == unit_amount - discount
    assert sent.total_details.amount_discount == discount
    assert sent.success_url == settings.CHECKOUT_SUCCESS_URL
    assert sent.cancel_url == settings.CHECKOUT_CANCEL_URL
    assert sent.expires_at == int(row.expires_at.timestamp())
    [item] = sent.line_items.data
    assert item.quantity == 1
    assert item.price.unit_amount == unit_amount
    assert item.price.currency == "usd"
    assert (item.price.recurring.interval, item.price.recurring.interval_count) == (interval, interval_count)
    assert bool(sent.discounts) == bool(coupon)

    [create_call] = stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")
    params = create_call["params"]
    assert params["subscription_data"]["metadata"]["checkout_session_id"] == str(row.id)
    [line_item] = params["line_items"].values() if isinstance(params["line_items"], dict) else params["line_items"]
    assert line_item["price_data"]["product_data"]["description"] == f"hosting - {cycle}"
    assert create_call["idempotency_key"] == f"checkout-session-create-{row.id}"


def test_seed_case_5_unknown_plan_is_a_400_with_the_seed_message(create_session, stripe_sandbox):
    response = create_session(order(planId="invalid"))

    assert response.status_code == 400
    assert response.json() == {
        "error": "No active price for plan invalid (monthly)",
        "code": "plan_unavailable",
        "field": "planId",
    }
    assert not CheckoutSession.objects.exists()
    assert stripe_sandbox.requests(method="POST") == []


@pytest.mark.parametrize(
    ("alias", "cycle", "unit_amount"),
    [
        ("annually", "yearly", 3588),
        ("biennially", "biennial", 4776),
        ("triennially", "triennial", 5364),
        ("Monthly", "monthly", 799),
    ],
)
def test_marketing_site_cycle_names_are_accepted(create_session, alias, cycle, unit_amount):
    response = create_session(order(billingCycle=alias))

    assert response.status_code == 200, response.content
    row = CheckoutSession.objects.get()
    assert (row.billing_cycle, row.amount) == (cycle, unit_amount)


def test_first_and_last_name_make_the_customer_name(create_session):
    response = create_session(order(customer={"firstName": "Ada", "lastName": "Lovelace", "email": "ADA@Example.com"}))

    assert response.status_code == 200, response.content
    row = CheckoutSession.objects.get()
    assert (row.customer_name, row.email) == ("Ada Lovelace", "ada@example.com")


def test_domain_is_normalised_and_recorded(create_session, stripe_sandbox):
    response = create_session(order(domain={"mode": "new-or-transfer", "value": "Example.COM."}))

    assert response.status_code == 200, response.content
    row = CheckoutSession.objects.get()
    assert row.domain_info == {"mode": "new-or-transfer", "value": "example.com"}
    assert stripe_session(row.stripe_session_id).metadata["domain"] == "example.com"


def test_amounts_and_currency_sent_by_the_client_are_ignored(create_session):
    tampered = order(
        amount=1, price=1, unit_amount=1, currency="eur", unitAmount=1, priceId="price_cheap", total=0, discount=100
    )

    response = create_session(tampered)

    assert response.status_code == 200, response.content
    row = CheckoutSession.objects.get()
    sent = stripe_session(row.stripe_session_id)
    assert (row.amount, row.currency) == (799, "usd")
    assert (sent.amount_total, sent.currency) == (799, "usd")


def test_trial_applies_the_price_trial_days(create_session, stripe_sandbox):
    from catalog.models import Price

    Price.objects.filter(product__code="starter", billing_cycle="monthly").update(trial_days=14)

    response = create_session(order(trialActive=True))

    assert response.status_code == 200, response.content
    assert CheckoutSession.objects.get().trial_days == 14
    [call] = stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert str(call["params"]["subscription_data"]["trial_period_days"]) == "14"


def test_trial_on_a_price_without_one_is_refused(create_session, stripe_sandbox):
    response = create_session(order(trialActive=True))

    assert response.status_code == 400
    assert response.json()["code"] == "trial_unavailable"
    assert response.json()["field"] == "trialActive"
    assert not CheckoutSession.objects.exists()


def test_coupon_is_created_in_stripe_once_and_reused(create_session, stripe_sandbox):
    first = create_session(order(couponCode="welcome10"))
    second = create_session(order(couponCode="WELCOME10", customer={"name": "B", "email": "b@example.com"}))

    assert first.status_code == second.status_code == 200
    assert len(stripe_sandbox.requests(method="POST", path="/v1/coupons")) == 1
    assert CheckoutSession.objects.filter(coupon_code="WELCOME10").count() == 2


def test_coupon_lost_by_stripe_is_created_again(create_session, stripe_sandbox):
    assert create_session(order(couponCode="WELCOME10")).status_code == 200
    stripe_sandbox.reset()  # Stripe forgets the coupon; our cache still says it exists

    response = create_session(order(couponCode="WELCOME10", customer={"name": "B", "email": "b@example.com"}))

    assert response.status_code == 200, response.content
    assert len(stripe_sandbox.requests(method="POST", path="/v1/coupons")) == 1
    assert CheckoutSession.objects.count() == 2


def test_create_session_makes_at_most_five_queries(create_session, django_assert_max_num_queries):
    # The latest session for the request, the price, the coupon, a returning buyer's Stripe customer, the insert.
    with django_assert_max_num_queries(5):
        response = create_session(order(couponCode="WELCOME10", domain={"value": "example.org"}))
    assert response.status_code == 200, response.content


def test_stripe_unreachable_answers_503_and_writes_nothing(create_session, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: connection refused

    response = create_session(order())

    assert response.status_code == 503
    assert response.json()["code"] == "payment_provider_unavailable"
    assert "nothing was charged" in response.json()["error"]
    assert not CheckoutSession.objects.exists()


def test_stripe_failing_answers_502_and_writes_nothing(create_session, stripe_sandbox):
    stripe_sandbox.inject_fault(path_prefix="/v1/checkout/sessions", method="POST", status=500, count=1)

    response = create_session(order())

    assert response.status_code == 502
    assert response.json()["code"] == "payment_provider_error"
    assert "Traceback" not in response.content.decode()
    assert not CheckoutSession.objects.exists()

    retry = create_session(order())
    assert retry.status_code == 200
    assert CheckoutSession.objects.count() == 1


def test_a_returning_buyer_checks_out_as_the_same_stripe_customer(create_session, stripe_sandbox):
    # Given a customer we already know at Stripe
    from tests.accounts.factories import CustomerFactory

    stripe_customer = stripe_client().v1.customers.create({"email": "back@example.com"})
    CustomerFactory(email="Back@Example.com", stripe_customer_id=stripe_customer.id)

    # When they order again (the e-mail in another case)
    response = create_session(order(customer={"name": "B", "email": "back@example.com"}))

    # Then Stripe's session names that customer and no e-mail of its own
    assert response.status_code == 200, response.content
    sent = stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")[-1]["params"]
    assert sent["customer"] == stripe_customer.id
    assert "customer_email" not in sent


def test_a_new_buyer_checks_out_with_their_email(create_session, stripe_sandbox):
    response = create_session(order(customer={"name": "N", "email": "new@example.com"}))

    assert response.status_code == 200, response.content
    sent = stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")[-1]["params"]
    assert sent["customer_email"] == "new@example.com"
    assert "customer" not in sent

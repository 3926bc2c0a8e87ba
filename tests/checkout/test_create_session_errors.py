"""Every invalid request gets a 400 naming the field, and leaves nothing behind: no row, no Stripe call."""

import pytest

from checkout.models import CheckoutSession
from tests.checkout.conftest import CREATE_URL, order

pytestmark = pytest.mark.django_db


def assert_rejected(response, sandbox, *, status=400, field=None, code=None, mentions=None, field_in_message=True):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) <= {"error", "code", "field"} and body["error"] and body["code"]
    if field is not None:
        assert body.get("field") == field, body
        assert not field_in_message or field in body["error"], body
    if code is not None:
        assert body["code"] == code, body
    if mentions is not None:
        assert mentions in body["error"], body
    assert not CheckoutSession.objects.exists()
    assert sandbox.requests(method="POST") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order(customer={"name": "No Mail"}), "customer.email"),
        (order(customer={"name": "x", "email": "not-an-address"}), "customer.email"),
        (order(customer={"name": "x", "email": 42}), "customer.email"),
        (order(customer={"name": "x", "email": "a" * 250 + "@example.com"}), "customer.email"),
        (order(customer="john@example.com"), "customer"),
        ({k: v for k, v in order().items() if k != "customer"}, "customer"),
        ({k: v for k, v in order().items() if k != "planId"}, "planId"),
        (order(planId=123), "planId"),
        (order(planId="p" * 101), "planId"),
        (order(billingCycle="weekly"), "billingCycle"),
        (order(billingCycle=["monthly"]), "billingCycle"),
        (order(trialActive="yes"), "trialActive"),
        (order(couponCode=10), "couponCode"),
        (order(couponCode="C" * 51), "couponCode"),
        (order(customer={"name": "n" * 256, "email": "a@example.com"}), "customer.name"),
        (order(domain={"mode": "new", "value": "not a domain"}), "domain.value"),
        (order(domain={"mode": "new", "value": "-bad-.com"}), "domain.value"),
        (order(domain={"mode": "new", "value": "localhost"}), "domain.value"),
        (order(domain={"mode": "new", "value": "a" * 64 + ".com"}), "domain.value"),
        (order(domain={"mode": "new"}), "domain.value"),
        (order(domain={"mode": "steal", "value": "example.com"}), "domain.mode"),
    ],
)
def test_invalid_field_is_a_400_naming_it(create_session, stripe_sandbox, body, field):
    assert_rejected(create_session(body), stripe_sandbox, field=field)


def test_unknown_coupon_is_a_400(create_session, stripe_sandbox):
    assert_rejected(
        create_session(order(couponCode="NOPE")),
        stripe_sandbox,
        field="couponCode",
        code="coupon_invalid",
        mentions="NOPE",
        field_in_message=False,
    )


def test_expired_coupon_is_a_400(create_session, stripe_sandbox):
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import Coupon

    Coupon.objects.filter(code="WELCOME10").update(valid_until=timezone.now() - timedelta(days=1))

    assert_rejected(
        create_session(order(couponCode="WELCOME10")),
        stripe_sandbox,
        field="couponCode",
        code="coupon_expired",
        field_in_message=False,
    )


def test_inactive_price_is_unavailable(create_session, stripe_sandbox):
    from catalog.models import Price

    Price.objects.filter(product__code="premium", billing_cycle="yearly").update(active=False)

    assert_rejected(
        create_session(order(planId="premium", billingCycle="yearly")),
        stripe_sandbox,
        field="planId",
        code="plan_unavailable",
        mentions="No active price for plan premium (yearly)",
        field_in_message=False,
    )


def test_malformed_json_is_a_400(api, catalog, stripe_sandbox):
    response = api.post(CREATE_URL, data='{"planId": "starter",', content_type="application/json")
    assert_rejected(response, stripe_sandbox, code="malformed_json")


def test_json_that_is_not_an_object_is_a_400(api, catalog, stripe_sandbox):
    response = api.post(CREATE_URL, data='["starter"]', content_type="application/json")
    assert_rejected(response, stripe_sandbox)


def test_form_encoded_body_is_a_415(api, catalog, stripe_sandbox):
    response = api.post(CREATE_URL, data="planId=starter", content_type="application/x-www-form-urlencoded")
    assert_rejected(response, stripe_sandbox, status=415)


def test_oversized_body_is_a_413(api, catalog, stripe_sandbox):
    body = order(padding="x" * 20_000)
    assert_rejected(api.post(CREATE_URL, body, format="json"), stripe_sandbox, status=413, code="payload_too_large")


def test_overlong_idempotency_key_is_a_400(create_session, stripe_sandbox):
    response = create_session(order(), HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert_rejected(response, stripe_sandbox, field="Idempotency-Key")


def test_wrong_method_is_a_405_in_the_error_shape(api, stripe_sandbox, db):
    response = api.get(CREATE_URL)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"

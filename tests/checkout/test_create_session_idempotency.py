"""A retried or repeated request never makes a second session, at Stripe or in our table."""

import pytest

from checkout.models import CheckoutSession, CheckoutSessionStatus
from tests.checkout.conftest import order
from tests.concurrency import run_at_once
from tests.conftest import database_is_postgres

pytestmark = pytest.mark.django_db


def test_repeating_a_request_returns_the_same_open_session(create_session, stripe_sandbox):
    first = create_session(order())
    second = create_session(order())

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert CheckoutSession.objects.count() == 1
    assert len(stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")) == 1


def test_a_retry_after_a_lost_answer_gets_stripes_replay_not_a_second_session(create_session, stripe_sandbox):
    first = create_session(order())
    CheckoutSession.objects.all().delete()  # as if our insert had never committed after Stripe answered

    retry = create_session(order())

    assert retry.status_code == 200
    assert retry.json()["sessionId"] == first.json()["sessionId"]
    calls = stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert len(calls) == 2 and calls[0]["idempotency_key"] == calls[1]["idempotency_key"]
    assert len({session["id"] for session in stripe_sandbox_sessions(stripe_sandbox)}) == 1
    assert CheckoutSession.objects.count() == 1


def stripe_sandbox_sessions(stripe_sandbox):
    from core.stripe_api import stripe_client

    return list(stripe_client().v1.checkout.sessions.list({"limit": 100}).data)


def test_a_paid_order_is_not_handed_out_again(create_session):
    first = create_session(order())
    CheckoutSession.objects.update(status=CheckoutSessionStatus.COMPLETED)

    second = create_session(order())

    assert second.status_code == 200
    assert second.json()["sessionId"] != first.json()["sessionId"]
    assert CheckoutSession.objects.count() == 2


def test_a_different_order_is_a_different_session(create_session):
    first = create_session(order())
    second = create_session(order(billingCycle="yearly"))

    assert first.json()["sessionId"] != second.json()["sessionId"]


def test_idempotency_key_header_separates_deliberate_repeats(create_session):
    first = create_session(order(), HTTP_IDEMPOTENCY_KEY="cart-1")
    again = create_session(order(), HTTP_IDEMPOTENCY_KEY="cart-1")
    other = create_session(order(), HTTP_IDEMPOTENCY_KEY="cart-2")

    assert first.json()["sessionId"] == again.json()["sessionId"]
    assert other.json()["sessionId"] != first.json()["sessionId"]
    assert CheckoutSession.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_make_one_session(catalog, stripe_sandbox):
    if not database_is_postgres():
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises them with 'database is locked'")
    from rest_framework.test import APIClient

    results, errors = run_at_once(lambda: APIClient().post("/api/checkout/create-session", order(), format="json"), 8)

    assert errors == []
    assert [r.status_code for r in results] == [200] * 8
    assert len({r.json()["sessionId"] for r in results}) == 1
    assert CheckoutSession.objects.count() == 1
    assert len(stripe_sandbox_sessions(stripe_sandbox)) == 1

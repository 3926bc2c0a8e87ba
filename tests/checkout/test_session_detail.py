"""GET /api/checkout/session/<sessionId>: the seed's shape, one query, 404 in the error shape."""

import pytest

from checkout.models import CheckoutSession
from tests.checkout.conftest import order

pytestmark = pytest.mark.django_db


def test_returns_the_seed_fields_and_nothing_more(api, create_session, django_assert_num_queries):
    session_id = create_session(order()).json()["sessionId"]
    row = CheckoutSession.objects.get()

    with django_assert_num_queries(1):
        response = api.get(f"/api/checkout/session/{session_id}")

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "session": {
            "id": str(row.id),
            "stripe_session_id": session_id,
            "email": "john@example.com",
            "product_code": "starter",
            "billing_cycle": "monthly",
            "amount": 799,
            "status": "pending",
        },
    }


@pytest.mark.parametrize("session_id", ["cs_test_doesnotexist", "not-a-session", "cs_" + "a" * 300])
def test_unknown_session_is_a_404_in_the_error_shape(api, session_id):
    response = api.get(f"/api/checkout/session/{session_id}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert set(response.json()) <= {"error", "code"}


def test_the_success_page_fulfils_a_paid_session_whose_webhook_is_late(api, create_session, stripe_sandbox):
    from accounts.models import Subscription
    from core.stripe_api import stripe_client

    session_id = create_session(order()).json()["sessionId"]
    stripe_client().raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete")  # no webhook

    response = api.get(f"/api/checkout/session/{session_id}")

    assert response.status_code == 200
    assert response.json()["session"]["status"] == "completed"
    assert Subscription.objects.get().checkout_session.stripe_session_id == session_id


def test_polling_a_pending_session_asks_stripe_at_most_once_every_few_seconds(api, create_session, stripe_sandbox):
    session_id = create_session(order()).json()["sessionId"]

    statuses = [api.get(f"/api/checkout/session/{session_id}").json()["session"]["status"] for _ in range(5)]

    assert statuses == ["pending"] * 5
    assert len(stripe_sandbox.requests(method="GET", path=f"/v1/checkout/sessions/{session_id}")) == 1


def test_stripe_down_while_polling_answers_with_what_we_know(api, create_session, settings):
    session_id = create_session(order()).json()["sessionId"]
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    response = api.get(f"/api/checkout/session/{session_id}")

    assert response.status_code == 200
    assert response.json()["session"]["status"] == "pending"

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

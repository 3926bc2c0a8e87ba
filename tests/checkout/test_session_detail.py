"""GET /api/checkout/session/<sessionId>: the seed's shape and the order's state, one query, 404 in the error shape."""

import pytest

from checkout.models import CheckoutSession
from tests.checkout.conftest import order

pytestmark = pytest.mark.django_db


def test_returns_the_seed_fields_and_the_order_in_one_query(api, create_session, django_assert_num_queries):
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
            "amount_total": 799,
            "amount_discount": 0,
            "currency": "usd",
            "trial_end": None,
            "fulfilment": "pending",
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


# --- The order's state: what the success page follows ----------------------------------------------------------------


def _detail(api, session_id: str) -> dict:
    response = api.get(f"/api/checkout/session/{session_id}")
    assert response.status_code == 200
    return response.json()["session"]


def test_the_amount_charged_is_after_the_coupon(api, create_session):
    from catalog.models import Coupon

    Coupon.objects.create(code="HALF", percent_off=50)
    session_id = create_session(order(couponCode="HALF")).json()["sessionId"]

    session = _detail(api, session_id)

    assert (session["amount"], session["amount_discount"], session["amount_total"]) == (799, 400, 399)


@pytest.mark.parametrize(
    ("status", "fulfilment"),
    [
        ("expired", "expired"),
        ("payment_failed", "payment_failed"),
        ("needs_review", "needs_review"),
    ],
)
def test_a_session_that_will_not_be_fulfilled_says_so(api, status, fulfilment):
    from tests.checkout.factories import CheckoutSessionFactory

    session = CheckoutSessionFactory(status=status)

    assert _detail(api, session.stripe_session_id)["fulfilment"] == fulfilment


@pytest.mark.parametrize(
    ("job_status", "fulfilment"),
    [
        ("pending", "paid"),
        ("running", "setting_up"),
        ("retrying", "setting_up"),
        ("failed", "needs_review"),
    ],
)
def test_a_paid_session_follows_its_provisioning_job(api, job_status, fulfilment, django_assert_num_queries):
    from tests.provisioning.factories import ProvisioningJobFactory

    job = ProvisioningJobFactory(status=job_status, subscription__checkout_session__status="completed")

    with django_assert_num_queries(1):
        session = _detail(api, job.subscription.checkout_session.stripe_session_id)

    assert (session["status"], session["fulfilment"]) == ("completed", fulfilment)


def test_a_session_is_ready_once_its_hosting_account_exists(api, django_assert_num_queries):
    from tests.provisioning.factories import provisioned_subscription

    subscription = provisioned_subscription(checkout_session__status="completed")

    with django_assert_num_queries(1):
        session = _detail(api, subscription.checkout_session.stripe_session_id)

    assert session["fulfilment"] == "ready"


def test_a_trial_charges_nothing_now_and_says_when_it_ends(api):
    from datetime import UTC, datetime

    from tests.accounts.factories import SubscriptionFactory

    period_end = datetime(2027, 1, 14, 12, 0, tzinfo=UTC)
    subscription = SubscriptionFactory(
        status="trialing",
        current_period_end=period_end,
        checkout_session__status="completed",
        checkout_session__trial_days=14,
        checkout_session__completed_at=datetime(2026, 12, 31, 12, 0, tzinfo=UTC),
    )

    session = _detail(api, subscription.checkout_session.stripe_session_id)

    assert (session["amount_total"], session["trial_end"]) == (0, "2027-01-14T12:00:00Z")


def test_a_session_paid_while_the_webhook_is_late_reads_as_paid_at_once(api, create_session, stripe_sandbox):
    from core.stripe_api import stripe_client

    session_id = create_session(order(domain={"mode": "new", "value": "example.com"})).json()["sessionId"]
    stripe_client().raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete")  # no webhook

    session = _detail(api, session_id)

    # Fulfilled by this very request: its set-up is enqueued when the transaction commits.
    assert (session["status"], session["fulfilment"]) == ("completed", "paid")

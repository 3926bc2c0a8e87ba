"""The success and cancel pages Stripe sends a customer back to: server-rendered, following the order."""

import pytest
from django.test import Client

from tests.checkout.conftest import order

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser():
    return Client()


def _success(browser, session_id: str):
    return browser.get("/checkout/success/", {"session_id": session_id})


def test_a_pending_order_shows_what_was_bought_and_refreshes_itself(browser, create_session):
    from catalog.models import Coupon

    Coupon.objects.create(code="HALF", percent_off=50)
    session_id = create_session(order(couponCode="HALF", domain={"mode": "new", "value": "example.com"})).json()[
        "sessionId"
    ]

    response = _success(browser, session_id)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert "We are confirming your payment" in page
    for shown in (
        "Hosting Starter",
        "Monthly",
        "example.com",
        "$3.99 USD",
        "discount of $4.00 USD",
        "$7.99 USD a month",
        "john@example.com",
    ):
        assert shown in page
    assert '<meta http-equiv="refresh" content="10">' in page  # JavaScript off: a refresh shows the state
    assert f'data-poll-url="/api/checkout/session/{session_id}"' in page


def test_a_paid_order_whose_webhook_is_late_shows_as_paid(browser, create_session, stripe_sandbox):
    from core.stripe_api import stripe_client

    session_id = create_session(order()).json()["sessionId"]
    stripe_client().raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete")  # no webhook

    page = _success(browser, session_id).content.decode()

    assert "Payment received, thank you" in page


def test_a_ready_order_points_to_the_client_area_and_stops_refreshing(browser, django_assert_max_num_queries):
    from tests.provisioning.factories import provisioned_subscription

    subscription = provisioned_subscription(checkout_session__status="completed")

    with django_assert_max_num_queries(2):  # the session with its order, and the plan's name
        response = _success(browser, subscription.checkout_session.stripe_session_id)

    page = response.content.decode()
    assert "Your hosting is ready" in page
    assert 'href="/account/"' in page
    assert 'http-equiv="refresh"' not in page
    assert 'data-final="true"' in page


def test_a_trial_shows_nothing_charged_today_and_its_length(browser):
    from tests.checkout.factories import CheckoutSessionFactory

    session = CheckoutSessionFactory(trial_days=14)

    page = _success(browser, session.stripe_session_id).content.decode()

    assert "Free trial" in page and "14 days" in page
    assert "Charged now" in page and "$0.00 USD" in page


@pytest.mark.parametrize("status", ["payment_failed", "expired"])
def test_an_order_that_failed_offers_to_start_again(browser, settings, status):
    from tests.checkout.factories import CheckoutSessionFactory

    settings.STOREFRONT_URL = "https://migrahosting.test"
    session = CheckoutSessionFactory(status=status)

    page = _success(browser, session.stripe_session_id).content.decode()

    assert 'href="https://migrahosting.test">Choose a plan again' in page
    assert "Nothing" in page  # nothing charged


@pytest.mark.parametrize("query", ["", "?session_id=cs_test_unknown", "?session_id=<script>"])
def test_an_unknown_order_is_a_404_page(browser, query):
    response = browser.get(f"/checkout/success/{query}")

    assert response.status_code == 404
    assert "We cannot find this order" in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_the_cancel_page_offers_to_start_again(browser, settings):
    settings.STOREFRONT_URL = "https://migrahosting.test"

    response = browser.get("/checkout/cancel/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "nothing was charged" in page
    assert 'href="https://migrahosting.test">Choose a plan' in page


def test_the_pages_share_the_site_frame(browser):
    page = browser.get("/checkout/cancel/").content.decode()

    assert '<html lang="en">' in page
    assert 'href="#main"' in page and '<main id="main"' in page
    assert "/static/site/site.css" in page

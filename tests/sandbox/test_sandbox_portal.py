"""The billing portal: `POST /v1/billing_portal/sessions` through stripe-python, and the portal page its `url` opens
(`/p/session/{id}`) through plain HTTP, as a customer's browser would use it without JavaScript."""

import re

import pytest
import requests
import stripe

from tests.sandbox.calls import all_events, helper

DAY = 86400


@pytest.fixture
def subscribed(stripe_client, session_params):
    """A paid $7.99 monthly subscription (card 4242) and its completed Checkout Session."""
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    return helper(stripe_client, f"checkout/sessions/{session.id}/complete")


@pytest.fixture
def portal(stripe_client, subscribed):
    return stripe_client.v1.billing_portal.sessions.create(
        params={"customer": subscribed.customer, "return_url": "https://shop.test/account/"}
    )


def post(url: str, data: dict | None = None) -> requests.Response:
    return requests.post(url, data=data or {}, allow_redirects=False, timeout=10)


# The API


def test_a_session_points_at_the_portal_page(portal, subscribed, sandbox_url):
    assert portal.object == "billing_portal.session"
    assert portal.id.startswith("bps_")
    assert portal.customer == subscribed.customer
    assert portal.return_url == "https://shop.test/account/"
    assert portal.configuration.startswith("bpc_")
    assert portal.flow is None
    assert portal.livemode is False
    assert portal.url == f"{sandbox_url}/p/session/{portal.id}"


def test_the_page_url_uses_the_public_url(start_sandbox):
    with start_sandbox("--public-url", "https://sandbox.example") as (_, url):
        client = stripe.StripeClient("sk_test_" + "Portal" * 4, base_addresses={"api": url}, max_network_retries=0)
        customer = client.v1.customers.create(params={"email": "ada@example.com"})

        portal = client.v1.billing_portal.sessions.create(params={"customer": customer.id})

    assert portal.url == f"https://sandbox.example/p/session/{portal.id}"


@pytest.mark.parametrize(("params", "param"), [
    ({}, "customer"),
    ({"customer": "cus_nope"}, "customer"),
    ({"customer": "CUSTOMER", "return_url": "shop.test/account"}, "return_url"),
    ({"customer": "CUSTOMER", "configuration": "bpc_nope"}, "configuration"),
    ({"customer": "CUSTOMER", "flow_data": {"type": "subscription_cancel"}}, "flow_data[subscription_cancel]"),
    ({"customer": "CUSTOMER", "flow_data": {"type": "payment_method_update",
                                            "after_completion": {"type": "redirect"}}},
     "flow_data[after_completion][redirect][return_url]"),
    ({"customer": "CUSTOMER", "colour": "blue"}, "colour"),
])  # fmt: skip
def test_session_create_rejects_what_stripe_rejects(stripe_client, subscribed, params, param):
    params = {key: subscribed.customer if value == "CUSTOMER" else value for key, value in params.items()}

    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.billing_portal.sessions.create(params=params)

    assert raised.value.http_status == 400
    assert raised.value.param == param


def test_a_flow_is_shown_on_the_session(stripe_client, subscribed):
    portal = stripe_client.v1.billing_portal.sessions.create(params={
        "customer": subscribed.customer,
        "flow_data": {
            "type": "subscription_cancel",
            "subscription_cancel": {"subscription": subscribed.subscription},
            "after_completion": {"type": "redirect", "redirect": {"return_url": "https://shop.test/done"}},
        },
    })  # fmt: skip

    assert portal.flow.type == "subscription_cancel"
    assert portal.flow.subscription_cancel.subscription == subscribed.subscription
    assert portal.flow.after_completion.redirect.return_url == "https://shop.test/done"


def test_a_flow_for_another_customers_subscription_is_refused(stripe_client, subscribed):
    other = stripe_client.v1.customers.create(params={"email": "eve@example.com"})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.billing_portal.sessions.create(params={
            "customer": other.id,
            "flow_data": {"type": "subscription_cancel",
                          "subscription_cancel": {"subscription": subscribed.subscription}},
        })  # fmt: skip

    assert raised.value.param == "flow_data[subscription_cancel][subscription]"


def test_session_create_is_idempotent(stripe_client, subscribed):
    params = {"customer": subscribed.customer}

    first = stripe_client.v1.billing_portal.sessions.create(params=params, options={"idempotency_key": "portal-1"})
    second = stripe_client.v1.billing_portal.sessions.create(params=params, options={"idempotency_key": "portal-1"})

    assert second.id == first.id


def test_creating_a_session_emits_nothing(stripe_client, subscribed):
    seen = len(all_events(stripe_client))

    stripe_client.v1.billing_portal.sessions.create(params={"customer": subscribed.customer})

    assert len(all_events(stripe_client)) == seen


# The page


def test_the_page_shows_subscriptions_invoices_the_card_and_the_way_back(portal, subscribed, stripe_client):
    response = requests.get(portal.url, timeout=10)

    invoice = stripe_client.v1.invoices.retrieve(subscribed.invoice)
    page = response.text
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page
    assert "Shared hosting" in page
    assert "$7.99 per month" in page
    assert re.search(r"Renews on \w+ \d+, \d{4}", page)
    assert "Cancel at period end" in page
    assert "Visa •••• 4242" in page
    assert invoice.number in page
    assert f'href="{invoice.hosted_invoice_url}"' in page
    assert f'href="{invoice.invoice_pdf}"' in page
    assert 'href="https://shop.test/account/"' in page


def test_the_page_escapes_what_the_customer_typed(stripe_client):
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com", "name": "<b>Ada</b>"})
    portal = stripe_client.v1.billing_portal.sessions.create(params={"customer": customer.id})

    page = requests.get(portal.url, timeout=10).text

    assert "&lt;b&gt;Ada&lt;/b&gt;" in page
    assert "No current subscriptions." in page
    assert "No invoices yet." in page
    assert "No card on file" in page


def test_changing_the_card_sets_it_on_the_customer_and_each_subscription(portal, subscribed, stripe_client):
    seen = len(all_events(stripe_client))
    old_card = stripe_client.v1.customers.retrieve(subscribed.customer).invoice_settings.default_payment_method

    response = post(f"{portal.url}/payment_method", {"payment_method": "pm_card_chargeCustomerFail"})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/p/session/{portal.id}?done=card"
    customer = stripe_client.v1.customers.retrieve(subscribed.customer)
    card = stripe_client.v1.payment_methods.retrieve(customer.invoice_settings.default_payment_method)
    assert card.card.last4 == "0341"
    assert card.customer == subscribed.customer
    assert stripe_client.v1.subscriptions.retrieve(subscribed.subscription).default_payment_method == card.id
    events = all_events(stripe_client)[seen:]
    assert [event.type for event in events] == [
        "payment_method.attached",
        "customer.updated",
        "customer.subscription.updated",
    ]
    assert events[1].data.previous_attributes["invoice_settings"]["default_payment_method"] == old_card
    assert events[2].data.previous_attributes["default_payment_method"] == old_card
    page = requests.get(portal.url + "?done=card", timeout=10).text
    assert "Your card was updated." in page
    assert "Visa •••• 0341" in page


def test_the_new_card_is_what_the_next_renewal_charges(portal, subscribed, stripe_client, sandbox_http):
    post(f"{portal.url}/payment_method", {"payment_method": "pm_card_chargeCustomerFail"})

    sandbox_http.control("POST", "clock/advance", json={"seconds": 32 * DAY}).raise_for_status()

    assert stripe_client.v1.subscriptions.retrieve(subscribed.subscription).status == "past_due"


def test_cancel_at_period_end_and_undo(portal, subscribed, stripe_client):
    seen = len(all_events(stripe_client))
    action = f"{portal.url}/subscriptions/{subscribed.subscription}"

    cancelled = post(f"{action}/cancel")

    subscription = stripe_client.v1.subscriptions.retrieve(subscribed.subscription)
    item = subscription["items"].data[0]
    assert cancelled.status_code == 303
    assert subscription.cancel_at_period_end is True
    assert subscription.cancel_at == item.current_period_end
    assert subscription.cancellation_details.reason == "cancellation_requested"
    page = requests.get(portal.url, timeout=10).text
    assert re.search(r"Cancels on \w+ \d+, \d{4}", page)
    assert "Don&#x27;t cancel" in page or "Don't cancel" in page

    undone = post(f"{action}/renew")

    subscription = stripe_client.v1.subscriptions.retrieve(subscribed.subscription)
    assert undone.status_code == 303
    assert subscription.cancel_at_period_end is False
    assert subscription.cancel_at is None
    assert subscription.cancellation_details.reason is None
    events = all_events(stripe_client)[seen:]
    assert [event.type for event in events] == ["customer.subscription.updated"] * 2
    assert events[0].data.previous_attributes["cancel_at_period_end"] is False
    assert events[0].data.object.cancellation_details.reason == "cancellation_requested"
    assert events[1].data.previous_attributes["cancel_at_period_end"] is True


def test_cancelling_twice_emits_once(portal, subscribed, stripe_client):
    seen = len(all_events(stripe_client))

    post(f"{portal.url}/subscriptions/{subscribed.subscription}/cancel")
    post(f"{portal.url}/subscriptions/{subscribed.subscription}/cancel")

    assert len(all_events(stripe_client)) == seen + 1


def test_a_flow_redirect_is_where_a_form_leads(stripe_client, subscribed):
    portal = stripe_client.v1.billing_portal.sessions.create(params={
        "customer": subscribed.customer,
        "flow_data": {"type": "payment_method_update",
                      "after_completion": {"type": "redirect", "redirect": {"return_url": "https://shop.test/done"}}},
    })  # fmt: skip

    response = post(f"{portal.url}/payment_method", {"payment_method": "pm_card_visa"})

    assert response.status_code == 303
    assert response.headers["Location"] == "https://shop.test/done"


def test_another_customers_subscription_is_not_found(portal, stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params(customer_email="eve@example.com"))
    other = helper(stripe_client, f"checkout/sessions/{session.id}/complete")

    response = post(f"{portal.url}/subscriptions/{other.subscription}/cancel")

    assert response.status_code == 404
    assert stripe_client.v1.subscriptions.retrieve(other.subscription).cancel_at_period_end is False


def test_an_unknown_session_is_a_404_page(sandbox_url):
    response = requests.get(f"{sandbox_url}/p/session/bps_nope", timeout=10)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "not valid or has expired" in response.text


def test_a_session_expires_after_an_hour_of_sandbox_time(portal, subscribed, stripe_client, sandbox_http):
    sandbox_http.control("POST", "clock/advance", json={"seconds": 3599}).raise_for_status()
    assert requests.get(portal.url, timeout=10).status_code == 200

    sandbox_http.control("POST", "clock/advance", json={"seconds": 1}).raise_for_status()

    assert requests.get(portal.url, timeout=10).status_code == 404
    assert post(f"{portal.url}/subscriptions/{subscribed.subscription}/cancel").status_code == 404
    assert post(f"{portal.url}/payment_method", {"payment_method": "pm_card_visa"}).status_code == 404
    assert stripe_client.v1.subscriptions.retrieve(subscribed.subscription).cancel_at_period_end is False


@pytest.mark.parametrize(("method", "suffix", "status"), [
    ("GET", "/payment_method", 405),
    ("POST", "", 405),
    ("GET", "/subscriptions/sub_x/cancel", 405),
    ("POST", "/elsewhere", 404),
])  # fmt: skip
def test_wrong_methods_and_paths(portal, method, suffix, status):
    response = requests.request(method, portal.url + suffix, allow_redirects=False, timeout=10)

    assert response.status_code == status


def test_an_unknown_card_is_refused(portal, subscribed, stripe_client):
    response = post(f"{portal.url}/payment_method", {"payment_method": "pm_card_amex"})

    assert response.status_code == 400
    customer = stripe_client.v1.customers.retrieve(subscribed.customer)
    assert stripe_client.v1.payment_methods.retrieve(customer.invoice_settings.default_payment_method).card.last4 == (
        "4242"
    )

"""dj-stripe 2.11 processes every event the sandbox emits, and every call it makes back to the sandbox answers 2xx.

Each test pays (or expires) a session the way a customer would, then hands each event, in the order the sandbox
created them, to `djstripe.models.Event.process`, exactly as dj-stripe's webhook view does after verifying the
signature. Processing re-reads objects from the sandbox (the account, the customer, the session with expansions,
the subscription, the invoice ...): the request log shows those calls.
"""

import pytest
import stripe
from django.conf import settings
from djstripe import models as djstripe_models

pytestmark = pytest.mark.django_db

ACCOUNT_ID = "acct_1SbxLocalSandbox"


@pytest.fixture
def djstripe_sandbox(sandbox_url, settings):
    """dj-stripe (and stripe-python's module-level client it uses) pointed at the sandbox, restored afterwards."""
    settings.STRIPE_API_BASE = sandbox_url
    settings.STRIPE_API_HOST = sandbox_url
    previous = stripe.api_base
    stripe.api_base = sandbox_url
    yield sandbox_url
    stripe.api_base = previous


@pytest.fixture
def client(djstripe_sandbox) -> stripe.StripeClient:
    # The project's key: dj-stripe finds its owner account with it.
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, base_addresses={"api": djstripe_sandbox}, max_network_retries=0
    )


def _helper(client: stripe.StripeClient, path: str, **params) -> dict:
    response = client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{path}", **params)
    return client.deserialize(response, api_mode="V1")


def _events(sandbox_http) -> list[dict]:
    """Every event so far, oldest first, as JSON (the body a webhook carries)."""
    events, starting_after = [], None
    while True:
        query = "limit=100" + (f"&starting_after={starting_after}" if starting_after else "")
        page = sandbox_http.api("GET", f"/v1/events?{query}", key=settings.STRIPE_SECRET_KEY).json()
        events += page["data"]
        if not page["has_more"]:
            return list(reversed(events))
        starting_after = page["data"][-1]["id"]


def _process_each(events: list[dict]) -> None:
    for event in events:
        processed = djstripe_models.Event.process(data=event, api_key=settings.STRIPE_SECRET_KEY)
        assert processed.id == event["id"], event["type"]


def _assert_every_call_succeeded(sandbox_http) -> list[tuple[str, str]]:
    log = sandbox_http.logged_requests()
    failed = [(entry["method"], entry["path"], entry["status"]) for entry in log if not 200 <= entry["status"] < 300]
    assert not failed, f"calls dj-stripe made that failed: {failed}"
    return [(entry["method"], entry["path"]) for entry in log]


def _session(client, session_params, **overrides):
    params = session_params(
        metadata={"order": "o-1"}, subscription_data={"metadata": {"order": "o-1"}}, client_reference_id="o-1"
    )
    params.update(overrides)
    return client.v1.checkout.sessions.create(params=params)


def test_a_paid_subscription_checkout_is_processed(client, sandbox_http, session_params):
    coupon = client.v1.coupons.create(params={"percent_off": 20, "duration": "repeating", "duration_in_months": 3})
    session = _session(client, session_params, discounts=[{"coupon": coupon.id}])
    completed = _helper(client, f"{session.id}/complete")
    events = _events(sandbox_http)

    _process_each(events)

    calls = _assert_every_call_succeeded(sandbox_http)
    assert ("GET", "/v1/account") in calls
    assert ("GET", f"/v1/checkout/sessions/{session.id}") in calls
    assert djstripe_models.Account.objects.filter(id=ACCOUNT_ID).exists()
    assert djstripe_models.Event.objects.count() == len(events)
    assert djstripe_models.Customer.objects.filter(id=completed.customer).exists()
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.customer_id == completed.customer
    assert subscription.stripe_data["status"] == "active"
    invoice = djstripe_models.Invoice.objects.get(id=completed.invoice)
    assert invoice.stripe_data["status"] == "paid"
    # dahlia invoices name their subscription only in `parent`, so dj-stripe's own foreign key stays empty, as with
    # Stripe itself.
    assert invoice.stripe_data["parent"]["subscription_details"]["subscription"] == completed.subscription
    assert invoice.total == 639
    line_ids = [line["id"] for line in invoice.stripe_data["lines"]["data"]]
    assert djstripe_models.LineItem.objects.filter(id__in=line_ids, subscription=subscription).count() == 1
    assert djstripe_models.SubscriptionItem.objects.filter(subscription=subscription).count() == 1
    assert djstripe_models.Discount.objects.filter(subscription=subscription).exists()
    dj_session = djstripe_models.Session.objects.get(id=session.id)
    assert dj_session.stripe_data["status"] == "complete"
    assert dj_session.customer_id == completed.customer
    assert dj_session.subscription_id == completed.subscription
    intent = djstripe_models.PaymentIntent.objects.get()
    assert intent.stripe_data["status"] == "succeeded"
    assert djstripe_models.Charge.objects.get().payment_intent_id == intent.id
    assert djstripe_models.PaymentMethod.objects.filter(customer_id=completed.customer).exists()


def test_a_trial_subscription_checkout_is_processed(client, sandbox_http, session_params):
    session = _session(client, session_params, subscription_data={"trial_period_days": 14})
    completed = _helper(client, f"{session.id}/complete")

    _process_each(_events(sandbox_http))

    _assert_every_call_succeeded(sandbox_http)
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.stripe_data["status"] == "trialing"
    assert djstripe_models.Invoice.objects.get(id=completed.invoice).total == 0
    assert djstripe_models.Session.objects.get(id=session.id).stripe_data["payment_status"] == "no_payment_required"
    assert not djstripe_models.PaymentIntent.objects.exists()


@pytest.mark.parametrize(("result", "invoice_status", "subscription_status"), [
    ("succeeded", "paid", "active"),
    ("failed", "open", "incomplete"),
])  # fmt: skip
def test_a_delayed_payment_is_processed_when_it_settles(
    client, sandbox_http, session_params, result, invoice_status, subscription_status
):
    session = _session(client, session_params)
    completed = _helper(client, f"{session.id}/complete", payment_status="unpaid")
    first = _events(sandbox_http)
    _process_each(first)
    assert djstripe_models.Session.objects.get(id=session.id).stripe_data["payment_status"] == "unpaid"

    _helper(client, f"{session.id}/async_payment", result=result)
    later = _events(sandbox_http)[len(first) :]
    _process_each(later)

    _assert_every_call_succeeded(sandbox_http)
    assert later[-1]["type"] == f"checkout.session.async_payment_{result}"
    invoice = djstripe_models.Invoice.objects.get(id=completed.invoice)
    assert invoice.stripe_data["status"] == invoice_status
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.stripe_data["status"] == subscription_status
    payment_status = "paid" if result == "succeeded" else "unpaid"
    assert djstripe_models.Session.objects.get(id=session.id).stripe_data["payment_status"] == payment_status


def test_an_expired_session_is_processed(client, sandbox_http, session_params):
    session = _session(client, session_params)
    client.v1.checkout.sessions.expire(session.id)
    events = _events(sandbox_http)

    _process_each(events)

    _assert_every_call_succeeded(sandbox_http)
    assert [event["type"] for event in events] == ["checkout.session.expired"]
    assert djstripe_models.Session.objects.get(id=session.id).stripe_data["status"] == "expired"


def test_processing_an_event_twice_is_harmless(client, sandbox_http, session_params):
    session = _session(client, session_params)
    _helper(client, f"{session.id}/complete")
    events = _events(sandbox_http)
    _process_each(events)
    calls_before = len(sandbox_http.logged_requests())

    _process_each(events)

    assert len(sandbox_http.logged_requests()) == calls_before
    assert djstripe_models.Event.objects.count() == len(events)


# The subscription's life after Checkout: each new event type dj-stripe meets, processed in order.


def _advance(sandbox_http, seconds: int) -> None:
    sandbox_http.control("POST", "clock/advance", json={"seconds": seconds}).raise_for_status()


def _paid_subscription(client, session_params):
    session = _session(client, session_params)
    return _helper(client, f"{session.id}/complete")


def _process_new(sandbox_http, seen: int) -> list[dict]:
    events = _events(sandbox_http)[seen:]
    _process_each(events)
    _assert_every_call_succeeded(sandbox_http)
    return events


def test_a_paid_renewal_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))

    _advance(sandbox_http, 32 * 24 * 3600)
    renewal = _process_new(sandbox_http, seen)

    assert [event["type"] for event in renewal][-1] == "customer.subscription.updated"
    invoices = djstripe_models.Invoice.objects.filter(customer_id=completed.customer)
    assert sorted(invoice.stripe_data["billing_reason"] for invoice in invoices) == [
        "subscription_create",
        "subscription_cycle",
    ]
    assert all(invoice.stripe_data["status"] == "paid" for invoice in invoices)
    assert djstripe_models.Charge.objects.filter(customer_id=completed.customer).count() == 2
    item = djstripe_models.Subscription.objects.get(id=completed.subscription).stripe_data["items"]["data"][0]
    assert item["current_period_start"] == renewal[0]["created"]


def test_a_renewal_that_fails_through_to_cancellation_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    card = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": completed.customer})
    client.v1.subscriptions.update(completed.subscription, params={"default_payment_method": card.id})
    seen = len(_process_new(sandbox_http, 0))

    _advance(sandbox_http, 31 * 24 * 3600)
    seen += len(_process_new(sandbox_http, seen))
    assert djstripe_models.Subscription.objects.get(id=completed.subscription).stripe_data["status"] == "past_due"
    _advance(sandbox_http, 8 * 24 * 3600)
    ending = _process_new(sandbox_http, seen)

    assert ending[-1]["type"] == "customer.subscription.deleted"
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.stripe_data["status"] == "canceled"
    assert subscription.stripe_data["cancellation_details"]["reason"] == "payment_failed"
    failed = djstripe_models.Charge.objects.filter(customer_id=completed.customer, stripe_data__status="failed")
    assert failed.count() == 4


def test_a_refund_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))
    [charge] = client.v1.charges.list(params={"customer": completed.customer}).data

    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 300})
    events = _process_new(sandbox_http, seen)

    assert [event["type"] for event in events] == ["charge.refunded", "refund.created"]
    assert djstripe_models.Refund.objects.get(id=refund.id).stripe_data["amount"] == 300
    assert djstripe_models.Charge.objects.get(id=charge.id).stripe_data["amount_refunded"] == 300


def test_cancel_at_period_end_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))

    client.v1.subscriptions.update(completed.subscription, params={"cancel_at_period_end": True})
    seen += len(_process_new(sandbox_http, seen))
    assert djstripe_models.Subscription.objects.get(id=completed.subscription).stripe_data["cancel_at_period_end"]
    _advance(sandbox_http, 32 * 24 * 3600)
    events = _process_new(sandbox_http, seen)

    assert [event["type"] for event in events] == ["customer.subscription.deleted"]
    assert djstripe_models.Subscription.objects.get(id=completed.subscription).stripe_data["status"] == "canceled"


def test_a_test_clock_advance_is_processed(client, sandbox_http, session_params):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_800_000_000})
    customer = client.v1.customers.create(params={"email": "clock@example.com", "test_clock": clock.id})
    session = _session(client, session_params, customer=customer.id, customer_email=None)
    completed = _helper(client, f"{session.id}/complete")
    seen = len(_process_new(sandbox_http, 0))

    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": 1_800_000_000 + 35 * 24 * 3600})
    events = _process_new(sandbox_http, seen)

    assert events[0]["type"] == "test_helpers.test_clock.advancing"
    assert events[-1]["type"] == "test_helpers.test_clock.ready"
    assert "invoice.paid" in [event["type"] for event in events]
    assert djstripe_models.Invoice.objects.filter(customer_id=completed.customer).count() == 2


def _product_of(client, subscription_id: str) -> tuple[str, str]:
    item = client.v1.subscriptions.retrieve(subscription_id)["items"].data[0]
    return item.id, item.price.product


def test_an_upgrade_invoiced_at_once_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))
    _advance(sandbox_http, 10 * 24 * 3600)
    item_id, product = _product_of(client, completed.subscription)

    updated = client.v1.subscriptions.update(completed.subscription, params={
        "items": [{"id": item_id, "price_data": {"currency": "usd", "product": product, "unit_amount": 1999,
                                                 "recurring": {"interval": "month"}}}],
        "proration_behavior": "always_invoice",
    })  # fmt: skip
    events = _process_new(sandbox_http, seen)

    types = [event["type"] for event in events]
    assert types[0] == "invoiceitem.created"
    assert types[-1] == "customer.subscription.updated"
    assert "invoice.paid" in types
    invoice = djstripe_models.Invoice.objects.get(id=updated.latest_invoice)
    assert invoice.stripe_data["billing_reason"] == "subscription_update"
    assert invoice.stripe_data["status"] == "paid"
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.stripe_data["items"]["data"][0]["price"]["unit_amount"] == 1999
    assert djstripe_models.InvoiceItem.objects.filter(customer_id=completed.customer).count() == 2
    assert djstripe_models.SubscriptionItem.objects.get(id=item_id).stripe_data["price"]["unit_amount"] == 1999


def test_a_change_with_prorations_left_for_the_renewal_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))
    _advance(sandbox_http, 10 * 24 * 3600)
    item_id, product = _product_of(client, completed.subscription)
    client.v1.subscriptions.update(completed.subscription, params={
        "items": [{"id": item_id, "price_data": {"currency": "usd", "product": product, "unit_amount": 499,
                                                 "recurring": {"interval": "month"}}}],
    })  # fmt: skip
    seen += len(_process_new(sandbox_http, seen))

    _advance(sandbox_http, 25 * 24 * 3600)
    events = _process_new(sandbox_http, seen)

    assert "invoice.paid" in [event["type"] for event in events]
    renewal = djstripe_models.Invoice.objects.get(stripe_data__billing_reason="subscription_cycle")
    assert len(renewal.stripe_data["lines"]["data"]) == 3


def _portal(client, customer: str):
    import requests

    portal = client.v1.billing_portal.sessions.create(params={"customer": customer, "return_url": "https://x.test/"})
    return portal, requests


def test_a_card_changed_in_the_billing_portal_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))
    portal, requests = _portal(client, completed.customer)

    answer = requests.post(
        f"{portal.url}/payment_method",
        data={"payment_method": "pm_card_chargeCustomerFail"},
        allow_redirects=False,
        timeout=10,
    )
    events = _process_new(sandbox_http, seen)

    assert answer.status_code == 303
    assert [event["type"] for event in events] == [
        "payment_method.attached",
        "customer.updated",
        "customer.subscription.updated",
    ]
    card_id = events[0]["data"]["object"]["id"]
    assert djstripe_models.PaymentMethod.objects.get(id=card_id).customer_id == completed.customer
    customer = djstripe_models.Customer.objects.get(id=completed.customer)
    assert customer.stripe_data["invoice_settings"]["default_payment_method"] == card_id
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.stripe_data["default_payment_method"] == card_id


def test_a_cancellation_in_the_billing_portal_is_processed(client, sandbox_http, session_params):
    completed = _paid_subscription(client, session_params)
    seen = len(_process_new(sandbox_http, 0))
    portal, requests = _portal(client, completed.customer)

    requests.post(f"{portal.url}/subscriptions/{completed.subscription}/cancel", allow_redirects=False, timeout=10)
    events = _process_new(sandbox_http, seen)

    assert [event["type"] for event in events] == ["customer.subscription.updated"]
    subscription = djstripe_models.Subscription.objects.get(id=completed.subscription)
    assert subscription.stripe_data["cancel_at_period_end"] is True
    assert subscription.stripe_data["cancellation_details"]["reason"] == "cancellation_requested"

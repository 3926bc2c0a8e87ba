"""Completing Checkout Sessions as Stripe does: the customer, subscription, first invoice and payment it creates, the
events it emits in Stripe's order, delayed payments that settle later, and expiry (by request and by time)."""

import time

import pytest
import stripe

PAID_EVENTS = [
    "customer.created",
    "payment_method.attached",
    "customer.subscription.created",
    "invoice.created",
    "invoice.finalized",
    "payment_intent.created",
    "charge.succeeded",
    "payment_intent.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "customer.subscription.updated",
    "checkout.session.completed",
]
DELAYED_EVENTS = [
    "customer.created",
    "payment_method.attached",
    "customer.subscription.created",
    "invoice.created",
    "invoice.finalized",
    "payment_intent.created",
    "charge.pending",
    "payment_intent.processing",
    "checkout.session.completed",
]
TRIAL_EVENTS = [
    "customer.created",
    "payment_method.attached",
    "customer.subscription.created",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "checkout.session.completed",
]


def complete(client: stripe.StripeClient, session_id: str, **params):
    response = client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete", **params)
    return client.deserialize(response, api_mode="V1")


def settle(client: stripe.StripeClient, session_id: str, result: str):
    response = client.raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{session_id}/async_payment", result=result
    )
    return client.deserialize(response, api_mode="V1")


def events_oldest_first(client: stripe.StripeClient) -> list:
    return list(reversed(client.v1.events.list(params={"limit": 100}).data))


def event_of(events, type: str):
    [event] = [event for event in events if event.type == type]
    return event


def test_paying_by_card_creates_customer_subscription_paid_invoice_and_payment(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(metadata={"order": "42"}, subscription_data={"metadata": {"order": "42"}})
    )

    completed = complete(stripe_client, session.id)

    assert (completed.status, completed.payment_status) == ("complete", "paid")
    assert (completed.amount_subtotal, completed.amount_total) == (799, 799)
    assert completed.url is None
    assert completed.customer_details.email == "ada@example.com"
    customer = stripe_client.v1.customers.retrieve(completed.customer)
    assert (customer.email, customer.currency) == ("ada@example.com", "usd")
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    assert subscription.status == "active"
    assert subscription.customer == customer.id
    assert subscription.metadata.to_dict() == {"order": "42"}
    assert subscription.latest_invoice == completed.invoice
    assert (subscription.trial_start, subscription.trial_end) == (None, None)
    [item] = subscription["items"].data
    assert item.price.unit_amount == 799
    assert item.current_period_start == subscription.start_date
    assert 28 * 86400 <= item.current_period_end - item.current_period_start <= 31 * 86400
    invoice = stripe_client.v1.invoices.retrieve(completed.invoice)
    assert (invoice.status, invoice.billing_reason) == ("paid", "subscription_create")
    assert (invoice.subtotal, invoice.total, invoice.amount_paid, invoice.amount_remaining) == (799, 799, 799, 0)
    assert "subscription" not in invoice  # not since API version 2025-03-31.basil
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert invoice.number == f"{customer.invoice_prefix}-0001"
    [line] = invoice.lines.data
    assert line.description == "1 × Shared hosting (at $7.99 / month)"
    assert (line.period.start, line.period.end) == (item.current_period_start, item.current_period_end)
    assert line.parent.subscription_item_details.subscription_item == item.id
    [intent] = stripe_client.v1.payment_intents.list(params={"customer": customer.id}).data
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 799, 799)
    charge = stripe_client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.paid, charge.payment_intent) == ("succeeded", True, intent.id)
    method = stripe_client.v1.payment_methods.retrieve(intent.payment_method)
    assert (method.type, method.card.last4, method.customer) == ("card", "4242", customer.id)
    assert subscription.default_payment_method == method.id


def test_a_paid_completion_emits_stripes_events_in_order(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    completed = complete(stripe_client, session.id, idempotency_key="complete-1")

    events = events_oldest_first(stripe_client)
    assert [event.type for event in events] == PAID_EVENTS
    created = event_of(events, "customer.subscription.created").data.object
    updated = event_of(events, "customer.subscription.updated").data
    assert (created.status, updated.object.status, updated.previous_attributes.status) == (
        "incomplete",
        "active",
        "incomplete",
    )
    assert event_of(events, "invoice.created").data.object.status == "draft"
    assert event_of(events, "invoice.finalized").data.object.status == "open"
    assert event_of(events, "invoice.paid").data.object.status == "paid"
    assert event_of(events, "payment_intent.created").data.object.status == "requires_payment_method"
    final = event_of(events, "checkout.session.completed")
    assert final.data.object.to_dict() == completed.to_dict()
    # `request` is a method name on stripe-python's objects: read the field by key.
    assert final["request"]["id"] == completed.last_response.request_id
    assert final["request"]["idempotency_key"] == "complete-1"
    assert all(event.id.startswith("evt_") and event.livemode is False for event in events)
    assert all(event.api_version == "2026-05-27.dahlia" for event in events)


def test_each_event_is_retrievable_and_shows_the_object_as_it_was(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    completed = complete(stripe_client, session.id)
    invoice_created = event_of(events_oldest_first(stripe_client), "invoice.created")

    retrieved = stripe_client.v1.events.retrieve(invoice_created.id)

    assert retrieved.to_dict() == invoice_created.to_dict()
    assert retrieved.data.object.id == completed.invoice
    assert retrieved.data.object.number is None  # a draft has no number yet; the invoice now has one
    assert stripe_client.v1.invoices.retrieve(completed.invoice).number is not None


def test_a_bank_debit_leaves_the_session_unpaid_until_it_settles(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    completed = complete(stripe_client, session.id, payment_status="unpaid")

    assert (completed.status, completed.payment_status) == ("complete", "unpaid")
    assert [event.type for event in events_oldest_first(stripe_client)] == DELAYED_EVENTS
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "incomplete"
    invoice = stripe_client.v1.invoices.retrieve(completed.invoice)
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("open", 0, 799)
    [intent] = stripe_client.v1.payment_intents.list(params={"customer": completed.customer}).data
    assert intent.status == "processing"
    assert stripe_client.v1.payment_methods.retrieve(intent.payment_method).type == "us_bank_account"
    assert stripe_client.v1.charges.retrieve(intent.latest_charge).status == "pending"


def test_a_bank_debit_that_succeeds_pays_the_invoice_and_activates_the_subscription(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    completed = complete(stripe_client, session.id, payment_status="unpaid")
    before = len(events_oldest_first(stripe_client))

    settled = settle(stripe_client, session.id, "succeeded")

    assert (settled.status, settled.payment_status) == ("complete", "paid")
    assert [event.type for event in events_oldest_first(stripe_client)[before:]] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.async_payment_succeeded",
    ]
    assert stripe_client.v1.invoices.retrieve(completed.invoice).status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "active"
    [intent] = stripe_client.v1.payment_intents.list(params={"customer": completed.customer}).data
    assert (intent.status, intent.amount_received) == ("succeeded", 799)


def test_a_bank_debit_that_fails_leaves_the_invoice_open(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    completed = complete(stripe_client, session.id, payment_status="unpaid")
    before = len(events_oldest_first(stripe_client))

    settled = settle(stripe_client, session.id, "failed")

    assert (settled.status, settled.payment_status) == ("complete", "unpaid")
    assert [event.type for event in events_oldest_first(stripe_client)[before:]] == [
        "charge.failed",
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "checkout.session.async_payment_failed",
    ]
    assert stripe_client.v1.invoices.retrieve(completed.invoice).status == "open"
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "incomplete"
    [intent] = stripe_client.v1.payment_intents.list(params={"customer": completed.customer}).data
    assert (intent.status, intent.payment_method) == ("requires_payment_method", None)
    assert intent.last_payment_error.type == "card_error"
    assert stripe_client.v1.charges.retrieve(intent.latest_charge).status == "failed"


@pytest.mark.parametrize("result", ["succeeded", "failed"])
def test_a_delayed_payment_settles_only_once(stripe_client, session_params, result):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    complete(stripe_client, session.id, payment_status="unpaid")
    settle(stripe_client, session.id, result)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        settle(stripe_client, session.id, "succeeded")

    assert raised.value.http_status == 400
    assert "no delayed payment in progress" in raised.value.user_message


def test_a_card_payment_cannot_be_settled_as_delayed(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    complete(stripe_client, session.id)

    with pytest.raises(stripe.InvalidRequestError):
        settle(stripe_client, session.id, "failed")


def test_a_trial_needs_no_payment_and_shows_nothing_due(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(subscription_data={"trial_period_days": 14})
    )
    assert session.amount_total == 799  # while open, the recurring amount

    completed = complete(stripe_client, session.id)

    assert (completed.payment_status, completed.amount_subtotal, completed.amount_total) == (
        "no_payment_required",
        0,
        0,
    )
    assert [event.type for event in events_oldest_first(stripe_client)] == TRIAL_EVENTS
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    assert subscription.status == "trialing"
    assert subscription.trial_end - subscription.trial_start == 14 * 86400
    assert subscription["items"].data[0].current_period_end == subscription.trial_end
    invoice = stripe_client.v1.invoices.retrieve(completed.invoice)
    assert (invoice.status, invoice.total, invoice.amount_paid) == ("paid", 0, 0)
    assert invoice.lines.data[0].description == "Trial period for Shared hosting"
    assert not stripe_client.v1.payment_intents.list().data


def test_a_trial_with_a_one_time_item_charges_that_item_today(stripe_client, session_params):
    params = session_params(subscription_data={"trial_period_days": 7})
    params["line_items"].append(
        {"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 1500, "product_data": {"name": "Setup"}}}
    )
    session = stripe_client.v1.checkout.sessions.create(params=params)

    completed = complete(stripe_client, session.id)

    assert (completed.payment_status, completed.amount_total) == ("paid", 1500)
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "trialing"
    invoice = stripe_client.v1.invoices.retrieve(completed.invoice)
    assert [(line.description, line.amount) for line in invoice.lines.data] == [
        ("Trial period for Shared hosting", 0),
        ("1 × Setup", 1500),
    ]


def test_a_coupon_carries_over_to_the_subscription_and_its_invoice(stripe_client, session_params):
    coupon = stripe_client.v1.coupons.create(
        params={"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    )
    session = stripe_client.v1.checkout.sessions.create(params=session_params(discounts=[{"coupon": coupon.id}]))

    completed = complete(stripe_client, session.id)

    assert (completed.amount_subtotal, completed.amount_total) == (799, 639)
    assert completed.total_details.amount_discount == 160
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription, params={"expand": ["discounts"]})
    [discount] = subscription.discounts
    assert (discount.source.coupon, discount.subscription, discount.customer) == (
        coupon.id,
        subscription.id,
        completed.customer,
    )
    assert discount.end is not None
    invoice = stripe_client.v1.invoices.retrieve(completed.invoice)
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (799, 639, 639)
    assert invoice.discounts == [discount.id]
    assert invoice.total_discount_amounts[0].amount == 160
    assert invoice.lines.data[0].discount_amounts[0].amount == 160
    assert stripe_client.v1.coupons.retrieve(coupon.id).times_redeemed == 1


def test_a_session_for_an_existing_customer_creates_no_customer(stripe_client, session_params):
    customer = stripe_client.v1.customers.create(params={"email": "known@example.com", "name": "Known"})
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(customer=customer.id, customer_email=None)
    )

    completed = complete(stripe_client, session.id)

    assert completed.customer == customer.id
    assert completed.customer_details.email == "known@example.com"
    types = [event.type for event in events_oldest_first(stripe_client)]
    assert types == ["customer.created", *PAID_EVENTS[1:]]  # the one creating the customer through the API
    assert stripe_client.v1.invoices.retrieve(completed.invoice).number == f"{customer.invoice_prefix}-0001"


def test_without_an_email_anywhere_completion_asks_for_one(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params(customer_email=None))

    with pytest.raises(stripe.InvalidRequestError) as raised:
        complete(stripe_client, session.id)
    completed = complete(stripe_client, session.id, customer_details={"email": "new@example.com", "name": "New"})

    assert raised.value.param == "customer_details[email]"
    assert (completed.customer_details.email, completed.customer_details.name) == ("new@example.com", "New")
    assert stripe_client.v1.customers.retrieve(completed.customer).name == "New"


def test_a_payment_mode_session_is_paid_by_a_payment_intent(stripe_client, session_params):
    params = session_params(mode="payment")
    del params["line_items"][0]["price_data"]["recurring"]
    session = stripe_client.v1.checkout.sessions.create(params=params)

    completed = complete(stripe_client, session.id)

    assert (completed.payment_status, completed.customer, completed.subscription) == ("paid", None, None)
    intent = stripe_client.v1.payment_intents.retrieve(completed.payment_intent)
    assert (intent.status, intent.amount) == ("succeeded", 799)
    assert [event.type for event in events_oldest_first(stripe_client)] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


@pytest.mark.parametrize("first", ["complete", "expire"])
def test_a_session_that_is_no_longer_open_cannot_be_completed(stripe_client, session_params, first):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    if first == "complete":
        complete(stripe_client, session.id)
    else:
        stripe_client.v1.checkout.sessions.expire(session.id)
    count = len(events_oldest_first(stripe_client))

    with pytest.raises(stripe.InvalidRequestError) as raised:
        complete(stripe_client, session.id)

    assert raised.value.http_status == 400
    assert "only an open session can be completed" in raised.value.user_message
    assert len(events_oldest_first(stripe_client)) == count


def test_completing_an_unknown_session_is_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        complete(stripe_client, "cs_test_unknown")

    assert raised.value.http_status == 404


def test_the_test_helpers_need_the_api_key(sandbox_http, stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    response = sandbox_http.api("POST", f"/v1/test_helpers/checkout/sessions/{session.id}/complete", key=None)

    assert response.status_code == 401


def test_a_replayed_completion_emits_no_second_set_of_events(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    first = complete(stripe_client, session.id, idempotency_key="pay-once")

    again = complete(stripe_client, session.id, idempotency_key="pay-once")

    assert again.to_dict() == first.to_dict()
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(events_oldest_first(stripe_client)) == len(PAID_EVENTS)


def test_expiring_a_session_emits_checkout_session_expired(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    stripe_client.v1.checkout.sessions.expire(session.id)

    [event] = events_oldest_first(stripe_client)
    assert event.type == "checkout.session.expired"
    assert (event.data.object.id, event.data.object.status) == (session.id, "expired")


def test_advancing_the_clock_expires_a_session_whose_time_is_up(stripe_client, sandbox_http, session_params):
    clock = sandbox_http.control("GET", "clock").json()
    soon = stripe_client.v1.checkout.sessions.create(params=session_params(expires_at=clock["now"] + 31 * 60))
    later = stripe_client.v1.checkout.sessions.create(params=session_params())

    advanced = sandbox_http.control("POST", "clock/advance", json={"seconds": 1900})

    assert advanced.status_code == 200
    assert advanced.json()["expired"] == [soon.id]
    assert advanced.json()["offset"] == 1900
    assert stripe_client.v1.checkout.sessions.retrieve(soon.id).status == "expired"
    assert stripe_client.v1.checkout.sessions.retrieve(later.id).status == "open"
    [event] = events_oldest_first(stripe_client)
    assert (event.type, event.data.object.id) == ("checkout.session.expired", soon.id)
    assert event["request"]["id"] is None  # Stripe's own doing, not an API request
    assert event.created >= clock["now"] + 1900


def test_an_advanced_clock_dates_new_objects_and_allows_later_expiry(stripe_client, sandbox_http, session_params):
    now = sandbox_http.control("POST", "clock/advance", json={"seconds": 3600}).json()["now"]

    session = stripe_client.v1.checkout.sessions.create(params=session_params(expires_at=now + 31 * 60))

    assert session.created >= now
    assert session.expires_at == now + 31 * 60


def test_a_session_past_its_expiry_cannot_be_paid(stripe_client, sandbox_http, session_params):
    clock = sandbox_http.control("GET", "clock").json()
    session = stripe_client.v1.checkout.sessions.create(params=session_params(expires_at=clock["now"] + 31 * 60))
    sandbox_http.control("POST", "clock/advance", json={"seconds": 31 * 60})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        complete(stripe_client, session.id)

    assert "expired" in raised.value.user_message


@pytest.mark.parametrize("body", [{"seconds": -1}, {"seconds": 1.5}, {"seconds": "60"}, {"minutes": 1}, {}])
def test_an_invalid_clock_advance_is_rejected(sandbox_http, body):
    response = sandbox_http.control("POST", "clock/advance", json=body)

    assert response.status_code == 400


def test_reset_puts_the_clock_back(sandbox_http):
    sandbox_http.control("POST", "clock/advance", json={"seconds": 100})

    sandbox_http.control("POST", "reset")

    assert sandbox_http.control("GET", "clock").json()["offset"] == 0


def test_api_calls_that_create_or_change_objects_emit_events(stripe_client, session_params):
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com", "metadata": {"a": "1"}})
    stripe_client.v1.customers.update(customer.id, params={"name": "Ada", "metadata": {"a": "2", "b": "3"}})
    stripe_client.v1.customers.update(customer.id, params={"name": "Ada"})  # no change, no event
    stripe_client.v1.coupons.create(params={"percent_off": 10})
    product = stripe_client.v1.products.create(params={"name": "Hosting"})
    stripe_client.v1.prices.create(params={"product": product.id, "currency": "usd", "unit_amount": 500})
    stripe_client.v1.checkout.sessions.create(params=session_params())  # inline price_data: no events

    events = events_oldest_first(stripe_client)

    assert [event.type for event in events] == [
        "customer.created",
        "customer.updated",
        "coupon.created",
        "product.created",
        "price.created",
    ]
    updated = events[1].data
    assert updated.object.name == "Ada"
    assert updated.previous_attributes.to_dict() == {"name": None, "metadata": {"a": "1", "b": None}}


@pytest.fixture
def in_process_sandbox(api_key):
    """Starts a sandbox in this process, whose clock a test can move without running the expiry sweep itself."""
    from stripe_sandbox.server import SandboxServer

    servers = []

    def start(**options):
        server = SandboxServer(host="127.0.0.1", port=0, **options).start_in_thread()
        servers.append(server)
        return server, stripe.StripeClient(api_key, base_addresses={"api": server.url}, max_network_retries=0)

    yield start
    for server in servers:
        server.shutdown()


def test_a_session_whose_time_is_up_expires_when_next_touched(in_process_sandbox, session_params):
    server, client = in_process_sandbox(expiry_sweep_seconds=None)
    session = client.v1.checkout.sessions.create(params=session_params(expires_at=server.store.now() + 31 * 60))
    with server.store.lock:
        server.store.clock_offset += 31 * 60
    assert server.store.find("checkout.session", session.id)["status"] == "open"  # no sweep ran

    retrieved = client.v1.checkout.sessions.retrieve(session.id)

    assert retrieved.status == "expired"
    assert [event.type for event in client.v1.events.list().data] == ["checkout.session.expired"]


def test_the_sweep_expires_sessions_without_any_request(in_process_sandbox, session_params):
    server, client = in_process_sandbox()
    session = client.v1.checkout.sessions.create(params=session_params(expires_at=server.store.now() + 31 * 60))
    with server.store.lock:
        server.store.clock_offset += 31 * 60

    deadline = time.monotonic() + 3
    while server.store.find("checkout.session", session.id)["status"] == "open" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert server.store.find("checkout.session", session.id)["status"] == "expired"
    assert [event.type for event in client.v1.events.list().data] == ["checkout.session.expired"]

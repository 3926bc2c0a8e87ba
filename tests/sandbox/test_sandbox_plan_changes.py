"""Changing a subscription's price (`POST /v1/subscriptions/{id}` with items) and previewing it
(`POST /v1/invoices/create_preview`): prorations by the second, the three proration behaviours, a change of interval,
declined upgrades, through stripe-python as the service calls them.

Every test runs on a test clock frozen at 2026-04-01 00:00 UTC, so a monthly period is April's 30 days exactly."""

import pytest
import stripe

from tests.sandbox.calls import all_events, helper, raw

DAY = 86400
APRIL_1 = 1_775_001_600  # 2026-04-01T00:00:00Z
MAY_1 = APRIL_1 + 30 * DAY
PERIOD = 30 * DAY


@pytest.fixture
def on_clock(request, stripe_client, session_params):
    """A $10.00 monthly subscription paid by card on 2026-04-01 on a test clock; returns a namespace of ids. Given a
    coupon's parameters (indirect parametrisation), the checkout applies that coupon."""

    class Subscribed:
        client = stripe_client

        def advance(self, seconds: int) -> None:
            self.now += seconds
            self.client.v1.test_helpers.test_clocks.advance(self.clock, params={"frozen_time": self.now})

        def subscription(self):
            return self.client.v1.subscriptions.retrieve(self.subscription_id)

        def price_data(self, unit_amount: int, interval: str = "month") -> dict:
            return {
                "currency": "usd",
                "product": self.product,
                "unit_amount": unit_amount,
                "recurring": {"interval": interval},
            }

        def items(self, unit_amount: int, interval: str = "month") -> list[dict]:
            return [{"id": self.item, "price_data": self.price_data(unit_amount, interval)}]

    state = Subscribed()
    state.now = APRIL_1
    state.clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": APRIL_1}).id
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com", "test_clock": state.clock})
    state.customer = customer.id
    params = session_params(customer=customer.id, customer_email=None)
    params["line_items"][0]["price_data"]["unit_amount"] = 1000
    params["line_items"][0]["price_data"]["product_data"] = {"name": "Starter"}
    coupon = getattr(request, "param", None)
    if coupon is not None:
        params["discounts"] = [{"coupon": stripe_client.v1.coupons.create(params=coupon).id}]
    session = stripe_client.v1.checkout.sessions.create(params=params)
    completed = helper(stripe_client, f"checkout/sessions/{session.id}/complete")
    state.subscription_id = completed.subscription
    state.first_invoice = completed.invoice
    subscription = state.subscription()
    item = subscription["items"].data[0]
    state.item = item.id
    state.product = item.price.product
    state.old_price = item.price.id
    return state


def line_amounts(invoice) -> list[tuple[str, int]]:
    return [(line.description, line.amount) for line in invoice.lines.data]


# Previews


def test_preview_of_an_upgrade_invoiced_now_credits_half_the_old_price_and_charges_half_the_new(on_clock):
    on_clock.advance(15 * DAY)
    events_before = len(all_events(on_clock.client))

    preview = on_clock.client.v1.invoices.create_preview(params={
        "customer": on_clock.customer,
        "subscription": on_clock.subscription_id,
        "subscription_details": {"items": on_clock.items(3000), "proration_behavior": "always_invoice"},
    })  # fmt: skip

    assert line_amounts(preview) == [
        ("Unused time on Starter after 16 Apr 2026", -500),
        ("Remaining time on Starter after 16 Apr 2026", 1500),
    ]
    assert "id" not in raw(preview)
    assert preview.amount_due == 1000
    assert preview.total == 1000
    assert preview.billing_reason == "subscription_update"
    assert preview.status == "draft"
    assert preview.parent.subscription_details.subscription == on_clock.subscription_id
    for line in preview.lines.data:
        details = line.parent.subscription_item_details
        assert details.proration is True
        assert details.subscription_item == on_clock.item
        assert (line.period.start, line.period.end) == (APRIL_1 + 15 * DAY, MAY_1)
        assert line.discountable is False
    credit = preview.lines.data[0].parent.subscription_item_details.proration_details.credited_items
    assert credit.invoice == on_clock.first_invoice
    # A preview stores nothing and emits nothing.
    assert len(all_events(on_clock.client)) == events_before
    assert on_clock.client.v1.invoice_items.list().data == []
    assert on_clock.subscription()["items"].data[0].price.id == on_clock.old_price


@pytest.mark.parametrize("elapsed", [1, 15 * DAY + 3600 + 7, 29 * DAY + 80_000])
def test_prorations_are_computed_to_the_second(on_clock, elapsed):
    on_clock.advance(elapsed)

    preview = on_clock.client.v1.invoices.create_preview(params={
        "subscription": on_clock.subscription_id,
        "subscription_details": {"items": on_clock.items(3000), "proration_behavior": "always_invoice"},
    })  # fmt: skip

    left = PERIOD - elapsed
    credit, charge = (line.amount for line in preview.lines.data)
    assert credit == -round(1000 * left / PERIOD)
    assert charge == round(3000 * left / PERIOD)
    assert preview.amount_due == credit + charge


def test_proration_date_is_the_moment_prorated(on_clock):
    on_clock.advance(10 * DAY)

    preview = on_clock.client.v1.invoices.create_preview(params={
        "subscription": on_clock.subscription_id,
        "subscription_details": {
            "items": on_clock.items(3000),
            "proration_behavior": "always_invoice",
            "proration_date": APRIL_1 + 15 * DAY,
        },
    })  # fmt: skip

    assert [amount for _, amount in line_amounts(preview)] == [-500, 1500]


def test_preview_with_create_prorations_is_the_next_renewal_with_the_prorations_in_it(on_clock):
    on_clock.advance(15 * DAY)

    preview = on_clock.client.v1.invoices.create_preview(params={
        "subscription": on_clock.subscription_id,
        "subscription_details": {"items": on_clock.items(3000)},
    })  # fmt: skip

    assert line_amounts(preview) == [
        ("Unused time on Starter after 16 Apr 2026", -500),
        ("Remaining time on Starter after 16 Apr 2026", 1500),
        ("1 × Starter (at $30.00 / month)", 3000),
    ]
    assert preview.amount_due == 4000
    assert preview.billing_reason == "upcoming"
    assert preview.created == MAY_1
    assert (preview.period_start, preview.period_end) == (APRIL_1, MAY_1)


def test_preview_without_prorations_shows_the_new_price_from_the_next_renewal(on_clock):
    on_clock.advance(15 * DAY)

    preview = on_clock.client.v1.invoices.create_preview(params={
        "subscription": on_clock.subscription_id,
        "subscription_details": {"items": on_clock.items(3000), "proration_behavior": "none"},
    })  # fmt: skip

    assert line_amounts(preview) == [("1 × Starter (at $30.00 / month)", 3000)]


def test_preview_of_the_next_renewal_without_a_change(on_clock):
    preview = on_clock.client.v1.invoices.create_preview(params={"subscription": on_clock.subscription_id})

    assert line_amounts(preview) == [("1 × Starter (at $10.00 / month)", 1000)]
    assert preview.lines.data[0].period.start == MAY_1


def test_preview_with_an_existing_price(on_clock):
    price = on_clock.client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 3000, "recurring": {"interval": "month"}, "product": on_clock.product}
    )
    on_clock.advance(15 * DAY)

    preview = on_clock.client.v1.invoices.create_preview(params={
        "subscription": on_clock.subscription_id,
        "subscription_details": {"items": [{"id": on_clock.item, "price": price.id}],
                                 "proration_behavior": "always_invoice"},
    })  # fmt: skip

    assert preview.amount_due == 1000
    assert str(preview.lines.data[1].pricing.unit_amount_decimal) == "3000"


@pytest.mark.parametrize(("details", "param"), [
    ({"items": [{"id": "si_nope", "price": "price_nope"}]}, "subscription_details[items][0][id]"),
    ({"items": [{"id": "ITEM", "price": "price_nope"}]}, "subscription_details[items][0][price]"),
    ({"items": [{"id": "ITEM", "price_data": {"currency": "usd", "product": "prod_nope", "unit_amount": 5,
                                              "recurring": {"interval": "month"}}}]},
     "subscription_details[items][0][price_data][product]"),
    ({"items": [{"id": "ITEM", "price_data": {"currency": "eur", "product": "PRODUCT", "unit_amount": 5,
                                              "recurring": {"interval": "month"}}}]},
     "subscription_details[items][0][price]"),
    ({"items": [{"id": "ITEM", "price_data": {"currency": "usd", "product_data": {"name": "x"}, "unit_amount": 5,
                                              "recurring": {"interval": "month"}}}]},
     "subscription_details[items][0][price_data][product]"),
    ({"proration_behavior": "sometimes"}, "subscription_details[proration_behavior]"),
    ({"proration_date": str(APRIL_1 - 1)}, "subscription_details[proration_date]"),
])  # fmt: skip
def test_preview_rejects_what_stripe_rejects(on_clock, details, param):
    text = repr(details).replace("'ITEM'", repr(on_clock.item)).replace("'PRODUCT'", repr(on_clock.product))

    with pytest.raises(stripe.InvalidRequestError) as raised:
        on_clock.client.v1.invoices.create_preview(
            params={"subscription": on_clock.subscription_id, "subscription_details": eval(text)}
        )

    assert raised.value.http_status == 400
    assert raised.value.param == param


def test_preview_of_another_customers_subscription_is_refused(on_clock):
    other = on_clock.client.v1.customers.create(params={"email": "eve@example.com"})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        on_clock.client.v1.invoices.create_preview(
            params={"customer": other.id, "subscription": on_clock.subscription_id}
        )

    assert raised.value.param == "customer"


# Changes


def test_upgrade_invoiced_now_charges_the_difference_at_once(on_clock):
    on_clock.advance(15 * DAY)
    seen = len(all_events(on_clock.client))

    updated = on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={
        "items": on_clock.items(3000), "proration_behavior": "always_invoice", "metadata": {"plan": "premium"},
    })  # fmt: skip

    item = updated["items"].data[0]
    assert item.id == on_clock.item
    assert item.price.unit_amount == 3000
    assert item.price.product == on_clock.product
    assert item.price.active is False
    assert item.plan.amount == 3000
    assert (item.current_period_start, item.current_period_end) == (APRIL_1, MAY_1)
    assert updated.status == "active"
    assert updated.metadata["plan"] == "premium"
    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update"
    assert invoice.status == "paid"
    assert invoice.amount_paid == 1000
    assert invoice.parent.subscription_details.subscription == on_clock.subscription_id
    assert [amount for _, amount in line_amounts(invoice)] == [-500, 1500]
    assert all(line.parent.subscription_item_details.invoice_item.startswith("ii_") for line in invoice.lines.data)
    events = all_events(on_clock.client)[seen:]
    assert [event.type for event in events] == [
        "invoiceitem.created",
        "invoiceitem.created",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    previous = events[-1].data.previous_attributes
    assert previous["items"]["data"][0]["price"]["id"] == on_clock.old_price
    assert previous["latest_invoice"] == on_clock.first_invoice
    assert previous["metadata"].to_dict() == {"plan": None}
    assert all(event.created == APRIL_1 + 15 * DAY for event in events)
    items = on_clock.client.v1.invoice_items.list(params={"invoice": invoice.id}).data
    assert sorted(entry.amount for entry in items) == [-500, 1500]
    assert all(entry.proration for entry in items)


@pytest.mark.parametrize("on_clock", [{"amount_off": 200, "currency": "usd", "duration": "forever"}], indirect=True)
def test_upgrade_invoiced_now_under_an_amount_off_coupon_charges_the_prorations(on_clock):
    # An amount off is shared among the lines of a new period; a change that keeps the cycle has none, only
    # prorations. The sandbox once divided the amount among no lines: a 500, with the items already changed.
    on_clock.advance(15 * DAY)

    updated = on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params={"items": on_clock.items(3000), "proration_behavior": "always_invoice"}
    )

    assert updated["items"].data[0].price.unit_amount == 3000
    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert [amount for _, amount in line_amounts(invoice)] == [-500, 1500]
    assert (invoice.status, invoice.amount_paid) == ("paid", 1000)


def test_upgrade_with_create_prorations_bills_them_on_the_next_renewal(on_clock):
    on_clock.advance(15 * DAY)

    updated = on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={"items": on_clock.items(3000)})

    assert updated.latest_invoice == on_clock.first_invoice
    pending = on_clock.client.v1.invoice_items.list(params={"pending": True}).data
    assert sorted(entry.amount for entry in pending) == [-500, 1500]
    on_clock.advance(15 * DAY)
    renewal = on_clock.client.v1.invoices.retrieve(on_clock.subscription().latest_invoice)
    assert renewal.billing_reason == "subscription_cycle"
    assert sorted(amount for _, amount in line_amounts(renewal)) == [-500, 1500, 3000]
    assert renewal.amount_paid == 4000
    assert on_clock.client.v1.invoice_items.list(params={"pending": True}).data == []


def test_change_without_prorations_bills_the_new_price_from_the_next_renewal(on_clock):
    on_clock.advance(15 * DAY)

    on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params={"items": on_clock.items(3000), "proration_behavior": "none"}
    )
    on_clock.advance(15 * DAY)

    renewal = on_clock.client.v1.invoices.retrieve(on_clock.subscription().latest_invoice)
    assert line_amounts(renewal) == [("1 × Starter (at $30.00 / month)", 3000)]
    assert on_clock.client.v1.invoice_items.list().data == []


def test_monthly_to_yearly_restarts_the_cycle_and_invoices_the_year_at_once(on_clock):
    on_clock.advance(15 * DAY)
    now = APRIL_1 + 15 * DAY

    updated = on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params={"items": on_clock.items(10000, "year")}
    )

    item = updated["items"].data[0]
    assert updated.billing_cycle_anchor == now
    assert (item.current_period_start, item.current_period_end) == (now, 1_807_833_600)  # 2027-04-16
    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update"
    assert line_amounts(invoice) == [
        ("Unused time on Starter after 16 Apr 2026", -500),
        ("1 × Starter (at $100.00 / year)", 10000),
    ]
    assert invoice.amount_paid == 9500
    assert invoice.lines.data[1].period.start == now
    # The next step is a year away: a month later nothing renews.
    on_clock.advance(31 * DAY)
    assert on_clock.subscription().latest_invoice == invoice.id


def test_preview_of_an_interval_change_matches_the_invoice_it_makes(on_clock):
    on_clock.advance(15 * DAY)
    params = {"items": on_clock.items(10000, "year"), "proration_date": APRIL_1 + 15 * DAY}

    preview = on_clock.client.v1.invoices.create_preview(
        params={"subscription": on_clock.subscription_id, "subscription_details": params}
    )
    updated = on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params=params)

    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert line_amounts(preview) == line_amounts(invoice)
    assert preview.amount_due == invoice.amount_due == 9500


def test_downgrade_invoiced_now_leaves_a_credit_that_the_next_renewal_uses(on_clock):
    on_clock.advance(15 * DAY)

    updated = on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params={"items": on_clock.items(400), "proration_behavior": "always_invoice"}
    )

    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.total == -300
    assert invoice.amount_due == 0
    assert invoice.status == "paid"
    assert invoice.ending_balance == -300
    assert on_clock.client.v1.customers.retrieve(on_clock.customer).balance == -300
    on_clock.advance(15 * DAY)
    renewal = on_clock.client.v1.invoices.retrieve(on_clock.subscription().latest_invoice)
    assert (renewal.total, renewal.starting_balance, renewal.amount_due) == (400, -300, 100)
    assert on_clock.client.v1.customers.retrieve(on_clock.customer).balance == 0


def test_a_credit_left_by_a_downgrade_pays_part_of_a_new_checkout_once(on_clock, session_params):
    # The sandbox once took the amount to charge before the credit was applied: the card paid the full $10.00 and
    # the credit was used up as well.
    on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params={"items": on_clock.items(400), "proration_behavior": "always_invoice"}
    )
    on_clock.client.v1.subscriptions.cancel(on_clock.subscription_id)
    assert on_clock.client.v1.customers.retrieve(on_clock.customer).balance == -600  # the whole month, $10 -> $4

    params = session_params(customer=on_clock.customer, customer_email=None)
    params["line_items"][0]["price_data"]["unit_amount"] = 1000
    session = on_clock.client.v1.checkout.sessions.create(params=params)
    completed = helper(on_clock.client, f"checkout/sessions/{session.id}/complete")

    invoice = on_clock.client.v1.invoices.retrieve(completed.invoice)
    assert (invoice.total, invoice.starting_balance, invoice.amount_due) == (1000, -600, 400)
    assert (invoice.status, invoice.amount_paid) == ("paid", 400)
    payment = on_clock.client.v1.invoice_payments.list(params={"invoice": invoice.id}).data[0]
    intent = on_clock.client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert (intent.amount, intent.status) == (400, "succeeded")
    assert on_clock.client.v1.customers.retrieve(on_clock.customer).balance == 0
    assert on_clock.client.v1.subscriptions.retrieve(completed.subscription).status == "active"


def test_change_to_an_existing_price_and_quantity(on_clock):
    price = on_clock.client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 2000, "recurring": {"interval": "month"}, "product": on_clock.product}
    )
    on_clock.advance(15 * DAY)

    updated = on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={
        "items": [{"id": on_clock.item, "price": price.id, "quantity": 2}], "proration_behavior": "always_invoice",
    })  # fmt: skip

    assert updated["items"].data[0].price.id == price.id
    assert updated["items"].data[0].quantity == 2
    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert [amount for _, amount in line_amounts(invoice)] == [-500, 2000]


def test_declined_upgrade_with_error_if_incomplete_changes_nothing(on_clock):
    card = on_clock.client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": on_clock.customer}
    )
    on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={"default_payment_method": card.id})
    on_clock.advance(15 * DAY)
    before = raw(on_clock.subscription())
    seen = len(all_events(on_clock.client))

    with pytest.raises(stripe.CardError) as raised:
        on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={
            "items": on_clock.items(3000), "proration_behavior": "always_invoice",
            "payment_behavior": "error_if_incomplete",
        })  # fmt: skip

    assert raised.value.http_status == 402
    assert raised.value.code == "card_declined"
    assert raw(on_clock.subscription()) == before
    assert len(all_events(on_clock.client)) == seen
    assert len(on_clock.client.v1.invoices.list(params={"customer": on_clock.customer}).data) == 1
    assert on_clock.client.v1.invoice_items.list().data == []


def test_declined_upgrade_with_allow_incomplete_stands_and_the_subscription_is_past_due(on_clock):
    card = on_clock.client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": on_clock.customer}
    )
    on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={"default_payment_method": card.id})
    on_clock.advance(15 * DAY)
    seen = len(all_events(on_clock.client))

    updated = on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params={"items": on_clock.items(3000), "proration_behavior": "always_invoice"}
    )

    assert updated.status == "past_due"
    assert updated["items"].data[0].price.unit_amount == 3000
    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.status == "open"
    assert invoice.next_payment_attempt == APRIL_1 + 18 * DAY
    events = all_events(on_clock.client)[seen:]
    assert [event.type for event in events][-3:] == [
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert events[-1].data.previous_attributes["status"] == "active"


def test_pending_if_incomplete_is_refused_as_not_implemented(on_clock):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        on_clock.client.v1.subscriptions.update(
            on_clock.subscription_id,
            params={"items": on_clock.items(3000), "payment_behavior": "pending_if_incomplete"},
        )

    assert raised.value.param == "payment_behavior"


def test_a_retried_change_with_the_same_idempotency_key_is_made_once(on_clock):
    on_clock.advance(15 * DAY)
    params = {"items": on_clock.items(3000), "proration_behavior": "always_invoice"}

    first = on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params=params, options={"idempotency_key": "upgrade-1"}
    )
    second = on_clock.client.v1.subscriptions.update(
        on_clock.subscription_id, params=params, options={"idempotency_key": "upgrade-1"}
    )

    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert second.latest_invoice == first.latest_invoice
    assert len(on_clock.client.v1.invoices.list(params={"customer": on_clock.customer}).data) == 2


def test_an_unknown_item_is_refused(on_clock):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        on_clock.client.v1.subscriptions.update(
            on_clock.subscription_id, params={"items": [{"id": "si_nope", "price": on_clock.old_price}]}
        )

    assert raised.value.param == "items[0][id]"


def test_a_canceled_subscription_cannot_change_plan(on_clock):
    on_clock.client.v1.subscriptions.cancel(on_clock.subscription_id)

    with pytest.raises(stripe.InvalidRequestError):
        on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={"items": on_clock.items(3000)})


def test_default_incomplete_leaves_the_invoice_open_for_the_caller_to_pay(on_clock):
    on_clock.advance(15 * DAY)

    updated = on_clock.client.v1.subscriptions.update(on_clock.subscription_id, params={
        "items": on_clock.items(3000), "proration_behavior": "always_invoice",
        "payment_behavior": "default_incomplete",
    })  # fmt: skip

    invoice = on_clock.client.v1.invoices.retrieve(updated.latest_invoice)
    assert updated.status == "past_due"
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 0, None)
    paid = on_clock.client.v1.invoices.pay(invoice.id)
    assert paid.status == "paid"
    assert on_clock.subscription().status == "active"

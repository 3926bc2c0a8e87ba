"""A subscription's life after Checkout: renewals as the clock moves (each step at its own time), declined cards and
the retry schedule, paying an open invoice (API and hosted page), cancelling, refunds, list filters and test clocks,
all through stripe-python as the service calls them."""

import pytest
import requests
import stripe

from tests.sandbox.calls import all_events, helper

DAY = 86400
RENEWAL_PAID = [
    "invoice.created",
    "invoice.finalized",
    "payment_intent.created",
    "charge.succeeded",
    "payment_intent.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "customer.subscription.updated",
]
RENEWAL_FAILED = [
    "invoice.created",
    "invoice.finalized",
    "payment_intent.created",
    "charge.failed",
    "payment_intent.payment_failed",
    "invoice.payment_failed",
    "customer.subscription.updated",
]
RETRY_FAILED = ["charge.failed", "payment_intent.payment_failed", "invoice.payment_failed"]


def subscribe(client, session_params, *, card="pm_card_visa", **overrides):
    session = client.v1.checkout.sessions.create(params=session_params(**overrides))
    return helper(client, f"checkout/sessions/{session.id}/complete", payment_method=card)


def advance(url: str, seconds: int) -> dict:
    response = requests.post(f"{url}/_sandbox/clock/advance", json={"seconds": seconds}, timeout=10)
    response.raise_for_status()
    return response.json()


class EventLog:
    """Events newer than the last look."""

    def __init__(self, client):
        self.client = client
        self.seen = len(all_events(client))

    def new(self) -> list:
        events = all_events(self.client)
        fresh, self.seen = events[self.seen :], len(events)
        return fresh


def period(subscription) -> tuple[int, int]:
    item = subscription["items"].data[0]
    return item.current_period_start, item.current_period_end


def switch_to_failing_card(client, subscription_id: str, customer_id: str):
    card = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer_id})
    client.v1.subscriptions.update(subscription_id, params={"default_payment_method": card.id})
    return card


def test_a_three_month_jump_renews_three_times_in_order_each_at_its_period_end(
    stripe_client, sandbox_url, session_params
):
    completed = subscribe(stripe_client, session_params)
    _, end = period(stripe_client.v1.subscriptions.retrieve(completed.subscription))
    log = EventLog(stripe_client)

    answer = advance(sandbox_url, 92 * DAY)

    assert answer["billing_steps"] == 3
    events = log.new()
    assert [event.type for event in events] == RENEWAL_PAID * 3
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    ends = [end]
    for _ in range(3):
        ends.append(stripe_client.v1.subscriptions.retrieve(completed.subscription)["items"].data[0].current_period_end)
    renewal_times = [event.created for event in events[:: len(RENEWAL_PAID)]]
    assert renewal_times[0] == end and renewal_times == sorted(renewal_times) and len(set(renewal_times)) == 3
    for index, renewal_at in enumerate(renewal_times):
        batch = events[index * len(RENEWAL_PAID) : (index + 1) * len(RENEWAL_PAID)]
        assert {event.created for event in batch} == {renewal_at}
        invoice = batch[0].data.object
        assert (invoice.billing_reason, invoice.created, invoice.period_end) == (
            "subscription_cycle",
            renewal_at,
            renewal_at,
        )
        assert invoice.parent.subscription_details.subscription == completed.subscription
        assert "subscription" not in invoice
        paid = batch[5].data.object
        assert paid.status_transitions.paid_at == renewal_at
        assert batch[3].data.object.created == renewal_at  # the charge
        updated = batch[-1].data
        item = updated.object["items"].data[0]
        assert item.current_period_start == renewal_at
        assert updated.previous_attributes["items"]["data"][0]["current_period_end"] == renewal_at
        assert updated.previous_attributes["latest_invoice"] != updated.object.latest_invoice
    assert subscription.status == "active"
    assert period(subscription)[0] == renewal_times[-1]
    invoices = stripe_client.v1.invoices.list(params={"subscription": completed.subscription}).data
    assert [invoice.billing_reason for invoice in invoices] == ["subscription_cycle"] * 3 + ["subscription_create"]
    assert all(invoice.status == "paid" and invoice.total == 799 for invoice in invoices)


def test_a_declined_renewal_goes_past_due_and_is_retried_3_5_7_days_later_then_canceled(
    stripe_client, sandbox_url, session_params
):
    completed = subscribe(stripe_client, session_params)
    switch_to_failing_card(stripe_client, completed.subscription, completed.customer)
    _, end = period(stripe_client.v1.subscriptions.retrieve(completed.subscription))
    log = EventLog(stripe_client)

    advance(sandbox_url, 31 * DAY)

    events = log.new()
    assert [event.type for event in events] == RENEWAL_FAILED
    failed = events[5].data.object
    assert (failed.status, failed.attempt_count, failed.next_payment_attempt) == ("open", 1, end + 3 * DAY)
    assert events[3].data.object.failure_code == "card_declined"
    assert events[-1].data.object.status == "past_due"
    assert events[-1].data.previous_attributes["status"] == "active"

    advance(sandbox_url, 3 * DAY)
    retry = log.new()
    assert [event.type for event in retry] == RETRY_FAILED
    assert {event.created for event in retry} == {end + 3 * DAY}
    assert (retry[-1].data.object.attempt_count, retry[-1].data.object.next_payment_attempt) == (2, end + 5 * DAY)

    advance(sandbox_url, 5 * DAY)
    last = log.new()
    assert [event.type for event in last] == RETRY_FAILED * 2 + ["customer.subscription.deleted"]
    assert [event.created for event in last] == [end + 5 * DAY] * 3 + [end + 7 * DAY] * 4
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    assert subscription.status == "canceled"
    assert subscription.canceled_at == subscription.ended_at == end + 7 * DAY
    assert subscription.cancellation_details.reason == "payment_failed"
    invoice = stripe_client.v1.invoices.retrieve(failed.id)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == ("open", 4, None)

    advance(sandbox_url, 60 * DAY)
    assert log.new() == []


def test_the_last_failed_retry_marks_the_subscription_unpaid_when_told_to(start_sandbox, session_params):
    with start_sandbox("--after-last-retry", "unpaid", "--retry-days", "2") as (_, url):
        client = stripe.StripeClient("sk_test_" + "U" * 24, base_addresses={"api": url}, max_network_retries=0)
        completed = subscribe(client, session_params)
        switch_to_failing_card(client, completed.subscription, completed.customer)
        advance(url, 31 * DAY)
        assert client.v1.subscriptions.retrieve(completed.subscription).status == "past_due"

        advance(url, 2 * DAY)

        subscription = client.v1.subscriptions.retrieve(completed.subscription)
        assert subscription.status == "unpaid"
        last = client.v1.events.list(params={"limit": 1}).data[0]
        assert (last.type, last.data.previous_attributes["status"]) == ("customer.subscription.updated", "past_due")


def test_a_bad_retry_flag_stops_the_sandbox(start_sandbox):
    with pytest.raises(RuntimeError), start_sandbox("--retry-days", "5,3", stderr=-3):
        pass


def test_paying_the_open_invoice_ends_the_dunning(stripe_client, sandbox_url, session_params):
    completed = subscribe(stripe_client, session_params)
    switch_to_failing_card(stripe_client, completed.subscription, completed.customer)
    advance(sandbox_url, 31 * DAY)
    [open_invoice] = stripe_client.v1.invoices.list(params={"status": "open"}).data
    log = EventLog(stripe_client)

    with pytest.raises(stripe.CardError) as declined:
        stripe_client.v1.invoices.pay(open_invoice.id)
    assert declined.value.code == "card_declined"
    assert declined.value.http_status == 402
    assert stripe_client.v1.invoices.retrieve(open_invoice.id).next_payment_attempt == open_invoice.next_payment_attempt

    paid = stripe_client.v1.invoices.pay(open_invoice.id, params={"payment_method": "pm_card_visa"})

    assert (paid.status, paid.next_payment_attempt) == ("paid", None)
    types = [event.type for event in log.new()]
    assert types[-5:] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    assert "payment_method.attached" in types
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "active"
    [payment] = stripe_client.v1.invoice_payments.list(params={"invoice": open_invoice.id}).data
    intent = stripe_client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert (payment.status, intent.status) == ("paid", "succeeded")
    expanded = stripe_client.v1.invoices.retrieve(open_invoice.id, params={"expand": ["payments"]})
    assert expanded.payments.data[0].id == payment.id
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.pay(open_invoice.id)
    advance(sandbox_url, 10 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "active"


def test_the_hosted_invoice_page_pays_the_invoice(stripe_client, sandbox_url, session_params):
    completed = subscribe(stripe_client, session_params)
    switch_to_failing_card(stripe_client, completed.subscription, completed.customer)
    advance(sandbox_url, 31 * DAY)
    [invoice] = stripe_client.v1.invoices.list(params={"status": "open"}).data
    assert invoice.hosted_invoice_url == f"{sandbox_url}/i/{invoice.id}"

    page = requests.get(invoice.hosted_invoice_url, timeout=5)
    assert page.status_code == 200 and 'name="viewport"' in page.text and "$7.99" in page.text
    declined = requests.post(
        f"{invoice.hosted_invoice_url}/pay", data={"payment_method": "pm_card_chargeCustomerFail"}, timeout=5
    )
    assert declined.status_code == 402 and "declined" in declined.text
    paid = requests.post(f"{invoice.hosted_invoice_url}/pay", data={"payment_method": "pm_card_visa"}, timeout=5)

    assert paid.status_code == 200 and "Paid" in paid.text
    assert stripe_client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "active"
    pdf = requests.get(invoice.invoice_pdf, timeout=5)
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")


def test_a_declining_card_fails_checkout_but_is_kept_through_a_trial(stripe_client, sandbox_url, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    with pytest.raises(stripe.CardError):
        helper(stripe_client, f"checkout/sessions/{session.id}/complete", payment_method="pm_card_chargeCustomerFail")
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "open"

    completed = subscribe(
        stripe_client, session_params, card="pm_card_chargeCustomerFail", subscription_data={"trial_period_days": 7}
    )
    customer = stripe_client.v1.customers.retrieve(completed.customer)
    card = stripe_client.v1.payment_methods.retrieve(customer.invoice_settings.default_payment_method)
    assert card.card.last4 == "0341"
    advance(sandbox_url, 7 * DAY)

    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    assert subscription.status == "past_due"
    [invoice] = stripe_client.v1.invoices.list(params={"subscription": subscription.id, "status": "open"}).data
    assert (invoice.billing_reason, invoice.amount_due, invoice.attempt_count) == ("subscription_cycle", 799, 1)


def test_a_trial_ends_with_its_first_charge(stripe_client, sandbox_url, session_params):
    completed = subscribe(stripe_client, session_params, subscription_data={"trial_period_days": 14})
    trial_end = stripe_client.v1.subscriptions.retrieve(completed.subscription).trial_end
    log = EventLog(stripe_client)

    advance(sandbox_url, 14 * DAY)

    events = log.new()
    assert [event.type for event in events] == RENEWAL_PAID
    assert events[-1].data.previous_attributes["status"] == "trialing"
    assert events[-1].created == trial_end
    assert events[-1].data.object.status == "active"


@pytest.mark.parametrize(("duration", "months", "totals"), [
    ("forever", None, [639, 639, 639]),
    ("once", None, [799, 799, 799]),
    ("repeating", 2, [639, 799, 799]),
])  # fmt: skip
def test_coupons_discount_renewals_for_as_long_as_they_last(
    stripe_client, sandbox_url, session_params, duration, months, totals
):
    coupon = stripe_client.v1.coupons.create(
        params={"percent_off": 20, "duration": duration, **({"duration_in_months": months} if months else {})}
    )
    completed = subscribe(stripe_client, session_params, discounts=[{"coupon": coupon.id}])

    advance(sandbox_url, 92 * DAY)

    invoices = stripe_client.v1.invoices.list(params={"subscription": completed.subscription}).data
    assert [invoice.total for invoice in reversed(invoices)] == [639, *totals]


def test_cancel_at_period_end_ends_the_subscription_instead_of_renewing(stripe_client, sandbox_url, session_params):
    completed = subscribe(stripe_client, session_params)
    _, end = period(stripe_client.v1.subscriptions.retrieve(completed.subscription))
    log = EventLog(stripe_client)

    updated = stripe_client.v1.subscriptions.update(
        completed.subscription,
        params={"cancel_at_period_end": True, "cancellation_details": {"comment": "moving"}, "metadata": {"a": "1"}},
    )

    assert (updated.cancel_at_period_end, updated.cancel_at) == (True, end)
    assert updated.cancellation_details.reason == "cancellation_requested"
    [event] = log.new()
    assert event.type == "customer.subscription.updated"
    assert event.data.previous_attributes["cancel_at_period_end"] is False
    assert event.data.previous_attributes["metadata"].to_dict() == {"a": None}
    advance(sandbox_url, 40 * DAY)
    [deleted] = log.new()
    assert (deleted.type, deleted.created) == ("customer.subscription.deleted", end)
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    assert (subscription.status, subscription.ended_at) == ("canceled", end)
    assert len(stripe_client.v1.invoices.list(params={"subscription": completed.subscription}).data) == 1


def test_cancel_at_period_end_can_be_taken_back(stripe_client, sandbox_url, session_params):
    completed = subscribe(stripe_client, session_params)
    stripe_client.v1.subscriptions.update(completed.subscription, params={"cancel_at_period_end": True})

    undone = stripe_client.v1.subscriptions.update(completed.subscription, params={"cancel_at_period_end": False})

    assert (undone.cancel_at_period_end, undone.cancel_at, undone.canceled_at) == (False, None, None)
    advance(sandbox_url, 31 * DAY)
    assert stripe_client.v1.subscriptions.retrieve(completed.subscription).status == "active"


def test_cancel_now(stripe_client, sandbox_url, session_params):
    completed = subscribe(stripe_client, session_params)
    log = EventLog(stripe_client)

    canceled = stripe_client.v1.subscriptions.cancel(
        completed.subscription, params={"cancellation_details": {"comment": "by staff"}}
    )

    assert canceled.status == "canceled"
    assert canceled.canceled_at == canceled.ended_at
    assert (canceled.cancellation_details.reason, canceled.cancellation_details.comment) == (
        "cancellation_requested",
        "by staff",
    )
    assert [event.type for event in log.new()] == ["customer.subscription.deleted"]
    advance(sandbox_url, 40 * DAY)
    assert log.new() == []
    assert stripe_client.v1.subscriptions.list(params={"customer": completed.customer}).data == []


def test_refunds_full_partial_and_too_much(stripe_client, session_params):
    completed = subscribe(stripe_client, session_params)
    [charge] = stripe_client.v1.charges.list(params={"customer": completed.customer}).data
    log = EventLog(stripe_client)

    partial = stripe_client.v1.refunds.create(
        params={
            "payment_intent": charge.payment_intent,
            "amount": 300,
            "reason": "requested_by_customer",
            "metadata": {"ticket": "7"},
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 500})
    rest = stripe_client.v1.refunds.create(params={"charge": charge.id})

    assert (partial.amount, partial.status, partial.charge, partial.reason) == (
        300,
        "succeeded",
        charge.id,
        "requested_by_customer",
    )
    assert too_much.value.http_status == 400 and too_much.value.param == "amount"
    assert rest.amount == 499
    events = log.new()
    assert [event.type for event in events] == ["charge.refunded", "refund.created"] * 2
    assert events[0].data.previous_attributes.to_dict() == {"amount_refunded": 0}
    assert events[2].data.previous_attributes.to_dict() == {"amount_refunded": 300, "refunded": False}
    refunded = stripe_client.v1.charges.retrieve(charge.id)
    assert (refunded.amount_refunded, refunded.refunded) == (799, True)
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 1})
    assert again.value.code == "charge_already_refunded"
    listed = stripe_client.v1.refunds.list(params={"charge": charge.id}).data
    assert [refund.id for refund in listed] == [rest.id, partial.id]
    assert stripe_client.v1.refunds.list(params={"payment_intent": "pi_other"}).data == []
    assert stripe_client.v1.refunds.retrieve(partial.id).metadata.to_dict() == {"ticket": "7"}


def test_idempotent_refund_is_made_once(stripe_client, session_params):
    completed = subscribe(stripe_client, session_params)
    [charge] = stripe_client.v1.charges.list(params={"customer": completed.customer}).data
    options = {"idempotency_key": "refund-1"}

    first = stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 100}, options=options)
    second = stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 100}, options=options)

    assert first.id == second.id
    assert stripe_client.v1.charges.retrieve(charge.id).amount_refunded == 100


def test_lists_filter_as_stripe_does(stripe_client, sandbox_url, session_params):
    first = subscribe(stripe_client, session_params)
    second = subscribe(stripe_client, session_params, customer_email="bob@example.com")
    switch_to_failing_card(stripe_client, second.subscription, second.customer)
    advance(sandbox_url, 31 * DAY)

    by_customer = stripe_client.v1.invoices.list(params={"customer": first.customer}).data
    by_subscription = stripe_client.v1.invoices.list(params={"subscription": second.subscription}).data
    open_ones = stripe_client.v1.invoices.list(params={"status": "open"}).data
    charges = stripe_client.v1.charges.list(params={"customer": second.customer}).data

    assert {invoice.customer for invoice in by_customer} == {first.customer} and len(by_customer) == 2
    assert len(by_subscription) == 2
    assert [invoice.customer for invoice in open_ones] == [second.customer]
    assert [charge.status for charge in charges] == ["failed", "succeeded"]
    [by_intent] = stripe_client.v1.charges.list(params={"payment_intent": charges[0].payment_intent}).data
    assert by_intent.id == charges[0].id


def test_default_payment_methods_must_belong_to_the_customer(stripe_client, session_params):
    completed = subscribe(stripe_client, session_params)
    other = stripe_client.v1.customers.create(params={"email": "eve@example.com"})
    foreign = stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": other.id})
    assert foreign.id.startswith("pm_") and foreign.id != "pm_card_visa" and foreign.customer == other.id

    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.update(
            completed.customer, params={"invoice_settings": {"default_payment_method": foreign.id}}
        )
    own = stripe_client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": completed.customer})
    customer = stripe_client.v1.customers.update(
        completed.customer, params={"invoice_settings": {"default_payment_method": own.id}}
    )

    assert customer.invoice_settings.default_payment_method == own.id
    last = stripe_client.v1.events.list(params={"limit": 1}).data[0]
    assert last.type == "customer.updated"
    assert last.data.previous_attributes["invoice_settings"]["default_payment_method"] != own.id


def test_a_test_clock_runs_its_own_customers_subscriptions(stripe_client, sandbox_url, session_params):
    frozen = 1_800_000_000
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen, "name": "renewals"})
    customer = stripe_client.v1.customers.create(params={"email": "clock@example.com", "test_clock": clock.id})
    completed = subscribe(stripe_client, session_params, customer=customer.id, customer_email=None)
    subscription = stripe_client.v1.subscriptions.retrieve(completed.subscription)
    assert (subscription.test_clock, subscription.start_date, customer.created) == (clock.id, frozen, frozen)
    _, end = period(subscription)
    log = EventLog(stripe_client)

    advance(sandbox_url, 40 * DAY)  # the sandbox's clock does not move a test clock
    assert log.new() == []
    with pytest.raises(stripe.InvalidRequestError) as too_far:
        stripe_client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": frozen + 70 * DAY})
    assert "two intervals" in too_far.value.user_message
    answer = stripe_client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": frozen + 40 * DAY})

    assert answer.status == "advancing"
    assert stripe_client.v1.test_helpers.test_clocks.retrieve(clock.id).status == "ready"
    events = log.new()
    assert [event.type for event in events] == (
        ["test_helpers.test_clock.advancing", *RENEWAL_PAID, "test_helpers.test_clock.ready"]
    )
    assert [event.created for event in events] == [frozen] + [end] * len(RENEWAL_PAID) + [frozen + 40 * DAY]
    invoice = stripe_client.v1.invoices.retrieve(events[1].data.object.id)
    assert invoice.test_clock == clock.id
    assert [c.id for c in stripe_client.v1.test_helpers.test_clocks.list().data] == [clock.id]

    deleted = stripe_client.v1.test_helpers.test_clocks.delete(clock.id)

    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.retrieve(customer.id)

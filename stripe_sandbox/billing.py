"""A subscription's life after Checkout, as Stripe Billing lives it: renewals at each period end, failed payments
retried on a schedule, the end of a subscription (canceled now, at period end, or after the last failed retry), paying
an open invoice, refunds, and test clocks. Every step happens at its own time (the period end, the retry time ...),
and the objects and events it touches carry that time. All callers hold the store's lock.

A renewal (billing_reason `subscription_cycle`) emits, at the period end:
    invoice.created, invoice.finalized, payment_intent.created, then
    paid:   charge.succeeded, payment_intent.succeeded, invoice.paid, invoice.payment_succeeded,
    failed: charge.failed, payment_intent.payment_failed, invoice.payment_failed (open, next_payment_attempt set),
    and customer.subscription.updated (the new period on the items; `past_due` after a failure).
A retry: charge.*, payment_intent.*, then invoice.paid + invoice.payment_succeeded + customer.subscription.updated
(active), or invoice.payment_failed, and after the last one customer.subscription.deleted (or .updated to `unpaid`).
"""

import copy
import heapq

from stripe_sandbox import objects
from stripe_sandbox.amounts import amounts_off, money, per_interval
from stripe_sandbox.fulfillment import DAY, _Flow, add_interval, clock_time, create_payment_method
from stripe_sandbox.objects.payments import TEST_CARDS
from stripe_sandbox.store import Store, new_id
from stripe_sandbox.wire import StripeError, card_declined

# Subscriptions in these states have nothing more to do on their own.
ENDED = ("canceled", "incomplete", "incomplete_expired")


def now_for(store: Store, obj: dict | None) -> int:
    """The time an object lives on: its test clock's frozen time, else the sandbox's clock."""
    return clock_time(store, (obj or {}).get("test_clock"))


def invoice_subscription(invoice: dict) -> str | None:
    """The id of the subscription an invoice bills (in `parent` since API version 2025-03-31.basil)."""
    details = (invoice["parent"] or {}).get("subscription_details") or {}
    return details.get("subscription")


def period_end(subscription: dict) -> int:
    return min(item["current_period_end"] for item in subscription["items"]["data"])


def period_start(subscription: dict) -> int:
    return min(item["current_period_start"] for item in subscription["items"]["data"])


def _dunning(store: Store, subscription: dict) -> list[dict]:
    """The subscription's open invoices that still have a payment attempt planned, oldest first."""
    invoices = [store.find("invoice", id) for id in store.attached.get((subscription["id"], "invoices"), [])]
    return [
        invoice for invoice in invoices if invoice and invoice["status"] == "open" and invoice["next_payment_attempt"]
    ]


def next_step_at(store: Store, subscription: dict) -> int | None:
    """When the subscription next has something to do: a payment retry, or its period end (renew or end)."""
    if subscription["status"] in ENDED:
        return None
    times = [invoice["next_payment_attempt"] for invoice in _dunning(store, subscription)]
    times.append(period_end(subscription))
    return min(times)


def reschedule(store: Store, subscription: dict) -> None:
    at = next_step_at(store, subscription)
    if at is not None:
        store.schedule_billing(subscription, at)


def run_due(store: Store, clock: str | None, until: int) -> int:
    """Run, in time order, every step due on `clock` (None: the sandbox's own) up to `until`; how many ran."""
    queue = store.billing_due.get(clock)
    count = 0
    while queue and queue[0][0] <= until:
        at, _, subscription_id = heapq.heappop(queue)
        subscription = store.find("subscription", subscription_id)
        # A stale entry: the subscription has changed since (it has a newer entry if it still has steps).
        if subscription is None or next_step_at(store, subscription) != at:
            continue
        _step(store, subscription, at)
        count += 1
        reschedule(store, subscription)
    return count


def run_sandbox_clock(store: Store) -> int:
    """Steps that came due on the sandbox's clock (wall time plus the offset); cheap when none is."""
    queue = store.billing_due.get(None)
    if not queue or queue[0][0] > store.now():
        return 0
    return run_due(store, None, store.now())


def _step(store: Store, subscription: dict, at: int) -> None:
    for invoice in _dunning(store, subscription):
        if invoice["next_payment_attempt"] <= at and subscription["status"] not in ENDED:
            _retry(store, subscription, invoice, at)
    if subscription["status"] not in ENDED and period_end(subscription) <= at:
        if subscription["cancel_at_period_end"] or (subscription["cancel_at"] and subscription["cancel_at"] <= at):
            end_subscription(_Flow(store, at, None), subscription, reason="cancellation_requested")
        else:
            renew(store, subscription, at)


# Payment methods


def default_payment_method(store: Store, subscription: dict | None, customer: dict) -> dict | None:
    """What a renewal charges: the subscription's default payment method, else the customer's invoice default."""
    id = (subscription or {}).get("default_payment_method") or customer["invoice_settings"]["default_payment_method"]
    return store.find("payment_method", id) if id else None


def payment_method_for_customer(
    store: Store, id: str, customer: dict, *, now: int, param: str, flow: _Flow | None = None
) -> dict:
    """The payment method `id` for `customer`: a test token (`pm_card_visa` ...) makes a new one attached to the
    customer (emitting payment_method.attached through `flow`); an existing one must belong to the customer."""
    if id in TEST_CARDS:
        method = create_payment_method(
            store, now=now, test_card=id, customer=customer, email=customer["email"], name=customer["name"]
        )
        if flow is not None:
            flow.emit("payment_method.attached", method)
        return method
    method = store.get("payment_method", id, param=param, status=400)
    if method["customer"] != customer["id"]:
        raise StripeError(
            f"The payment method `{id}` does not belong to the customer `{customer['id']}`. Attach it to the "
            "customer first.",
            param=param,
        )
    return method


# Renewals


def _renewal_coupon(store: Store, subscription: dict, at: int, previous: dict):
    """The coupon that still discounts this renewal (forever; repeating until its end; once never), and its
    discount; a discount that no longer applies is taken off the subscription."""
    kept, found = [], None
    for discount_id in subscription["discounts"]:
        discount = store.find("discount", discount_id)
        coupon = store.find("coupon", discount["source"]["coupon"]) if discount else None
        if coupon is None:
            continue
        if coupon["duration"] == "forever" or (coupon["duration"] == "repeating" and discount["end"] > at):
            kept.append(discount_id)
            found = found or (coupon, discount)
    if kept != subscription["discounts"]:
        previous["discounts"] = list(subscription["discounts"])
        subscription["discounts"] = kept
    return found or (None, None)


def renew(store: Store, subscription: dict, at: int) -> None:
    """The period ending at `at` rolls over: bill the next one and charge it."""
    flow = _Flow(store, at, None)
    customer = store.get("customer", subscription["customer"])
    previous: dict = {"items": copy.deepcopy(subscription["items"]), "latest_invoice": subscription["latest_invoice"]}
    old_start = period_start(subscription)
    _start_next_periods(store, subscription)
    coupon, discount = _renewal_coupon(store, subscription, at, previous)

    invoice_id = new_id("in_", 24)
    lines = _renewal_lines(store, subscription, invoice_id=invoice_id, coupon=coupon, discount=discount)
    # Prorations a plan change left pending are billed with the renewal.
    lines += take_pending_invoice_items(store, subscription, invoice_id)
    invoice = store.add(
        objects.invoice(
            id=invoice_id,
            created=at,
            customer=customer,
            currency=subscription["currency"],
            lines=lines,
            discounts=[discount["id"]] if discount else [],
            subscription=subscription["id"],
            subscription_metadata=dict(subscription["metadata"]) or None,
            billing_reason="subscription_cycle",
            period_start=old_start,
            period_end=at,
        )
    )
    store.attached.setdefault((subscription["id"], "invoices"), []).append(invoice_id)
    subscription["latest_invoice"] = invoice_id
    flow.emit("invoice.created", invoice)
    flow.finalize_invoice(invoice, customer)

    status = subscription["status"]
    new_status = _collect_renewal(flow, subscription, invoice, customer)
    if new_status != status:
        previous["status"] = status
        subscription["status"] = new_status
    flow.emit("customer.subscription.updated", subscription, previous)


def _start_next_periods(store: Store, subscription: dict) -> None:
    """Each item's next period starts where its current one ends (on the stored item too, when it is a copy)."""
    for item in subscription["items"]["data"]:
        recurring = item["price"]["recurring"]
        start = item["current_period_end"]
        item["current_period_start"] = start
        item["current_period_end"] = add_interval(start, recurring["interval"], recurring["interval_count"])
        stored = store.find("subscription_item", item["id"])
        if stored is not None and stored is not item:
            stored.update(
                current_period_start=item["current_period_start"], current_period_end=item["current_period_end"]
            )


def _renewal_lines(
    store: Store, subscription: dict, *, invoice_id: str, coupon: dict | None, discount: dict | None
) -> list[dict]:
    """A line (stored) for each item's new period at its price, less the coupon's share."""
    items = subscription["items"]["data"]
    amounts = [item["price"]["unit_amount"] * item["quantity"] for item in items]
    discounted = amounts_off(coupon, amounts)
    lines = []
    for item, amount, off in zip(items, amounts, discounted, strict=True):
        price = item["price"]
        product = store.find("product", price["product"])
        name = product["name"] if product else price["id"]
        unit = f"{money(price['unit_amount'], price['currency'])} / {per_interval(price['recurring'])}"
        line = objects.invoice_line_item(
            id=new_id("il_", 24),
            invoice=invoice_id,
            price=price,
            description=f"{item['quantity']} × {name} (at {unit})",
            quantity=item["quantity"],
            amount=amount,
            discount_amounts=[{"amount": off, "discount": discount["id"]}] if discount else [],
            period_start=item["current_period_start"],
            period_end=item["current_period_end"],
            subscription=subscription["id"],
            subscription_item=item["id"],
            metadata=dict(subscription["metadata"]),
        )
        lines.append(store.add(line))
    return lines


def _collect_renewal(flow: _Flow, subscription: dict, invoice: dict, customer: dict) -> str:
    """Pay the finalized renewal invoice, or charge its payment method; the subscription's status after it."""
    status = subscription["status"]
    if invoice["amount_due"] == 0:
        flow.pay_invoice(invoice, None)
        return "active" if status == "trialing" else status
    if status == "unpaid":
        # Invoices go on being made for an unpaid subscription, but no payment is attempted.
        invoice.update(auto_advance=False)
        return status
    intent = flow.create_payment_intent(
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        customer=customer,
        description="Subscription update",
        save_payment_method=False,
    )
    flow.open_invoice_payment(invoice, intent)
    paid = attempt_payment(flow, invoice, default_payment_method(flow.store, subscription, customer))
    return "active" if paid else "past_due"


def invoice_item_line(invoice_item: dict, spec: dict, *, line_id: str, invoice_id: str | None) -> dict:
    """The invoice line of a pending invoice item (a proration; `spec` is what plan_changes kept with it)."""
    return objects.invoice_line_item(
        id=line_id,
        invoice=invoice_id,
        price=spec["price"],
        description=invoice_item["description"],
        quantity=invoice_item["quantity"],
        amount=invoice_item["amount"],
        discount_amounts=[],
        period_start=invoice_item["period"]["start"],
        period_end=invoice_item["period"]["end"],
        subscription=invoice_item["parent"]["subscription_details"]["subscription"],
        subscription_item=invoice_item["parent"]["subscription_details"]["subscription_item"],
        metadata=spec["metadata"],
        proration=invoice_item["proration"],
        invoice_item=invoice_item["id"],
        credited_items=spec["credited_items"],
    )


def take_pending_invoice_items(store: Store, subscription: dict, invoice_id: str) -> list[dict]:
    """The subscription's pending invoice items, now on invoice `invoice_id`: their lines (stored)."""
    lines = []
    for id in store.attached.pop((subscription["id"], "pending_invoice_items"), []):
        invoice_item = store.get("invoiceitem", id)
        invoice_item["invoice"] = invoice_id
        line = invoice_item_line(
            invoice_item, store.attached[id, "line"], line_id=new_id("il_", 24), invoice_id=invoice_id
        )
        lines.append(store.add(line))
    return lines


def attempt_payment(flow: _Flow, invoice: dict, payment_method: dict | None) -> bool:
    """Charge `invoice`'s PaymentIntent with `payment_method`; pays the invoice or records the failed attempt
    (attempt_count, next_payment_attempt on the retry schedule, invoice.payment_failed). Whether it was paid."""
    store = flow.store
    intent = store.get("payment_intent", store.attached[invoice["id"], "payment_intent"])
    if payment_method is not None:
        flow.confirm(intent, payment_method)
    else:
        # Nothing to charge: the attempt fails at once, without a charge.
        intent["last_payment_error"] = {
            "code": "payment_intent_payment_attempt_failed",
            "message": "The customer has no default payment method.",
            "type": "invalid_request_error",
        }
        flow.emit("payment_intent.payment_failed", intent)
    invoice.update(attempted=True, attempt_count=invoice["attempt_count"] + 1)
    if intent["status"] == "succeeded":
        flow.pay_invoice(invoice, None)
        return True
    first_failure = store.attached.setdefault((invoice["id"], "first_failed_at"), flow.now)
    retries_done = store.attached.get((invoice["id"], "retries_done"), 0)
    retry_days = store.billing.retry_days
    planned = retry_days[retries_done] if retries_done < len(retry_days) else None
    invoice["next_payment_attempt"] = first_failure + planned * DAY if planned is not None else None
    flow.emit("invoice.payment_failed", invoice)
    return False


def _retry(store: Store, subscription: dict, invoice: dict, at: int) -> None:
    """A planned retry of a failed renewal invoice."""
    flow = _Flow(store, at, None)
    customer = store.get("customer", subscription["customer"])
    store.attached[invoice["id"], "retries_done"] = store.attached.get((invoice["id"], "retries_done"), 0) + 1
    if attempt_payment(flow, invoice, default_payment_method(store, subscription, customer)):
        _recovered(flow, subscription)
    elif invoice["next_payment_attempt"] is None:
        _retries_exhausted(flow, subscription)


def _recovered(flow: _Flow, subscription: dict) -> None:
    """An invoice got paid: a past-due or unpaid subscription with nothing else overdue is active again."""
    if subscription["status"] not in ("past_due", "unpaid"):
        return
    overdue = [
        id
        for id in flow.store.attached.get((subscription["id"], "invoices"), [])
        if flow.store.get("invoice", id)["status"] == "open"
    ]
    if overdue:
        return
    previous = {"status": subscription["status"]}
    subscription["status"] = "active"
    flow.emit("customer.subscription.updated", subscription, previous)


def _retries_exhausted(flow: _Flow, subscription: dict) -> None:
    if flow.store.billing.after_last_retry == "unpaid":
        previous = {"status": subscription["status"]}
        subscription["status"] = "unpaid"
        flow.emit("customer.subscription.updated", subscription, previous)
    else:
        end_subscription(flow, subscription, reason="payment_failed")


def end_subscription(
    flow: _Flow, subscription: dict, *, reason: str, comment: str | None = None, feedback: str | None = None
) -> None:
    """Cancel now: customer.subscription.deleted; its open invoices are no longer retried."""
    subscription.update(status="canceled", ended_at=flow.now, canceled_at=subscription["canceled_at"] or flow.now)
    details = subscription["cancellation_details"]
    details["reason"] = reason
    if comment is not None:
        details["comment"] = comment
    if feedback is not None:
        details["feedback"] = feedback
    for invoice in _dunning(flow.store, subscription):
        invoice["next_payment_attempt"] = None
    flow.emit("customer.subscription.deleted", subscription)


# Paying an open invoice now (API or hosted invoice page)


def pay_invoice_now(store: Store, invoice: dict, *, payment_method_id: str | None, request: dict | None) -> dict:
    """`POST /v1/invoices/{id}/pay`: charge an open invoice now; success ends the dunning, a decline is a 402."""
    if invoice["status"] == "paid":
        raise StripeError("Invoice is already paid.")
    if invoice["status"] != "open":
        raise StripeError(f"You can only pay an invoice that is open; this one is {invoice['status']}.")
    customer = store.get("customer", invoice["customer"])
    flow = _Flow(store, now_for(store, invoice), request)
    subscription = store.find("subscription", invoice_subscription(invoice) or "")
    if payment_method_id is not None:
        method = payment_method_for_customer(
            store, payment_method_id, customer, now=flow.now, param="payment_method", flow=flow
        )
    else:
        method = default_payment_method(store, subscription, customer)
        if method is None:
            raise StripeError(
                "The customer has no default payment method: pass payment_method, or set the customer's "
                "invoice_settings[default_payment_method].",
                param="payment_method",
            )
    if (invoice["id"], "payment_intent") not in store.attached:
        intent = flow.create_payment_intent(
            amount=invoice["amount_remaining"],
            currency=invoice["currency"],
            customer=customer,
            description="Payment for Invoice",
            save_payment_method=False,
        )
        flow.open_invoice_payment(invoice, intent)
    # A payment by hand does not move the retry schedule; only a success ends it.
    planned = invoice["next_payment_attempt"]
    if attempt_payment(flow, invoice, method):
        if subscription is not None:
            _recovered(flow, subscription)
            reschedule(store, subscription)
        return invoice
    invoice["next_payment_attempt"] = planned
    intent = store.get("payment_intent", store.attached[invoice["id"], "payment_intent"])
    raise card_declined(charge=intent["latest_charge"], payment_intent=copy.deepcopy(intent))


# Refunds


def refund_charge(
    store: Store, charge: dict, *, amount: int | None, reason: str | None, metadata: dict, request: dict | None
) -> dict:
    if charge["status"] != "succeeded":
        raise StripeError(f"Charge {charge['id']} has not succeeded: there is nothing to refund.", param="charge")
    left = charge["amount_captured"] - charge["amount_refunded"]
    if left <= 0:
        raise StripeError(
            f"Charge {charge['id']} has already been refunded.", param="charge", code="charge_already_refunded"
        )
    if amount is None:
        amount = left
    if amount > left:
        raise StripeError(
            f"Refund amount ({money(amount, charge['currency'])}) is greater than unrefunded amount on charge "
            f"({money(left, charge['currency'])})",
            param="amount",
        )
    flow = _Flow(store, now_for(store, store.find("customer", charge["customer"] or "")), request)
    refund = store.add(
        objects.refund(
            id=new_id("re_", 24), created=flow.now, charge=charge, amount=amount, reason=reason, metadata=metadata
        )
    )
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    refunds = charge["refunds"]
    refunds["data"].insert(0, refund)
    previous = {key: value for key, value in previous.items() if charge[key] != value}
    flow.emit("charge.refunded", charge, previous)
    flow.emit("refund.created", refund)
    return refund


# Test clocks


def clock_customers(store: Store, clock_id: str) -> list[dict]:
    return [customer for customer in store.newest_first("customer") if customer["test_clock"] == clock_id]


def clock_subscriptions(store: Store, clock_id: str) -> list[dict]:
    return [sub for sub in store.newest_first("subscription") if sub["test_clock"] == clock_id]


def advance_limit(store: Store, clock: dict) -> int | None:
    """How far a clock may jump at once: two intervals of its shortest live subscription (None: no limit)."""
    limits = []
    for subscription in clock_subscriptions(store, clock["id"]):
        if subscription["status"] in ENDED:
            continue
        for item in subscription["items"]["data"]:
            recurring = item["price"]["recurring"]
            limits.append(add_interval(clock["frozen_time"], recurring["interval"], 2 * recurring["interval_count"]))
    return min(limits) if limits else None


def advance_clock(store: Store, clock: dict, frozen_time: int, request: dict | None) -> dict:
    """Move a test clock on, running every step of its subscriptions in time order; answers the clock as Stripe
    does (`advancing`), though it is `ready` again by the time anyone can ask."""
    if frozen_time <= clock["frozen_time"]:
        raise StripeError(
            f"The frozen_time must be after the test clock's current frozen_time ({clock['frozen_time']}).",
            param="frozen_time",
        )
    limit = advance_limit(store, clock)
    if limit is not None and frozen_time > limit:
        raise StripeError(
            "Cannot advance the test clock more than two intervals of the shortest subscription interval on it; "
            f"the furthest frozen_time allowed now is {limit}.",
            param="frozen_time",
        )
    start = clock["frozen_time"]
    clock.update(status="advancing", frozen_time=frozen_time)
    store.emit("test_helpers.test_clock.advancing", clock, request=request, created=start)
    answer = copy.deepcopy(clock)
    run_due(store, clock["id"], frozen_time)
    clock["status"] = "ready"
    store.emit("test_helpers.test_clock.ready", clock, created=frozen_time)
    return answer


def delete_clock(store: Store, clock: dict) -> None:
    """Deleting a test clock deletes its customers and everything of theirs that lives on the clock."""
    clock_id = clock["id"]
    for subscription in clock_subscriptions(store, clock_id):
        for item in subscription["items"]["data"]:
            if store.find("subscription_item", item["id"]) is not None:
                store.remove("subscription_item", item["id"])
        store.remove("subscription", subscription["id"])
    for invoice in list(store.newest_first("invoice")):
        if invoice["test_clock"] == clock_id:
            store.remove("invoice", invoice["id"])
    for customer in clock_customers(store, clock_id):
        store.remove("customer", customer["id"])
    store.billing_due.pop(clock_id, None)
    store.remove("test_helpers.test_clock", clock_id)


# What a customer does in the billing portal


def cancel_at_period_end(flow: _Flow, subscription: dict, cancel: bool) -> None:
    """Cancel at period end (or undo it), as `POST /v1/subscriptions/{id}` with `cancel_at_period_end` does:
    customer.subscription.updated with what changed."""
    if subscription["cancel_at_period_end"] == cancel or subscription["status"] in ENDED:
        return
    details = subscription["cancellation_details"]
    previous = {
        "cancel_at": subscription["cancel_at"],
        "cancel_at_period_end": subscription["cancel_at_period_end"],
        "canceled_at": subscription["canceled_at"],
        "cancellation_details": dict(details),
    }
    subscription.update(
        cancel_at_period_end=cancel,
        cancel_at=period_end(subscription) if cancel else None,
        canceled_at=(subscription["canceled_at"] or flow.now) if cancel else None,
    )
    details["reason"] = "cancellation_requested" if cancel else None
    flow.emit("customer.subscription.updated", subscription, previous)


def replace_default_card(flow: _Flow, customer: dict, test_card: str) -> dict:
    """A new card from a test token becomes the customer's invoice default and each live subscription's default:
    payment_method.attached, customer.updated, customer.subscription.updated (one per subscription)."""
    store = flow.store
    method = payment_method_for_customer(store, test_card, customer, now=flow.now, param="payment_method", flow=flow)
    settings = customer["invoice_settings"]
    previous = {"invoice_settings": {"default_payment_method": settings["default_payment_method"]}}
    settings["default_payment_method"] = method["id"]
    flow.emit("customer.updated", customer, previous)
    for subscription in reversed(store.newest_first("subscription")):
        if subscription["customer"] != customer["id"] or subscription["status"] in ENDED:
            continue
        previous = {"default_payment_method": subscription["default_payment_method"]}
        subscription["default_payment_method"] = method["id"]
        flow.emit("customer.subscription.updated", subscription, previous)
    return method

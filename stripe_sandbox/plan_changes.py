"""Changing what a subscription bills (`POST /v1/subscriptions/{id}` with `items`) and previewing what a change would
invoice (`POST /v1/invoices/create_preview`), prorated by the second as Stripe prorates:

- the old price's unused time is credited and the new price's remaining time charged, each
  round(amount × seconds left in the period / seconds in the period), from the proration date (default now);
- `create_prorations` (default): the prorations become pending invoice items that the next renewal invoices;
  `always_invoice`: they are invoiced and charged at once (billing_reason `subscription_update`); `none`: no prorations;
- a change of interval (monthly → yearly) restarts the billing cycle now: the old price's unused time is credited
  (not with `none`) and the new price's whole first period is invoiced and charged at once, whatever the behaviour.

An immediate invoice emits what a renewal emits (invoice.created, invoice.finalized, the payment's events, then
invoice.paid + invoice.payment_succeeded or invoice.payment_failed); the caller then emits
customer.subscription.updated. With `payment_behavior=error_if_incomplete` a payment that would fail is a 402 and
nothing changes; with `default_incomplete` the invoice is left open, unpaid and not retried, and the subscription is
past due until it is paid (`POST /v1/invoices/{id}/pay`). Prorations are never discounted (Stripe: "always false
for prorations"). All callers hold the store's lock.
"""

import copy
from dataclasses import dataclass
from datetime import UTC, datetime

from stripe_sandbox import billing, objects
from stripe_sandbox.amounts import amounts_off, money, per_interval
from stripe_sandbox.fulfillment import _Flow, add_interval, declines
from stripe_sandbox.resources.products import INTERVAL_MAX_COUNT
from stripe_sandbox.store import Store, new_id
from stripe_sandbox.wire import Params, StripeError, card_declined

PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")


@dataclass
class RequestedItem:
    """One entry of `items` (or `subscription_details[items]`), read and checked but not yet resolved."""

    param: str  # e.g. `items[0]`
    id: str | None
    price: str | None
    price_data: dict | None  # currency, product, unit_amount, interval, interval_count
    quantity: int | None


@dataclass
class ItemChange:
    item: dict  # the subscription item, as the subscription holds it
    price: dict  # the price it bills from now on
    quantity: int
    new_price: bool  # `price` comes from price_data and is stored only when the change is made

    @property
    def changed(self) -> bool:
        return self.price["id"] != self.item["price"]["id"] or self.quantity != self.item["quantity"]

    @property
    def new_interval(self) -> bool:
        old, new = self.item["price"]["recurring"], self.price["recurring"]
        return (old["interval"], old["interval_count"]) != (new["interval"], new["interval_count"])


@dataclass
class LineSpec:
    """An invoice line to be: a proration or a new period's charge."""

    item: dict
    price: dict
    quantity: int
    amount: int
    description: str
    start: int
    end: int
    proration: bool
    credited_items: dict | None = None


@dataclass
class ChangePlan:
    changes: list[ItemChange]
    at: int  # the proration date
    behavior: str
    reset_cycle: bool  # the interval changes: a new billing cycle starts at `at`
    prorations: list[LineSpec]
    new_periods: list[LineSpec]  # when the cycle restarts: each item's first period at its new price
    # default_incomplete: an invoice made now is left open for the caller to pay (its payment is not attempted).
    attempt_payment: bool = True

    @property
    def invoice_now(self) -> bool:
        return self.reset_cycle or (self.behavior == "always_invoice" and bool(self.prorations))


def read_items(params: Params, key: str) -> list[RequestedItem]:
    requested = []
    for item in params.hashes(key):
        id = item.string("id")
        price = item.string("price")
        quantity = item.integer("quantity", minimum=1)
        if item.boolean("deleted"):
            raise StripeError(
                "The Stripe sandbox does not delete subscription items: change the item's price instead.",
                param=item.name("deleted"),
            )
        data = item.hash("price_data")
        price_data = None
        if data is not None:
            currency = data.currency("currency", required=True)
            product = data.string("product", required=True)
            unit_amount = data.integer("unit_amount", required=True, minimum=0)
            data.string("tax_behavior", choices=("exclusive", "inclusive", "unspecified"))
            recurring = data.hash("recurring", required=True)
            interval = recurring.string("interval", required=True, choices=tuple(INTERVAL_MAX_COUNT))
            interval_count = recurring.integer("interval_count", minimum=1) or 1
            if interval_count > INTERVAL_MAX_COUNT[interval]:
                raise StripeError(
                    "The maximum recurring interval is 3 years (3 years, 36 months, 156 weeks or 1095 days).",
                    param=recurring.name("interval_count"),
                )
            price_data = {
                "currency": currency,
                "product": product,
                "unit_amount": unit_amount,
                "interval": interval,
                "interval_count": interval_count,
                "param": data.prefix,
            }
        if price is not None and price_data is not None:
            raise StripeError(
                "You may only specify one of these parameters: price, price_data.", param=item.name("price")
            )
        requested.append(RequestedItem(item.prefix, id, price, price_data, quantity))
    return requested


def resolve(store: Store, subscription: dict, requested: list[RequestedItem], *, now: int) -> list[ItemChange]:
    """What each requested item becomes; raises before anything is stored."""
    items = {item["id"]: item for item in subscription["items"]["data"]}
    changes: list[ItemChange] = []
    for entry in requested:
        if entry.id is None:
            raise StripeError(
                f"The Stripe sandbox changes existing subscription items only: pass {entry.param}[id] (adding items "
                "is not implemented).",
                param=f"{entry.param}[id]",
            )
        item = items.get(entry.id)
        if item is None:
            raise StripeError(
                f"Invalid subscription_item: {entry.id} is not an item of subscription {subscription['id']}.",
                param=f"{entry.param}[id]",
                code="resource_missing",
            )
        if any(change.item is item for change in changes):
            raise StripeError(f"The subscription item {entry.id} is given twice.", param=f"{entry.param}[id]")
        new_price = False
        if entry.price is not None:
            price = store.get("price", entry.price, param=f"{entry.param}[price]", status=400)
            if price["recurring"] is None:
                raise StripeError(
                    f"The price specified ({price['id']}) is set to `type=one_time` but this field only accepts "
                    "prices with `type=recurring`.",
                    param=f"{entry.param}[price]",
                )
        elif entry.price_data is not None:
            data = entry.price_data
            store.get("product", data["product"], param=f"{data['param']}[product]", status=400)
            # Stripe stores a price made inline from price_data as inactive, as Checkout's.
            price = objects.price(
                id=new_id("price_", 24),
                created=now,
                product=data["product"],
                currency=data["currency"],
                unit_amount=data["unit_amount"],
                interval=data["interval"],
                interval_count=data["interval_count"],
                active=False,
                nickname=None,
                lookup_key=None,
                metadata={},
            )
            new_price = True
        else:
            price = item["price"]
        if price["currency"] != subscription["currency"]:
            raise StripeError(
                f"The price's currency ({price['currency']}) must match the subscription's currency "
                f"({subscription['currency']}).",
                param=f"{entry.param}[price]",
            )
        quantity = entry.quantity if entry.quantity is not None else item["quantity"]
        changes.append(ItemChange(item, price, quantity, new_price))
    return changes


def _prorate(amount: int, left: int, length: int) -> int:
    """`amount` × left / length, rounded half away from zero in integer arithmetic."""
    sign = -1 if amount < 0 else 1
    return sign * ((2 * abs(amount) * left + length) // (2 * length))


def _date(timestamp: int) -> str:
    day = datetime.fromtimestamp(timestamp, UTC)
    return f"{day.day} {day:%b %Y}"


def _product_name(store: Store, price: dict) -> str:
    product = store.find("product", price["product"])
    return product["name"] if product else price["id"]


def period_description(store: Store, price: dict, quantity: int) -> str:
    unit = f"{money(price['unit_amount'], price['currency'])} / {per_interval(price['recurring'])}"
    return f"{quantity} × {_product_name(store, price)} (at {unit})"


def _credited_items(store: Store, subscription: dict, item: dict) -> dict | None:
    """The invoice and lines that billed `item`'s current period: what a credit proration credits."""
    for invoice_id in reversed(store.attached.get((subscription["id"], "invoices"), [])):
        invoice = store.find("invoice", invoice_id)
        if invoice is None:
            continue
        lines = [
            line["id"]
            for line in invoice["lines"]["data"]
            if (line["parent"]["subscription_item_details"] or {}).get("subscription_item") == item["id"]
            and not line["parent"]["subscription_item_details"]["proration"]
        ]
        if lines:
            return {"invoice": invoice_id, "invoice_line_items": lines}
    return None


def plan_change(
    store: Store, subscription: dict, changes: list[ItemChange], *, at: int, behavior: str, param: str
) -> ChangePlan:
    """The prorations and new periods `changes` make at `at` (raises if `at` is outside the current period)."""
    start, end = billing.period_start(subscription), billing.period_end(subscription)
    if not start <= at < end:
        raise StripeError(
            f"The proration date must be within the subscription's current period ({start} to {end}).", param=param
        )
    reset = any(change.new_interval for change in changes)
    # A trial's period costs nothing, so there is nothing to prorate; the cycle is not restarted either.
    trialing = subscription["status"] == "trialing"
    reset = reset and not trialing
    prorations: list[LineSpec] = []
    new_periods: list[LineSpec] = []
    if reset:
        # Every item starts a new period now, changed or not.
        by_item = {change.item["id"]: change for change in changes}
        changes = [
            by_item.get(item["id"]) or ItemChange(item, item["price"], item["quantity"], False)
            for item in subscription["items"]["data"]
        ]
    for change in changes:
        if not (change.changed or reset) or trialing:
            continue
        if behavior != "none":
            credit = _unused_time(store, subscription, change.item, at=at)
            if credit is not None:
                prorations.append(credit)
        if reset:
            new_periods.append(_new_period(store, change, at=at))
        elif behavior != "none":
            charge = _remaining_time(store, change, at=at)
            if charge is not None:
                prorations.append(charge)
    return ChangePlan(changes, at, behavior, reset, prorations, new_periods)


def _unused_time(store: Store, subscription: dict, item: dict, *, at: int) -> LineSpec | None:
    """The credit for the old price's time left in the item's period after `at` (None when it rounds to 0)."""
    old_price, item_start, item_end = item["price"], item["current_period_start"], item["current_period_end"]
    credit = -_prorate(old_price["unit_amount"] * item["quantity"], item_end - at, item_end - item_start)
    if not credit:
        return None
    return LineSpec(
        item=item,
        price=old_price,
        quantity=item["quantity"],
        amount=credit,
        description=f"Unused time on {_product_name(store, old_price)} after {_date(at)}",
        start=at,
        end=item_end,
        proration=True,
        credited_items=_credited_items(store, subscription, item),
    )


def _remaining_time(store: Store, change: ItemChange, *, at: int) -> LineSpec | None:
    """The charge for the new price's time left in the item's period after `at` (None when it rounds to 0)."""
    item_start, item_end = change.item["current_period_start"], change.item["current_period_end"]
    charge = _prorate(change.price["unit_amount"] * change.quantity, item_end - at, item_end - item_start)
    if not charge:
        return None
    return LineSpec(
        item=change.item,
        price=change.price,
        quantity=change.quantity,
        amount=charge,
        description=f"Remaining time on {_product_name(store, change.price)} after {_date(at)}",
        start=at,
        end=item_end,
        proration=True,
    )


def _new_period(store: Store, change: ItemChange, *, at: int) -> LineSpec:
    """The item's whole first period at its new price, from `at` (the billing cycle restarts)."""
    recurring = change.price["recurring"]
    return LineSpec(
        item=change.item,
        price=change.price,
        quantity=change.quantity,
        amount=change.price["unit_amount"] * change.quantity,
        description=period_description(store, change.price, change.quantity),
        start=at,
        end=add_interval(at, recurring["interval"], recurring["interval_count"]),
        proration=False,
    )


def _line(
    spec: LineSpec,
    *,
    id: str,
    invoice: str | None,
    subscription: dict,
    invoice_item: str | None,
    discount_amounts: list[dict] | None = None,
) -> dict:
    return objects.invoice_line_item(
        id=id,
        invoice=invoice,
        price=spec.price,
        description=spec.description,
        quantity=spec.quantity,
        amount=spec.amount,
        discount_amounts=discount_amounts or [],
        period_start=spec.start,
        period_end=spec.end,
        subscription=subscription["id"],
        subscription_item=spec.item["id"],
        metadata=dict(subscription["metadata"]),
        proration=spec.proration,
        invoice_item=invoice_item,
        credited_items=spec.credited_items,
    )


def _discounted(store: Store, subscription: dict, specs: list[LineSpec], at: int) -> tuple[list[list[dict]], list]:
    """The discount amounts of each (full price) line at `at` from the subscription's coupon, and the discount ids
    the invoice shows."""
    coupon = discount = None
    for discount_id in subscription["discounts"]:
        found = store.find("discount", discount_id)
        candidate = store.find("coupon", found["source"]["coupon"]) if found else None
        if candidate is None:
            continue
        if candidate["duration"] == "forever" or (candidate["duration"] == "repeating" and found["end"] > at):
            coupon, discount = candidate, found
            break
    offs = amounts_off(coupon, [spec.amount for spec in specs])
    amounts = [[{"amount": off, "discount": discount["id"]}] if discount else [] for off in offs]
    return amounts, [discount["id"]] if discount else []


# Making the change


def check_payment(store: Store, subscription: dict, plan: ChangePlan) -> None:
    """`error_if_incomplete`: what would be charged now must be payable, else a 402 and nothing changes."""
    if not plan.invoice_now:
        return
    customer = store.get("customer", subscription["customer"])
    pending = _pending_items(store, subscription)
    specs = plan.prorations + plan.new_periods
    offs, _ = _discounted(store, subscription, plan.new_periods, plan.at)
    total = sum(item["amount"] for item in pending) + sum(spec.amount for spec in specs)
    total -= sum(entry["amount"] for entries in offs for entry in entries)
    due = max(0, total + customer["balance"])
    if not due:
        return
    method = billing.default_payment_method(store, subscription, customer)
    if method is None:
        raise StripeError(
            "This customer has no attached payment source or default payment method. Please consider adding a "
            "default payment method.",
            status=400,
        )
    if declines(store, method):
        raise card_declined()


def _pending_items(store: Store, subscription: dict) -> list[dict]:
    ids = store.attached.get((subscription["id"], "pending_invoice_items"), [])
    return [store.get("invoiceitem", id) for id in ids]


def apply_change(flow: _Flow, subscription: dict, plan: ChangePlan, previous: dict) -> None:
    """Make the change: new prices on the items, the prorations (pending, or invoiced and charged now with the new
    periods). Fills `previous` for the customer.subscription.updated the caller emits."""
    store = flow.store
    if not any(change.changed for change in plan.changes) and not plan.reset_cycle:
        return
    previous["items"] = copy.deepcopy(subscription["items"])
    for change in plan.changes:
        if change.new_price:
            store.add(change.price)
        fields = {"price": dict(change.price), "plan": objects.plan(change.price), "quantity": change.quantity}
        if plan.reset_cycle:
            recurring = change.price["recurring"]
            fields.update(
                current_period_start=plan.at,
                current_period_end=add_interval(plan.at, recurring["interval"], recurring["interval_count"]),
            )
        change.item.update(fields)
        stored = store.find("subscription_item", change.item["id"])
        if stored is not None and stored is not change.item:
            stored.update(copy.deepcopy(fields))
    if plan.reset_cycle:
        previous["billing_cycle_anchor"] = subscription["billing_cycle_anchor"]
        subscription["billing_cycle_anchor"] = plan.at
        if subscription["cancel_at_period_end"]:
            previous["cancel_at"] = subscription["cancel_at"]
            subscription["cancel_at"] = billing.period_end(subscription)

    customer = store.get("customer", subscription["customer"])
    invoice_id = new_id("in_", 24) if plan.invoice_now else None
    for spec in plan.prorations:
        invoice_item = store.add(
            objects.invoice_item(
                id=new_id("ii_", 24),
                created=flow.now,
                customer=customer,
                price=spec.price,
                amount=spec.amount,
                quantity=spec.quantity,
                description=spec.description,
                period_start=spec.start,
                period_end=spec.end,
                subscription=subscription["id"],
                subscription_item=spec.item["id"],
                proration=True,
                invoice=None,
            )
        )
        store.attached[invoice_item["id"], "line"] = {
            "price": spec.price,
            "subscription_item": spec.item["id"],
            "credited_items": spec.credited_items,
            "metadata": dict(subscription["metadata"]),
        }
        store.attached.setdefault((subscription["id"], "pending_invoice_items"), []).append(invoice_item["id"])
        flow.emit("invoiceitem.created", invoice_item)
    if invoice_id is not None:
        _invoice_now(flow, subscription, customer, plan, invoice_id, previous)
    billing.reschedule(store, subscription)


def _invoice_now(
    flow: _Flow, subscription: dict, customer: dict, plan: ChangePlan, invoice_id: str, previous: dict
) -> None:
    """Invoice the pending items (the prorations among them) and any new periods now, and charge the invoice."""
    store = flow.store
    lines = billing.take_pending_invoice_items(store, subscription, invoice_id)
    offs, discounts = _discounted(store, subscription, plan.new_periods, plan.at)
    for spec, discount_amounts in zip(plan.new_periods, offs, strict=True):
        lines.append(
            store.add(
                _line(
                    spec,
                    id=new_id("il_", 24),
                    invoice=invoice_id,
                    subscription=subscription,
                    invoice_item=None,
                    discount_amounts=discount_amounts,
                )
            )
        )
    invoice = store.add(
        objects.invoice(
            id=invoice_id,
            created=flow.now,
            customer=customer,
            currency=subscription["currency"],
            lines=lines,
            discounts=discounts,
            subscription=subscription["id"],
            subscription_metadata=dict(subscription["metadata"]) or None,
            billing_reason="subscription_update",
            period_start=flow.now,
            period_end=flow.now,
        )
    )
    store.attached.setdefault((subscription["id"], "invoices"), []).append(invoice_id)
    previous["latest_invoice"] = subscription["latest_invoice"]
    subscription["latest_invoice"] = invoice_id
    flow.emit("invoice.created", invoice)
    flow.finalize_invoice(invoice, customer)
    if invoice["amount_due"] == 0:
        flow.pay_invoice(invoice, None)
        return
    intent = flow.create_payment_intent(
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        customer=customer,
        description="Subscription update",
        save_payment_method=False,
    )
    flow.open_invoice_payment(invoice, intent)
    paid = plan.attempt_payment and billing.attempt_payment(
        flow, invoice, billing.default_payment_method(store, subscription, customer)
    )
    if not paid and subscription["status"] in ("active", "trialing"):
        # allow_incomplete: the change stands and the subscription is past due until the invoice is paid.
        previous["status"] = subscription["status"]
        subscription["status"] = "past_due"


# Previews


def preview(store: Store, subscription: dict, plan: ChangePlan | None) -> dict:
    """The invoice a change would make now (when it invoices at once), else the next renewal's invoice with the
    change and its prorations in it; an invoice with no id, as Stripe answers a preview."""
    customer = store.get("customer", subscription["customer"])
    lines = [
        billing.invoice_item_line(
            item, store.attached[item["id"], "line"], line_id=new_id("il_tmp_", 24), invoice_id=None
        )
        for item in _pending_items(store, subscription)
    ]
    if plan is not None and plan.invoice_now:
        specs, full = plan.prorations, plan.new_periods
        at, billing_reason, period = plan.at, "subscription_update", (plan.at, plan.at)
    else:
        if subscription["cancel_at_period_end"] or subscription["status"] in billing.ENDED:
            raise StripeError(
                f"No upcoming invoices for customer: {customer['id']}", status=404, code="invoice_upcoming_none"
            )
        specs = plan.prorations if plan is not None else []
        full = _next_periods(store, subscription, plan)
        at, billing_reason = billing.period_end(subscription), "upcoming"
        period = (billing.period_start(subscription), at)
    for spec in specs:
        lines.append(_line(spec, id=new_id("il_tmp_", 24), invoice=None, subscription=subscription, invoice_item=None))
    offs, discounts = _discounted(store, subscription, full, at)
    for spec, discount_amounts in zip(full, offs, strict=True):
        lines.append(
            _line(
                spec,
                id=new_id("il_tmp_", 24),
                invoice=None,
                subscription=subscription,
                invoice_item=None,
                discount_amounts=discount_amounts,
            )
        )
    invoice = objects.invoice(
        id="",
        created=at,
        customer=customer,
        currency=subscription["currency"],
        lines=lines,
        discounts=discounts,
        subscription=subscription["id"],
        subscription_metadata=dict(subscription["metadata"]) or None,
        billing_reason=billing_reason,
        period_start=period[0],
        period_end=period[1],
    )
    return _as_preview(invoice, customer, at=at)


def _next_periods(store: Store, subscription: dict, plan: ChangePlan | None) -> list[LineSpec]:
    """Each item's next period, at the price and quantity `plan` gives it (else its own)."""
    changes = {change.item["id"]: change for change in plan.changes} if plan is not None else {}
    periods = []
    for item in subscription["items"]["data"]:
        change = changes.get(item["id"])
        price = change.price if change else item["price"]
        quantity = change.quantity if change else item["quantity"]
        recurring = price["recurring"]
        periods.append(
            LineSpec(
                item=item,
                price=price,
                quantity=quantity,
                amount=price["unit_amount"] * quantity,
                description=period_description(store, price, quantity),
                start=item["current_period_end"],
                end=add_interval(item["current_period_end"], recurring["interval"], recurring["interval_count"]),
                proration=False,
            )
        )
    return periods


def _as_preview(invoice: dict, customer: dict, *, at: int) -> dict:
    """A draft invoice as a preview shows it: no id, and the customer's balance applied as finalizing would."""
    del invoice["id"]
    invoice["lines"]["url"] = "/v1/invoices/upcoming/lines"
    balance = customer["balance"]
    due = max(0, invoice["total"] + balance)
    invoice.update(
        amount_due=due,
        amount_remaining=due,
        starting_balance=balance,
        ending_balance=invoice["total"] + balance - due,
        next_payment_attempt=at if due else None,
    )
    return invoice

"""Stripe's `expand[]`: ids replaced by the objects they name, and fields that Stripe only includes on request."""

import copy
from collections.abc import Callable
from dataclasses import dataclass

from stripe_sandbox import objects
from stripe_sandbox.wire import StripeError

MAX_DEPTH = 4
LINE_ITEMS_INCLUDED = 10


@dataclass(frozen=True)
class Ref:
    """A field holding the id of an object of `object_type`."""

    object_type: str


@dataclass(frozen=True)
class RefList:
    """A field holding a list of ids of objects of `object_type` (discounts)."""

    object_type: str


@dataclass(frozen=True)
class Include:
    """A field absent unless expanded; `build(store, owner)` makes its value from the object that owns it."""

    build: Callable


def _session_line_items(store, session):
    items = store.attached[session["id"], "line_items"]
    url = f"/v1/checkout/sessions/{session['id']}/line_items"
    return objects.list_object(items[:LINE_ITEMS_INCLUDED], url=url, has_more=len(items) > LINE_ITEMS_INCLUDED)


def _session_breakdown(store, session):
    discount = store.attached[session["id"], "discount"]
    amount = session["total_details"]["amount_discount"]
    return {"discounts": [{"amount": amount, "discount": discount}] if discount else [], "taxes": []}


def _item_discounts(store, item):
    discount = store.attached[item["id"], "discount"]
    return [{"amount": item["amount_discount"], "discount": discount}] if discount else []


def _price_currency_options(store, price):
    return {
        price["currency"]: {
            "custom_unit_amount": None,
            "tax_behavior": price["tax_behavior"],
            "unit_amount": price["unit_amount"],
            "unit_amount_decimal": price["unit_amount_decimal"],
        }
    }


def _invoice_payments(store, invoice):
    payments = [entry for entry in store.newest_first("invoice_payment") if entry["invoice"] == invoice["id"]]
    return objects.list_object(payments, url=f"/v1/invoice_payments?invoice={invoice['id']}", has_more=False)


def _customer_sources(store, customer):
    return objects.list_object([], url=f"/v1/customers/{customer['id']}/sources", has_more=False)


# Per object type, what `expand` can fill in; a dotted key names a field inside one of the object's hashes.
# Includes the expansions dj-stripe asks for when it re-reads these objects.
EXPANDABLE = {
    "checkout.session": {
        "customer": Ref("customer"),
        "invoice": Ref("invoice"),
        "payment_intent": Ref("payment_intent"),
        "setup_intent": Ref("setup_intent"),
        "subscription": Ref("subscription"),
        "line_items": Include(_session_line_items),
        "total_details.breakdown": Include(_session_breakdown),
    },
    "item": {"discounts": Include(_item_discounts)},
    "price": {
        "product": Ref("product"),
        "currency_options": Include(_price_currency_options),
        "tiers": Include(lambda store, price: None),
    },
    "customer": {
        "default_source": Ref("source"),
        "invoice_settings.default_payment_method": Ref("payment_method"),
        "sources": Include(_customer_sources),
        "test_clock": Ref("test_helpers.test_clock"),
    },
    "coupon": {"applies_to": Include(lambda store, coupon: {"products": []})},
    "discount": {"customer": Ref("customer")},
    "subscription": {
        "customer": Ref("customer"),
        "default_payment_method": Ref("payment_method"),
        "default_source": Ref("source"),
        "discounts": RefList("discount"),
        "latest_invoice": Ref("invoice"),
        "pending_setup_intent": Ref("setup_intent"),
        "schedule": Ref("subscription_schedule"),
        "test_clock": Ref("test_helpers.test_clock"),
    },
    "subscription_item": {"discounts": RefList("discount")},
    "invoice": {
        "customer": Ref("customer"),
        "default_payment_method": Ref("payment_method"),
        "discounts": RefList("discount"),
        "parent.subscription_details.subscription": Ref("subscription"),
        "payments": Include(_invoice_payments),
        "test_clock": Ref("test_helpers.test_clock"),
    },
    "invoiceitem": {
        "customer": Ref("customer"),
        "discounts": RefList("discount"),
        "invoice": Ref("invoice"),
        "test_clock": Ref("test_helpers.test_clock"),
    },
    "invoice_payment": {
        "invoice": Ref("invoice"),
        "payment.payment_intent": Ref("payment_intent"),
        "payment.charge": Ref("charge"),
    },
    "refund": {
        "balance_transaction": Ref("balance_transaction"),
        "charge": Ref("charge"),
        "payment_intent": Ref("payment_intent"),
    },
    "line_item": {"discounts": RefList("discount")},
    "payment_intent": {
        "customer": Ref("customer"),
        "latest_charge": Ref("charge"),
        "payment_method": Ref("payment_method"),
    },
    "charge": {
        "refunds": Include(lambda store, charge: charge["refunds"]),
        "balance_transaction": Ref("balance_transaction"),
        "customer": Ref("customer"),
        "payment_intent": Ref("payment_intent"),
    },
    "payment_method": {"customer": Ref("customer")},
    "mandate": {"payment_method": Ref("payment_method")},
}


def expand(store, obj: dict, paths: list[str]) -> dict:
    """A copy of `obj` with every path in `paths` expanded; the stored object is left as it was."""
    if not paths:
        return obj
    obj = copy.deepcopy(obj)
    for path in paths:
        segments = path.split(".")
        if len(segments) > MAX_DEPTH:
            raise StripeError(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}", param="expand"
            )
        _expand(store, obj, segments, path)
    return obj


def _expand(store, node: dict, segments: list[str], path: str) -> None:
    if node.get("object") == "list" and segments[0] == "data" and len(segments) > 1:
        for item in node["data"]:
            _expand(store, item, segments[1:], path)
        return
    rules = EXPANDABLE.get(node.get("object"), {})
    for size in range(len(segments), 0, -1):
        rule = rules.get(".".join(segments[:size]))
        if rule is not None:
            break
    else:
        # Not expandable here, but the field may be an object already embedded (a line item's price).
        value = node.get(segments[0])
        if len(segments) > 1 and isinstance(value, dict) and "object" in value:
            _expand(store, value, segments[1:], path)
            return
        raise StripeError(f"This property cannot be expanded ({path}).", param="expand")

    *hashes, field = segments[:size]
    parent = node
    for name in hashes:
        parent = parent.get(name)
        if parent is None:
            return
    if isinstance(rule, Ref):
        value = parent.get(field)
        if isinstance(value, str):
            target = store.find(rule.object_type, value)
            if target is not None:
                parent[field] = copy.deepcopy(target)
    elif isinstance(rule, RefList):
        parent[field] = [
            copy.deepcopy(store.find(rule.object_type, value) or value) if isinstance(value, str) else value
            for value in parent.get(field) or []
        ]
    elif field not in parent:
        # A copy, since deeper paths expand inside it and the built value may share dicts with stored objects.
        parent[field] = copy.deepcopy(rule.build(store, node))

    rest = segments[size:]
    value = parent.get(field)
    if rest and isinstance(value, dict):
        _expand(store, value, rest, path)
    elif rest and isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                _expand(store, item, rest, path)

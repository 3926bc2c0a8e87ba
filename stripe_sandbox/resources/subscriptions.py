"""`/v1/subscriptions` and `/v1/subscription_items`: retrieve, list, update (cancel at period end, default payment
method, metadata, a new price with prorations: see plan_changes.py) and cancel (Checkout creates them)."""

import copy

from stripe_sandbox import billing, plan_changes
from stripe_sandbox.call import ApiCall
from stripe_sandbox.fulfillment import _Flow
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.store import Store
from stripe_sandbox.wire import Params, StripeError, missing_param

FEEDBACK = ("customer_service", "low_quality", "missing_features", "other", "switched_service", "too_complex",
            "too_expensive", "unused")  # fmt: skip

STATUSES = ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due", "paused",
            "trialing", "unpaid")  # fmt: skip


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("subscription", id)


def list_subscriptions(call: ApiCall) -> dict:
    params = call.params
    customer = params.string("customer")
    price = params.string("price")
    status = params.string("status", choices=STATUSES)
    created = created_filter(params)

    def wanted(subscription: dict) -> bool:
        if status is None:
            # By default Stripe lists the subscriptions that are not canceled.
            status_ok = subscription["status"] != "canceled"
        elif status == "ended":
            status_ok = subscription["status"] in ("canceled", "incomplete_expired")
        else:
            status_ok = status == "all" or subscription["status"] == status
        return (
            status_ok
            and customer in (None, subscription["customer"])
            and (price is None or any(item["price"]["id"] == price for item in subscription["items"]["data"]))
            and created(subscription)
        )

    subscriptions = [sub for sub in call.store.newest_first("subscription") if wanted(sub)]
    return page(params, subscriptions, url="/v1/subscriptions", object_type="subscription")


def item_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("subscription_item", id)


def item_list(call: ApiCall) -> dict:
    params = call.params
    subscription_id = params.string("subscription")
    if subscription_id is None:
        raise missing_param("subscription")
    subscription = call.store.get("subscription", subscription_id, param="subscription", status=400)
    return page(
        params,
        subscription["items"]["data"],
        url="/v1/subscription_items",
        object_type="subscription_item",
    )


def _cancellation_details(params: Params) -> tuple[str | None, str | None]:
    details = params.hash("cancellation_details")
    if details is None:
        return None, None
    return details.string("comment", max_length=5000), details.string("feedback", choices=FEEDBACK)


def update(call: ApiCall, id: str) -> dict:
    params = call.params
    cancel_at_period_end = params.boolean("cancel_at_period_end")
    default_payment_method = params.string("default_payment_method")
    description = params.string("description", max_length=500)
    metadata = params.metadata(keep_empty=True)
    comment, feedback = _cancellation_details(params)
    requested = plan_changes.read_items(params, "items")
    proration_behavior = params.string("proration_behavior", choices=plan_changes.PRORATION_BEHAVIORS)
    proration_date = params.integer("proration_date")
    payment_behavior = params.string("payment_behavior", choices=plan_changes.PAYMENT_BEHAVIORS)
    params.finish()
    store = call.store
    subscription = store.get("subscription", id)
    ended = subscription["status"] in ("canceled", "incomplete_expired")
    if ended and (
        cancel_at_period_end is not None or default_payment_method is not None or description is not None or requested
    ):
        raise StripeError("A canceled subscription can only update its cancellation_details and metadata.")
    if payment_behavior == "pending_if_incomplete":
        raise StripeError(
            "The Stripe sandbox does not implement payment_behavior=pending_if_incomplete (pending updates).",
            param="payment_behavior",
        )
    customer = store.get("customer", subscription["customer"])
    flow = _Flow(store, billing.now_for(store, subscription), call.event_request)
    plan = None
    if requested:
        plan = _plan_change(
            store,
            subscription,
            requested,
            now=flow.now,
            proration_behavior=proration_behavior,
            proration_date=proration_date,
            payment_behavior=payment_behavior,
        )
    previous: dict = {}
    if default_payment_method is not None:
        method = billing.payment_method_for_customer(
            store, default_payment_method, customer, now=flow.now, param="default_payment_method", flow=flow
        )
        _change(previous, subscription, "default_payment_method", method["id"])
    if description is not None:
        _change(previous, subscription, "description", description)
    _update_cancellation(subscription, previous, cancel_at_period_end, comment=comment, feedback=feedback, now=flow.now)
    _update_metadata(subscription, metadata, previous)
    if plan is not None:
        plan_changes.apply_change(flow, subscription, plan, previous)
    if "cancellation_details" in previous:
        # Stripe shows the whole hash as it was.
        previous["cancellation_details"] = {**subscription["cancellation_details"], **previous["cancellation_details"]}
    if previous:
        flow.emit("customer.subscription.updated", subscription, previous)
    return subscription


def _plan_change(
    store: Store,
    subscription: dict,
    requested: list[plan_changes.RequestedItem],
    *,
    now: int,
    proration_behavior: str | None,
    proration_date: int | None,
    payment_behavior: str | None,
) -> plan_changes.ChangePlan:
    """The change of prices the request asks for, checked (nothing is changed yet)."""
    changes = plan_changes.resolve(store, subscription, requested, now=now)
    plan = plan_changes.plan_change(
        store,
        subscription,
        changes,
        at=now if proration_date is None else proration_date,
        behavior=proration_behavior or "create_prorations",
        param="proration_date",
    )
    if payment_behavior == "error_if_incomplete":
        plan_changes.check_payment(store, subscription, plan)
    plan.attempt_payment = payment_behavior != "default_incomplete"
    return plan


def _change(previous: dict, holder: dict, field: str, value, *, within: str | None = None) -> None:
    """Set `holder[field]` to `value`, noting in `previous` what it was (under `within` for a field of a hash such as
    cancellation_details)."""
    if holder[field] != value:
        if within is None:
            previous[field] = copy.deepcopy(holder[field])
        else:
            previous.setdefault(within, {})[field] = holder[field]
        holder[field] = value


def _update_cancellation(
    subscription: dict,
    previous: dict,
    cancel_at_period_end: bool | None,
    *,
    comment: str | None,
    feedback: str | None,
    now: int,
) -> None:
    """Cancel at the period end (or no longer), and note the customer's comment and feedback."""
    details = subscription["cancellation_details"]
    if cancel_at_period_end is True:
        _change(previous, subscription, "cancel_at_period_end", True)
        _change(previous, subscription, "cancel_at", billing.period_end(subscription))
        _change(previous, subscription, "canceled_at", subscription["canceled_at"] or now)
        _change(previous, details, "reason", "cancellation_requested", within="cancellation_details")
    elif cancel_at_period_end is False:
        _change(previous, subscription, "cancel_at_period_end", False)
        _change(previous, subscription, "cancel_at", None)
        _change(previous, subscription, "canceled_at", None)
        _change(previous, details, "reason", None, within="cancellation_details")
    if comment is not None:
        _change(previous, details, "comment", comment, within="cancellation_details")
    if feedback is not None:
        _change(previous, details, "feedback", feedback, within="cancellation_details")


def _update_metadata(subscription: dict, metadata: dict[str, str], previous: dict) -> None:
    """Set the given keys (an empty value removes its key); `previous` shows the old value of each key that changed."""
    old_metadata = dict(subscription["metadata"])
    for key, value in metadata.items():
        if value == "":
            subscription["metadata"].pop(key, None)
        else:
            subscription["metadata"][key] = value
    changed = sorted(
        k
        for k in old_metadata.keys() | subscription["metadata"].keys()
        if old_metadata.get(k) != subscription["metadata"].get(k)
    )
    if changed:
        previous["metadata"] = {key: old_metadata.get(key) for key in changed}


def cancel(call: ApiCall, id: str) -> dict:
    """`DELETE /v1/subscriptions/{id}`: cancel now (customer.subscription.deleted)."""
    params = call.params
    params.boolean("invoice_now")
    params.boolean("prorate")
    comment, feedback = _cancellation_details(params)
    params.finish()
    store = call.store
    subscription = store.get("subscription", id)
    if subscription["status"] == "canceled":
        raise StripeError(
            f"No such subscription: '{id}'. It has been canceled.", status=404, param="id", code="resource_missing"
        )
    flow = _Flow(store, billing.now_for(store, subscription), call.event_request)
    subscription["canceled_at"] = flow.now
    billing.end_subscription(flow, subscription, reason="cancellation_requested", comment=comment, feedback=feedback)
    return subscription


ROUTES = [
    ("GET", "/v1/subscriptions", list_subscriptions),
    ("POST", "/v1/subscriptions/{id}", update),
    ("DELETE", "/v1/subscriptions/{id}", cancel),
    ("GET", "/v1/subscriptions/{id}", retrieve),
    ("GET", "/v1/subscription_items", item_list),
    ("GET", "/v1/subscription_items/{id}", item_retrieve),
]

"""`/v1/subscriptions` and `/v1/subscription_items`: retrieve and list (Checkout creates them)."""

from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import ApiCall, missing_param

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


ROUTES = [
    ("GET", "/v1/subscriptions", list_subscriptions),
    ("GET", "/v1/subscriptions/{id}", retrieve),
    ("GET", "/v1/subscription_items", item_list),
    ("GET", "/v1/subscription_items/{id}", item_retrieve),
]

"""`POST /v1/billing_portal/sessions`: a customer portal session whose `url` opens the sandbox's portal page
(`/p/session/{id}`, see portal_pages.py). Stripe has no endpoint to read a portal session back, nor does the sandbox."""

from stripe_sandbox import objects
from stripe_sandbox.call import ApiCall
from stripe_sandbox.store import new_id
from stripe_sandbox.wire import Params, StripeError

# The account's default portal configuration: the one every session uses unless another is named (the sandbox has
# no other).
DEFAULT_CONFIGURATION = "bpc_1SbxLocalSandboxPortal"
# Stripe ends a portal session after 5 minutes without activity; the sandbox keeps one for an hour of its own time.
SESSION_LIFETIME = 3600
FLOW_TYPES = ("payment_method_update", "subscription_cancel", "subscription_update", "subscription_update_confirm")


def _flow(params: Params | None, store, customer: str) -> dict | None:
    """`flow_data`, as the session's `flow`: its type, the subscription it is about and where it ends."""
    if params is None:
        return None
    type = params.string("type", required=True, choices=FLOW_TYPES)
    after = params.hash("after_completion")
    after_type, custom_message, redirect_url = "portal_homepage", None, None
    if after is not None:
        after_type = after.string("type", required=True, choices=("hosted_confirmation", "portal_homepage", "redirect"))
        confirmation = after.hash("hosted_confirmation")
        if confirmation is not None:
            custom_message = confirmation.string("custom_message", max_length=500)
        redirect = after.hash("redirect")
        if redirect is not None:
            redirect_url = redirect.url("return_url")
        if after_type == "redirect" and redirect_url is None:
            raise StripeError(
                "Missing required param: flow_data[after_completion][redirect][return_url].",
                param="flow_data[after_completion][redirect][return_url]",
                code="parameter_missing",
            )
    subscription_id = None
    details = params.hash(type) if type != "payment_method_update" else None
    if details is not None:
        subscription_id = details.string("subscription", required=True)
    elif type != "payment_method_update":
        raise StripeError(
            f"Missing required param: flow_data[{type}].", param=f"flow_data[{type}]", code="parameter_missing"
        )
    if subscription_id is not None:
        subscription = store.get("subscription", subscription_id, param=f"flow_data[{type}][subscription]", status=400)
        if subscription["customer"] != customer:
            raise StripeError(
                f"The subscription {subscription_id} does not belong to the customer {customer}.",
                param=f"flow_data[{type}][subscription]",
            )
    return {
        "after_completion": {
            "hosted_confirmation": {"custom_message": custom_message} if after_type == "hosted_confirmation" else None,
            "redirect": {"return_url": redirect_url} if after_type == "redirect" else None,
            "type": after_type,
        },
        "subscription_cancel": {"retention": None, "subscription": subscription_id}
        if type == "subscription_cancel"
        else None,
        "subscription_update": {"subscription": subscription_id} if type == "subscription_update" else None,
        "subscription_update_confirm": {"discounts": None, "items": [], "subscription": subscription_id}
        if type == "subscription_update_confirm"
        else None,
        "type": type,
    }


def create(call: ApiCall) -> dict:
    params = call.params
    customer_id = params.string("customer", required=True)
    return_url = params.url("return_url")
    configuration = params.string("configuration")
    locale = params.string("locale")
    on_behalf_of = params.string("on_behalf_of")
    flow_params = params.hash("flow_data")
    flow = _flow(flow_params, call.store, customer_id) if flow_params is not None else None
    params.finish()
    store = call.store
    store.get("customer", customer_id, param="customer", status=400)
    if configuration not in (None, DEFAULT_CONFIGURATION):
        raise StripeError(f"No such configuration: '{configuration}'", param="configuration", code="resource_missing")
    id = new_id("bps_", 24)
    session = objects.billing_portal_session(
        id=id,
        created=call.now,
        customer=customer_id,
        configuration=DEFAULT_CONFIGURATION,
        return_url=return_url,
        url=f"{call.public_url}/p/session/{id}",
        flow=flow,
        locale=None if locale in (None, "auto") else locale,
        on_behalf_of=on_behalf_of,
    )
    store.add(session)
    store.attached[id, "expires_at"] = call.now + SESSION_LIFETIME
    return session


ROUTES = [
    ("POST", "/v1/billing_portal/sessions", create),
]

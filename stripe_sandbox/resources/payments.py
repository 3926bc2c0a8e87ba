"""`/v1/payment_intents`, `/v1/charges` and `/v1/payment_methods`: retrieve and list what paying created."""

from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import ApiCall


def payment_intent_retrieve(call: ApiCall, id: str) -> dict:
    call.params.string("client_secret")  # accepted, as Stripe does for publishable keys; not checked
    call.params.finish()
    return call.store.get("payment_intent", id)


def payment_intent_list(call: ApiCall) -> dict:
    params = call.params
    customer = params.string("customer")
    created = created_filter(params)
    intents = [
        intent
        for intent in call.store.newest_first("payment_intent")
        if customer in (None, intent["customer"]) and created(intent)
    ]
    return page(params, intents, url="/v1/payment_intents", object_type="payment_intent")


def charge_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("charge", id)


def charge_list(call: ApiCall) -> dict:
    params = call.params
    customer = params.string("customer")
    payment_intent = params.string("payment_intent")
    created = created_filter(params)
    charges = [
        charge
        for charge in call.store.newest_first("charge")
        if customer in (None, charge["customer"])
        and payment_intent in (None, charge["payment_intent"])
        and created(charge)
    ]
    return page(params, charges, url="/v1/charges", object_type="charge")


def payment_method_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("payment_method", id)


def customer_payment_methods(call: ApiCall, id: str) -> dict:
    params = call.params
    call.store.get("customer", id)
    type = params.string("type")
    methods = [
        method
        for method in call.store.newest_first("payment_method")
        if method["customer"] == id and type in (None, method["type"])
    ]
    return page(params, methods, url=f"/v1/customers/{id}/payment_methods", object_type="payment_method")


ROUTES = [
    ("GET", "/v1/payment_intents", payment_intent_list),
    ("GET", "/v1/payment_intents/{id}", payment_intent_retrieve),
    ("GET", "/v1/charges", charge_list),
    ("GET", "/v1/charges/{id}", charge_retrieve),
    ("GET", "/v1/payment_methods/{id}", payment_method_retrieve),
    ("GET", "/v1/customers/{id}/payment_methods", customer_payment_methods),
]

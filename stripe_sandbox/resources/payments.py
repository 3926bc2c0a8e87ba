"""`/v1/payment_intents`, `/v1/charges`, `/v1/payment_methods` (retrieve, list, attach and detach),
`/v1/mandates` (retrieve) and `/v1/refunds` (create, retrieve, list)."""

from stripe_sandbox import billing
from stripe_sandbox.call import ApiCall
from stripe_sandbox.fulfillment import _Flow, create_payment_method
from stripe_sandbox.objects.payments import TEST_CARDS
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import StripeError, missing_param

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


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


def mandate_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("mandate", id)


def payment_method_attach(call: ApiCall, id: str) -> dict:
    """Attach to a customer: a test token (`pm_card_visa` ...) becomes a new `pm_...` first, as at Stripe."""
    params = call.params
    customer_id = params.string("customer")
    params.finish()
    if customer_id is None:
        raise missing_param("customer")
    store = call.store
    customer = store.get("customer", customer_id, param="customer", status=400)
    flow = _Flow(store, billing.now_for(store, customer), call.event_request)
    if id in TEST_CARDS:
        method = create_payment_method(
            store, now=flow.now, test_card=id, customer=customer, email=customer["email"], name=customer["name"]
        )
    else:
        method = store.get("payment_method", id)
        if method["customer"] == customer_id:
            return method
        if method["customer"] is not None:
            raise StripeError(
                "The payment method you provided has already been attached to a customer.", param="payment_method"
            )
        method["customer"] = customer_id
    flow.emit("payment_method.attached", method)
    return method


def payment_method_detach(call: ApiCall, id: str) -> dict:
    call.params.finish()
    store = call.store
    method = store.get("payment_method", id)
    if method["customer"] is None:
        raise StripeError("The payment method you provided is not attached to a customer so detachment is impossible.")
    customer = store.find("customer", method["customer"])
    method["customer"] = None
    if customer is not None and customer["invoice_settings"]["default_payment_method"] == id:
        customer["invoice_settings"]["default_payment_method"] = None
    _Flow(store, billing.now_for(store, customer), call.event_request).emit(
        "payment_method.detached", method, {"customer": customer["id"] if customer else None}
    )
    return method


def refund_create(call: ApiCall) -> dict:
    params = call.params
    charge_id = params.string("charge")
    intent_id = params.string("payment_intent")
    amount = params.integer("amount", minimum=1)
    reason = params.string("reason", choices=REFUND_REASONS)
    metadata = params.metadata()
    params.finish()
    store = call.store
    if charge_id is None and intent_id is None:
        raise StripeError(
            "One of the following params should be provided for this request: payment_intent or charge.",
            param="charge",
            code="parameter_missing",
        )
    if charge_id is not None:
        charge = store.get("charge", charge_id, param="charge", status=400)
        if intent_id is not None and charge["payment_intent"] != intent_id:
            raise StripeError(
                f"The charge {charge_id} does not belong to the payment intent {intent_id}.", param="payment_intent"
            )
    else:
        intent = store.get("payment_intent", intent_id, param="payment_intent", status=400)
        if intent["status"] != "succeeded" or not intent["latest_charge"]:
            raise StripeError(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = store.get("charge", intent["latest_charge"])
    return billing.refund_charge(
        store, charge, amount=amount, reason=reason, metadata=metadata, request=call.event_request
    )


def refund_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("refund", id)


def refund_list(call: ApiCall) -> dict:
    params = call.params
    charge = params.string("charge")
    payment_intent = params.string("payment_intent")
    created = created_filter(params)
    refunds = [
        refund
        for refund in call.store.newest_first("refund")
        if charge in (None, refund["charge"]) and payment_intent in (None, refund["payment_intent"]) and created(refund)
    ]
    return page(params, refunds, url="/v1/refunds", object_type="refund")


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
    ("POST", "/v1/payment_methods/{id}/attach", payment_method_attach),
    ("GET", "/v1/mandates/{id}", mandate_retrieve),
    ("POST", "/v1/payment_methods/{id}/detach", payment_method_detach),
    ("POST", "/v1/refunds", refund_create),
    ("GET", "/v1/refunds", refund_list),
    ("GET", "/v1/refunds/{id}", refund_retrieve),
    ("GET", "/v1/customers/{id}/payment_methods", customer_payment_methods),
]

"""`/v1/test_helpers/checkout/sessions/...`: what a customer does on the payment page, for tests and scripts.

These are the sandbox's own (Stripe has no such endpoints; its test mode needs a browser): `complete` pays a session
by card (`payment_status=paid`, the default; `payment_method=pm_card_visa`, the default, or another test card such as
`pm_card_chargeCustomerFail`) or starts a bank debit (`payment_status=unpaid`), and `async_payment` makes that debit
succeed or fail.
"""

from stripe_sandbox import fulfillment
from stripe_sandbox.call import ApiCall
from stripe_sandbox.objects.payments import DEFAULT_TEST_CARD, TEST_CARDS


def complete(call: ApiCall, id: str) -> dict:
    params = call.params
    payment_status = params.string("payment_status", choices=("paid", "unpaid")) or "paid"
    details = params.hash("customer_details")
    email = details.email("email") if details is not None else None
    name = details.string("name", max_length=256) if details is not None else None
    test_card = params.string("payment_method", choices=tuple(TEST_CARDS)) or DEFAULT_TEST_CARD
    params.finish()
    session = call.store.get("checkout.session", id)
    return fulfillment.complete_session(
        call.store,
        session,
        now=call.now,
        payment_status=payment_status,
        email=email,
        name=name,
        request=call.event_request,
        test_card=test_card,
    )


def async_payment(call: ApiCall, id: str) -> dict:
    params = call.params
    result = params.string("result", required=True, choices=("succeeded", "failed"))
    params.finish()
    session = call.store.get("checkout.session", id)
    return fulfillment.settle_delayed_payment(
        call.store, session, now=call.now, succeeded=result == "succeeded", request=call.event_request
    )


ROUTES = [
    ("POST", "/v1/test_helpers/checkout/sessions/{id}/complete", complete),
    ("POST", "/v1/test_helpers/checkout/sessions/{id}/async_payment", async_payment),
]

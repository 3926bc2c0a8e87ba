"""`/v1/invoices`: retrieve, list, list an invoice's lines and pay an open one now; `/v1/invoice_payments`: how an
invoice was paid (Checkout and renewals create them)."""

from stripe_sandbox import billing
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import ApiCall, StripeError

STATUSES = ("draft", "open", "paid", "uncollectible", "void")


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("invoice", id)


def list_invoices(call: ApiCall) -> dict:
    params = call.params
    customer = params.string("customer")
    subscription = params.string("subscription")
    status = params.string("status", choices=STATUSES)
    created = created_filter(params)
    invoices = [
        invoice
        for invoice in call.store.newest_first("invoice")
        if customer in (None, invoice["customer"])
        and subscription in (None, billing.invoice_subscription(invoice))
        and status in (None, invoice["status"])
        and created(invoice)
    ]
    return page(params, invoices, url="/v1/invoices", object_type="invoice")


def list_lines(call: ApiCall, id: str) -> dict:
    invoice = call.store.get("invoice", id)
    return page(call.params, invoice["lines"]["data"], url=f"/v1/invoices/{id}/lines", object_type="line_item")


def pay(call: ApiCall, id: str) -> dict:
    params = call.params
    payment_method = params.string("payment_method")
    params.boolean("off_session")
    paid_out_of_band = params.boolean("paid_out_of_band")
    params.finish()
    if paid_out_of_band:
        raise StripeError("The Stripe sandbox does not implement paid_out_of_band.", param="paid_out_of_band")
    invoice = call.store.get("invoice", id)
    return billing.pay_invoice_now(call.store, invoice, payment_method_id=payment_method, request=call.event_request)


def invoice_payment_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("invoice_payment", id)


def invoice_payment_list(call: ApiCall) -> dict:
    params = call.params
    invoice = params.string("invoice")
    status = params.string("status", choices=("canceled", "open", "paid"))
    payment = params.hash("payment")
    payment_intent = payment.string("payment_intent") if payment is not None else None
    if payment is not None:
        payment.string("type", choices=("charge", "payment_intent", "payment_record"))
    created = created_filter(params)
    payments = [
        entry
        for entry in call.store.newest_first("invoice_payment")
        if invoice in (None, entry["invoice"])
        and status in (None, entry["status"])
        and payment_intent in (None, entry["payment"].get("payment_intent"))
        and created(entry)
    ]
    return page(params, payments, url="/v1/invoice_payments", object_type="invoice_payment")


ROUTES = [
    ("POST", "/v1/invoices/{id}/pay", pay),
    ("GET", "/v1/invoice_payments", invoice_payment_list),
    ("GET", "/v1/invoice_payments/{id}", invoice_payment_retrieve),
    ("GET", "/v1/invoices", list_invoices),
    ("GET", "/v1/invoices/{id}", retrieve),
    ("GET", "/v1/invoices/{id}/lines", list_lines),
]

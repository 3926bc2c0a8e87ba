"""`/v1/invoices`: retrieve, list, and list an invoice's lines (Checkout creates a subscription's first invoice)."""

from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import ApiCall

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
        and subscription in (None, invoice["subscription"])
        and status in (None, invoice["status"])
        and created(invoice)
    ]
    return page(params, invoices, url="/v1/invoices", object_type="invoice")


def list_lines(call: ApiCall, id: str) -> dict:
    invoice = call.store.get("invoice", id)
    return page(call.params, invoice["lines"]["data"], url=f"/v1/invoices/{id}/lines", object_type="line_item")


ROUTES = [
    ("GET", "/v1/invoices", list_invoices),
    ("GET", "/v1/invoices/{id}", retrieve),
    ("GET", "/v1/invoices/{id}/lines", list_lines),
]

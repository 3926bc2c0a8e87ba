"""`/v1/invoices`: retrieve, list, list an invoice's lines, pay an open one now and preview a subscription's next
invoice (with a change of price: `create_preview`); `/v1/invoice_payments`: how an invoice was paid (Checkout and
renewals create them); `/v1/invoiceitems`: the prorations plan changes make."""

from stripe_sandbox import billing, plan_changes
from stripe_sandbox.call import ApiCall
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import StripeError

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


def create_preview(call: ApiCall) -> dict:
    """`POST /v1/invoices/create_preview`: the invoice a subscription change would make now, else the next
    renewal's invoice (with the change's prorations when they would wait for it)."""
    params = call.params
    customer_id = params.string("customer")
    subscription_id = params.string("subscription")
    details = params.hash("subscription_details")
    requested, behavior, proration_date = [], None, None
    if details is not None:
        requested = plan_changes.read_items(details, "items")
        behavior = details.string("proration_behavior", choices=plan_changes.PRORATION_BEHAVIORS)
        proration_date = details.integer("proration_date")
    params.finish()
    store = call.store
    if subscription_id is None:
        if customer_id is not None:
            store.get("customer", customer_id, param="customer", status=400)
        raise StripeError(
            "The Stripe sandbox previews a subscription's invoices only: pass subscription.", param="subscription"
        )
    subscription = store.get("subscription", subscription_id, param="subscription", status=400)
    if customer_id is not None and customer_id != subscription["customer"]:
        raise StripeError(
            f"The subscription {subscription_id} does not belong to the customer {customer_id}.", param="customer"
        )
    plan = None
    if requested or proration_date is not None or behavior is not None:
        now = billing.now_for(store, subscription)
        changes = plan_changes.resolve(store, subscription, requested, now=now)
        plan = plan_changes.plan_change(
            store,
            subscription,
            changes,
            at=now if proration_date is None else proration_date,
            behavior=behavior or "create_prorations",
            param="subscription_details[proration_date]",
        )
    return plan_changes.preview(store, subscription, plan)


def invoice_item_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("invoiceitem", id)


def invoice_item_list(call: ApiCall) -> dict:
    params = call.params
    customer = params.string("customer")
    invoice = params.string("invoice")
    pending = params.boolean("pending")
    created = created_filter(params)
    items = [
        item
        for item in call.store.newest_first("invoiceitem")
        if customer in (None, item["customer"])
        and invoice in (None, item["invoice"])
        and pending in (None, item["invoice"] is None)
        and created({"created": item["date"]})
    ]
    return page(params, items, url="/v1/invoiceitems", object_type="invoiceitem")


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
    ("POST", "/v1/invoices/create_preview", create_preview),
    ("GET", "/v1/invoiceitems", invoice_item_list),
    ("GET", "/v1/invoiceitems/{id}", invoice_item_retrieve),
    ("POST", "/v1/invoices/{id}/pay", pay),
    ("GET", "/v1/invoice_payments", invoice_payment_list),
    ("GET", "/v1/invoice_payments/{id}", invoice_payment_retrieve),
    ("GET", "/v1/invoices", list_invoices),
    ("GET", "/v1/invoices/{id}", retrieve),
    ("GET", "/v1/invoices/{id}/lines", list_lines),
]

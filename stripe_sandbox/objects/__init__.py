"""One builder per Stripe object type, with the keys and nesting of Stripe's own fixtures and our values."""

from stripe_sandbox.objects.billing import (
    billing_portal_session,
    invoice,
    invoice_item,
    invoice_line_item,
    invoice_payment,
    plan,
    subscription,
    subscription_item,
    test_clock,
)
from stripe_sandbox.objects.checkout import checkout_item, checkout_session, customer_details
from stripe_sandbox.objects.core import account, coupon, customer, discount, list_object, price, product
from stripe_sandbox.objects.events import event, webhook_endpoint
from stripe_sandbox.objects.payments import charge, mandate, payment_intent, payment_method, refund

__all__ = [
    "account",
    "billing_portal_session",
    "charge",
    "checkout_item",
    "checkout_session",
    "coupon",
    "customer",
    "customer_details",
    "discount",
    "event",
    "invoice",
    "invoice_item",
    "invoice_line_item",
    "invoice_payment",
    "list_object",
    "mandate",
    "payment_intent",
    "payment_method",
    "plan",
    "price",
    "product",
    "refund",
    "subscription",
    "subscription_item",
    "test_clock",
    "webhook_endpoint",
]

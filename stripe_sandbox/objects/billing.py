"""Builders for Billing: subscriptions, their items (with the legacy `plan` view of the price), invoices and their
lines, as the current API version shows them (a subscription's billing period lives on its items)."""

from stripe_sandbox.objects.core import list_object


def plan(price: dict) -> dict:
    """The legacy `plan` view of a recurring price, which Stripe still embeds next to `price`."""
    recurring = price["recurring"]
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": False,
        "metadata": price["metadata"],
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring["trial_period_days"],
        "usage_type": recurring["usage_type"],
    }


def subscription_item(
    *,
    id: str,
    created: int,
    subscription: str,
    price: dict,
    quantity: int,
    current_period_start: int,
    current_period_end: int,
) -> dict:
    return {
        "id": id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": current_period_end,
        "current_period_start": current_period_start,
        "discounts": [],
        "metadata": {},
        "plan": plan(price),
        "price": dict(price),
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    }


def subscription(
    *,
    id: str,
    created: int,
    customer: str,
    currency: str,
    items: list[dict],
    status: str,
    latest_invoice: str | None,
    discounts: list[str],
    metadata: dict,
    trial_start: int | None,
    trial_end: int | None,
    default_payment_method: str | None,
    description: str | None = None,
    test_clock: str | None = None,
) -> dict:
    """A subscription; `items` are its subscription items, all listed (Stripe pages them beyond ten)."""
    return {
        "id": id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        # With a trial, the first full period starts when the trial ends.
        "billing_cycle_anchor": trial_end or created,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": default_payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": description,
        "discounts": discounts,
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "items": list_object(items, url=f"/v1/subscription_items?subscription={id}", has_more=False),
        "latest_invoice": latest_invoice,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "test_clock": test_clock,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": trial_start,
    }


def invoice_line_item(
    *,
    id: str,
    invoice: str,
    price: dict,
    description: str,
    quantity: int,
    amount: int,
    discount_amounts: list[dict],
    period_start: int,
    period_end: int,
    subscription: str | None,
    subscription_item: str | None,
    metadata: dict,
    proration: bool = False,
    invoice_item: str | None = None,
    credited_items: dict | None = None,
) -> dict:
    """An invoice line (object `line_item`): a subscription item's period, a one-time price billed with it, or a
    proration made when the subscription's price changed (`proration`, from the invoice item `invoice_item`; a credit
    names the lines it credits in `credited_items`: {"invoice": ..., "invoice_line_items": [...]}).

    `amount` is before discounts; `discount_amounts` says what each discount takes off it. `invoice` is None on a
    preview's lines.
    """
    if subscription_item is not None:
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoice_item,
                "proration": proration,
                "proration_details": {"credited_items": credited_items},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        }
    else:
        parent = {
            "invoice_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    return {
        "id": id,
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": description,
        "discount_amounts": discount_amounts,
        # Stripe never discounts prorations.
        "discountable": not proration,
        "discounts": [entry["discount"] for entry in discount_amounts],
        "invoice": invoice,
        "livemode": False,
        "metadata": metadata,
        "parent": parent,
        "period": {"end": period_end, "start": period_start},
        "pretax_credit_amounts": [],
        # Stripe adds `price_details` (price and product ids) here; it is not among the keys of its fixture.
        "pricing": {
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": subscription,
        "subtotal": amount,
        "taxes": [],
    }


def invoice(
    *,
    id: str,
    created: int,
    customer: dict,
    currency: str,
    lines: list[dict],
    discounts: list[str],
    subscription: str | None,
    subscription_metadata: dict | None,
    billing_reason: str,
    period_start: int,
    period_end: int,
) -> dict:
    """A draft invoice with its lines; finalizing and paying it are changes made by the flow that owns it."""
    subtotal = sum(line["amount"] for line in lines)
    discount_totals: dict[str, int] = {}
    for line in lines:
        for entry in line["discount_amounts"]:
            discount_totals[entry["discount"]] = discount_totals.get(entry["discount"], 0) + entry["amount"]
    total = subtotal - sum(discount_totals.values())
    parent = None
    if subscription is not None:
        parent = {
            "quote_details": None,
            "subscription_details": {"metadata": subscription_metadata, "subscription": subscription},
            "type": "subscription_details",
        }
    return {
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe sandbox",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": None,
        "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": discounts,
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object(lines, url=f"/v1/invoices/{id}/lines", has_more=False),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        # No top-level `subscription` since API version 2025-03-31.basil: it is parent.subscription_details.
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "test_clock": customer["test_clock"],
        "total": total,
        "total_discount_amounts": [
            {"amount": amount, "discount": discount_id} for discount_id, amount in discount_totals.items()
        ],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def invoice_item(
    *,
    id: str,
    created: int,
    customer: dict,
    price: dict,
    amount: int,
    quantity: int,
    description: str,
    period_start: int,
    period_end: int,
    subscription: str,
    subscription_item: str,
    proration: bool,
    invoice: str | None,
) -> dict:
    """An invoice item (object `invoiceitem`): here always a proration a subscription change made, pending until an
    invoice takes it in (`invoice`)."""
    return {
        "id": id,
        "object": "invoiceitem",
        "amount": amount,
        "currency": price["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "date": created,
        "description": description,
        "discountable": not proration,
        "discounts": [],
        "invoice": invoice,
        "livemode": False,
        "metadata": {},
        "net_amount": amount,
        # Stripe's fixture shows only `subscription` here; stripe-python's InvoiceItem has `subscription_item` too.
        "parent": {
            "subscription_details": {"subscription": subscription, "subscription_item": subscription_item},
            "type": "subscription_details",
        },
        "period": {"end": period_end, "start": period_start},
        "pricing": {"type": "price_details", "unit_amount_decimal": price["unit_amount_decimal"]},
        "proration": proration,
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": customer["test_clock"],
    }


def invoice_payment(
    *, id: str, created: int, invoice: str, amount_requested: int, currency: str, payment_intent: str
) -> dict:
    """A payment made (or being tried) for an invoice: since API version 2025-03-31.basil the way from an invoice to
    its PaymentIntent and charge, as invoices no longer name them."""
    return {
        "id": id,
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": amount_requested,
        "created": created,
        "currency": currency,
        "invoice": invoice,
        "is_default": True,
        "livemode": False,
        # Stripe's fixture shows only `type`; the payment's id is beside it, under the name of its type.
        "payment": {"payment_intent": payment_intent, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def test_clock(*, id: str, created: int, frozen_time: int, name: str | None) -> dict:
    return {
        "id": id,
        "object": "test_helpers.test_clock",
        "created": created,
        # Stripe deletes a test clock 30 days after it was created.
        "deletes_after": created + 30 * 24 * 3600,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }


def billing_portal_session(
    *,
    id: str,
    created: int,
    customer: str,
    configuration: str,
    return_url: str | None,
    url: str,
    flow: dict | None,
    locale: str | None,
    on_behalf_of: str | None,
) -> dict:
    return {
        "id": id,
        "object": "billing_portal.session",
        "configuration": configuration,
        "created": created,
        "customer": customer,
        "customer_account": None,
        "flow": flow,
        "livemode": False,
        "locale": locale,
        "on_behalf_of": on_behalf_of,
        "return_url": return_url,
        "url": url,
    }

"""Builders for Checkout: the session and its line items (object `item`)."""


def checkout_item(*, id: str, price: dict, description: str, quantity: int, amount_discount: int) -> dict:
    """A Checkout line item (object `item`); it embeds a copy of its price, as Stripe does."""
    subtotal = price["unit_amount"] * quantity
    return {
        "id": id,
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": amount_discount,
        "amount_subtotal": subtotal,
        "amount_tax": 0,
        "amount_total": subtotal - amount_discount,
        "currency": price["currency"],
        "description": description,
        "metadata": {},
        "price": dict(price),
        "quantity": quantity,
    }


def customer_details(*, email: str | None, name: str | None = None) -> dict:
    """What the customer entered on the payment page (only the e-mail address before they pay)."""
    return {
        "address": None,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": None,
    }


def checkout_session(
    *,
    id: str,
    created: int,
    expires_at: int,
    mode: str,
    ui_mode: str,
    url: str | None,
    client_secret: str | None,
    currency: str,
    amount_subtotal: int,
    amount_discount: int,
    customer: str | None,
    customer_email: str | None,
    client_reference_id: str | None,
    metadata: dict,
    success_url: str | None,
    cancel_url: str | None,
    coupon_id: str | None,
    payment_method_types: list[str] | None,
    locale: str | None,
    billing_address_collection: str | None,
    allow_promotion_codes: bool | None,
) -> dict:
    """An open, unpaid session as Stripe shows it right after creation.

    `amount_total` is the subtotal less the discount; during a free trial Stripe still shows the recurring amounts
    here while the session is open, and so do we. Once the session is complete its amounts are what was due today
    (the first invoice's subtotal and total): 0 for a trial, as Stripe shows them (see fulfillment.py).
    """
    subscription = mode == "subscription"
    details = customer_details(email=customer_email) if customer_email is not None else None
    return {
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": allow_promotion_codes,
        "amount_subtotal": amount_subtotal,
        "amount_total": amount_subtotal - amount_discount,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": billing_address_collection,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": client_secret,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_account": None,
        "customer_creation": "always" if subscription else "if_required",
        "customer_details": details,
        "customer_email": customer_email,
        "discounts": [{"coupon": coupon_id, "promotion_code": None}] if coupon_id else [],
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None
        if subscription
        else {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": locale,
        "managed_payments": {"enabled": False},
        "metadata": metadata,
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always" if subscription else "if_required",
        # Stripe names the payment method configuration it used only when the caller did not list the types.
        "payment_method_configuration_details": None
        if payment_method_types
        else {"id": "pmc_1SbxLocalSandboxDefault", "parent": None},
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": payment_method_types or ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": {
            "allow_redisplay_filters": ["always"],
            "payment_method_remove": None,
            "payment_method_save": None,
        },
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": amount_discount, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": ui_mode,
        "url": url,
        "wallet_options": None,
    }

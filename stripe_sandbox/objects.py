"""One builder per Stripe object type, with the keys and nesting of Stripe's own fixtures and our values."""


def list_object(data: list, *, url: str, has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _address(values: dict | None = None) -> dict:
    values = values or {}
    return {key: values.get(key) for key in ("city", "country", "line1", "line2", "postal_code", "state")}


def account(*, id: str, created: int) -> dict:
    requirements = {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }
    return {
        "id": id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": "Stripe sandbox",
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": created,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "sandbox@example.com",
        "external_accounts": list_object([], url=f"/v1/accounts/{id}/external_accounts", has_more=False),
        "future_requirements": dict(requirements),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": dict(requirements),
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": "Stripe sandbox", "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": "offer"},
            "payments": {
                "statement_descriptor": "SANDBOX",
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    }


def customer(
    *,
    id: str,
    created: int,
    invoice_prefix: str,
    email: str | None,
    name: str | None,
    description: str | None,
    phone: str | None,
    address: dict | None,
    preferred_locales: list[str],
    metadata: dict,
) -> dict:
    return {
        "id": id,
        "object": "customer",
        "address": _address(address) if address is not None else None,
        "balance": 0,
        "created": created,
        # Stripe sets a customer's currency with its first charge or subscription.
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "discount": None,
        "email": email,
        "invoice_prefix": invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": phone,
        "preferred_locales": preferred_locales,
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def coupon(
    *,
    id: str,
    created: int,
    percent_off: float | None,
    amount_off: int | None,
    currency: str | None,
    duration: str,
    duration_in_months: int | None,
    name: str | None,
    max_redemptions: int | None,
    redeem_by: int | None,
    metadata: dict,
) -> dict:
    return {
        "id": id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": created,
        "currency": currency,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": max_redemptions,
        "metadata": metadata,
        "name": name,
        "percent_off": percent_off,
        "redeem_by": redeem_by,
        "times_redeemed": 0,
        "valid": True,
    }


def product(*, id: str, created: int, name: str, description: str | None, metadata: dict, active: bool) -> dict:
    return {
        "id": id,
        "object": "product",
        "active": active,
        "created": created,
        "default_price": None,
        "description": description,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata,
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(
    *,
    id: str,
    created: int,
    product: str,
    currency: str,
    unit_amount: int,
    interval: str | None,
    interval_count: int | None,
    active: bool,
    nickname: str | None,
    lookup_key: str | None,
    metadata: dict,
) -> dict:
    recurring = None
    if interval is not None:
        recurring = {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }
    return {
        "id": id,
        "object": "price",
        "active": active,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata,
        "nickname": nickname,
        "product": product,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def line_item(*, id: str, price: dict, description: str, quantity: int, amount_discount: int) -> dict:
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


def discount(*, id: str, coupon_id: str, checkout_session: str, start: int) -> dict:
    return {
        "id": id,
        "object": "discount",
        "checkout_session": checkout_session,
        "customer": None,
        "customer_account": None,
        "end": None,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"coupon": coupon_id, "type": "coupon"},
        "start": start,
        "subscription": None,
        "subscription_item": None,
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
    here (what is due today is 0), and so do we.
    """
    subscription = mode == "subscription"
    customer_details = None
    if customer_email is not None:
        customer_details = {
            "address": None,
            "business_name": None,
            "email": customer_email,
            "individual_name": None,
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": None,
        }
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
        "customer_details": customer_details,
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

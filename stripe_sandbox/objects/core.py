"""Builders for the account, customers, coupons, products, prices and discounts, with the keys and nesting of
Stripe's own fixtures and our values."""


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
    test_clock: str | None = None,
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
        "test_clock": test_clock,
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


def discount(
    *,
    id: str,
    coupon_id: str,
    checkout_session: str | None,
    start: int,
    customer: str | None = None,
    subscription: str | None = None,
    end: int | None = None,
) -> dict:
    """A coupon applied: to a Checkout Session while it is open, then to the subscription it created."""
    return {
        "id": id,
        "object": "discount",
        "checkout_session": checkout_session,
        "customer": customer,
        "customer_account": None,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"coupon": coupon_id, "type": "coupon"},
        "start": start,
        "subscription": subscription,
        "subscription_item": None,
    }

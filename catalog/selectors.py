"""Reads of the catalog for the checkout: the price a plan sells at, whether a coupon applies, what it takes off."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Lower

from catalog.models import Coupon, Price
from core.exceptions import ApplicationError


def price_get_active(*, product_code: str, billing_cycle: str, currency: str) -> Price | None:
    """The price a plan sells at now, with its product, in one query; None when the plan or cycle is not on sale."""
    return (
        Price.objects.select_related("product")
        .filter(product__code=product_code, product__active=True, billing_cycle=billing_cycle, currency=currency,
                active=True)
        .first()
    )


def coupon_get_redeemable(*, code: str, product_id: int, billing_cycle: str, currency: str, at: datetime) -> Coupon:
    """The coupon a customer typed, if it can be used for this purchase at `at`; else ApplicationError saying why.

    One query: the coupon row (codes match without regard to case) with its product restriction evaluated in the
    database, so that each reason for refusal can be told apart. Codes: coupon_invalid (unknown, inactive, or not
    for this plan, cycle or currency) and coupon_expired (outside its validity window, or used up).
    """
    restrictions = Coupon.products.through.objects.filter(coupon_id=OuterRef("pk"))
    coupon = (
        Coupon.objects.alias(code_lower=Lower("code"))
        # Lower on both sides, as the case-insensitive unique index does, so the index serves the lookup.
        .filter(code_lower=Lower(Value(code)))
        .annotate(restricted_to_products=Exists(restrictions),
                  allowed_for_product=Exists(restrictions.filter(product_id=product_id)))
        .first()
    )

    def refuse(message: str, error_code: str) -> ApplicationError:
        return ApplicationError(message, code=error_code, field="couponCode")

    if coupon is None or not coupon.active:
        raise refuse(f"Coupon {code} is not valid.", "coupon_invalid")
    if coupon.restricted_to_products and not coupon.allowed_for_product:
        raise refuse(f"Coupon {coupon.code} is not valid for this plan.", "coupon_invalid")
    if coupon.billing_cycles and billing_cycle not in coupon.billing_cycles:
        raise refuse(f"Coupon {coupon.code} is not valid for {billing_cycle} billing.", "coupon_invalid")
    if coupon.amount_off is not None and coupon.currency != currency:
        raise refuse(f"Coupon {coupon.code} is not valid for payments in {currency.upper()}.", "coupon_invalid")
    if coupon.valid_from is not None and at < coupon.valid_from:
        raise refuse(f"Coupon {coupon.code} is not valid yet: it starts on {_day(coupon.valid_from)}.",
                     "coupon_expired")
    if coupon.valid_until is not None and at >= coupon.valid_until:
        raise refuse(f"Coupon {coupon.code} expired on {_day(coupon.valid_until)}.", "coupon_expired")
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise refuse(f"Coupon {coupon.code} has reached its redemption limit.", "coupon_expired")
    return coupon


def coupon_discount_amount(*, coupon: Coupon, amount: int) -> int:
    """What the coupon takes off an invoice of `amount` cents, in cents: never more than the amount.

    A percentage is rounded to the nearest cent, half a cent up: Stripe's documented rule for the amounts it
    computes ("0.025 rounds up to 0.03", support.stripe.com, rounding rules).
    """
    if coupon.percent_off is not None:
        discount = int((Decimal(amount) * Decimal(str(coupon.percent_off)) / 100).quantize(Decimal(1), ROUND_HALF_UP))
    else:
        discount = coupon.amount_off
    return min(discount, amount)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")

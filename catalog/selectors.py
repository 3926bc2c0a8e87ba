"""Reads of the catalog: the price a plan sells at, whether a coupon applies, what it takes off, and the public list
of what is on sale."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Lower

from catalog.models import CYCLE_TERMS, BillingCycle, Coupon, Price, Product
from core.exceptions import ApplicationError


def price_get_active(*, product_code: str, billing_cycle: str, currency: str) -> Price | None:
    """The price a plan sells at now, with its product, in one query; None when the plan or cycle is not on sale."""
    return (
        Price.objects.select_related("product")
        .filter(
            product__code=product_code,
            product__active=True,
            billing_cycle=billing_cycle,
            currency=currency,
            active=True,
        )
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
        .annotate(
            restricted_to_products=Exists(restrictions),
            allowed_for_product=Exists(restrictions.filter(product_id=product_id)),
        )
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
        raise refuse(
            f"Coupon {coupon.code} is not valid yet: it starts on {_day(coupon.valid_from)}.", "coupon_expired"
        )
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


def catalog_version() -> tuple:
    """A mark that changes whenever what the public catalog shows may have: one cheap query over the price rows.

    Every write to a product or a price moves its `updated_at` (the admin, the catalog loader, price_save), and a
    price's product is in the same row of the join, so a product renamed or taken off sale moves the mark too; the
    count catches a price added with an old clock or removed. Written as SQL: the ORM's compilation of this
    aggregate costs three times the query itself, on a path asked for as often as the health check.
    """
    with connection.cursor() as cursor:
        cursor.execute(_VERSION_SQL)
        return cursor.fetchone()


_VERSION_SQL = (
    f"SELECT count(*), max(price.updated_at), max(product.updated_at) FROM {Price._meta.db_table} price "
    f"JOIN {Product._meta.db_table} product ON product.id = price.product_id"
)


def catalog_public() -> dict:
    """What the marketing site advertises: active plans in their order, each with its active prices by cycle
    (cents and currency, the per-month equivalent, trial days). One query."""
    prices = (
        Price.objects.select_related("product")
        .filter(active=True, product__active=True)
        .order_by("product__sort_order", "product__code", "currency", "id")
    )
    plans: dict[int, dict] = {}
    for price in prices:
        product = price.product
        plan = plans.get(product.pk)
        if plan is None:
            plan = plans[product.pk] = {
                "code": product.code,
                "name": product.name,
                "type": product.type,
                "description": product.description,
                "prices": [],
            }
        months = CYCLE_TERMS[BillingCycle(price.billing_cycle)].months
        plan["prices"].append(
            {
                "billing_cycle": price.billing_cycle,
                "months": months,
                "amount": price.unit_amount,
                "currency": price.currency,
                "amount_per_month": _per_month(price.unit_amount, months),
                "trial_days": price.trial_days,
            }
        )
    for plan in plans.values():
        plan["prices"].sort(key=lambda entry: (entry["currency"], entry["months"]))
    return {"plans": list(plans.values())}


def _per_month(amount: int, months: int) -> int:
    """Cents a month, rounded to the nearest cent (half up), as an advertised "from $x/mo" would show."""
    return int((Decimal(amount) / months).quantize(Decimal(1), ROUND_HALF_UP))


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")

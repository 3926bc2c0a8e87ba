"""The catalog reads the checkout uses: the active price of a plan, a redeemable coupon, and the discount it gives."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.models import Coupon
from catalog.selectors import coupon_discount_amount, coupon_get_redeemable, price_get_active
from core.exceptions import ApplicationError
from tests.catalog.factories import CouponFactory, PriceFactory, ProductFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# --- price_get_active -------------------------------------------------------------------------------------------------


def test_price_get_active_returns_the_price_with_its_product_in_one_query(django_assert_num_queries):
    price = PriceFactory(product__code="starter", billing_cycle="yearly", unit_amount=3588)
    PriceFactory(product=price.product, billing_cycle="yearly", unit_amount=2990, active=False)

    with django_assert_num_queries(1):
        found = price_get_active(product_code="starter", billing_cycle="yearly", currency="usd")
        assert found.product.code == "starter"

    assert found == price


@pytest.mark.parametrize(
    ("product_active", "price_active", "lookup"),
    [
        (False, True, {}),
        (True, False, {}),
        (True, True, {"billing_cycle": "weekly"}),
        (True, True, {"billing_cycle": "yearly"}),
        (True, True, {"currency": "eur"}),
        (True, True, {"product_code": "nope"}),
    ],
    ids=[
        "product-inactive",
        "price-inactive",
        "unknown-cycle",
        "no-price-for-cycle",
        "other-currency",
        "unknown-product",
    ],
)
def test_price_get_active_returns_none_when_the_plan_is_not_on_sale(product_active, price_active, lookup):
    PriceFactory(product__code="starter", product__active=product_active, active=price_active)

    arguments = {"product_code": "starter", "billing_cycle": "monthly", "currency": "usd", **lookup}

    assert price_get_active(**arguments) is None


# --- coupon_get_redeemable --------------------------------------------------------------------------------------------


def redeem(
    code: str = "WELCOME10",
    *,
    product_id: int,
    billing_cycle: str = "monthly",
    currency: str = "usd",
    at: datetime = NOW,
) -> Coupon:
    return coupon_get_redeemable(
        code=code, product_id=product_id, billing_cycle=billing_cycle, currency=currency, at=at
    )


def test_coupon_is_found_without_regard_to_case_in_one_query(django_assert_num_queries):
    coupon = CouponFactory(code="WELCOME10")
    product = ProductFactory()

    with django_assert_num_queries(1):
        found = redeem("welcome10", product_id=product.pk)

    assert found == coupon


def test_coupon_restricted_to_products_is_usable_for_those_products():
    starter, premium = ProductFactory(), ProductFactory()
    coupon = CouponFactory(code="WELCOME10", products=[starter, premium])

    assert redeem(product_id=premium.pk) == coupon


def test_coupon_limited_to_cycles_and_windows_is_usable_inside_them():
    product = ProductFactory()
    coupon = CouponFactory(
        code="WELCOME10",
        billing_cycles=["yearly", "triennial"],
        valid_from=NOW,
        valid_until=NOW + timedelta(days=1),
        max_redemptions=5,
        times_redeemed=4,
    )

    assert redeem(product_id=product.pk, billing_cycle="triennial") == coupon


def test_an_amount_off_coupon_is_usable_in_its_own_currency_and_a_percentage_in_any():
    product = ProductFactory()
    CouponFactory(code="FIVE", percent_off=None, amount_off=500, currency="eur")
    CouponFactory(code="TEN", percent_off=Decimal("10"))

    assert redeem("FIVE", product_id=product.pk, currency="eur").code == "FIVE"
    assert redeem("TEN", product_id=product.pk, currency="eur").code == "TEN"


@pytest.mark.parametrize(
    ("coupon", "code", "message"),
    [
        ({"code": "OTHER"}, "coupon_invalid", "Coupon WELCOME10 is not valid."),
        ({"active": False}, "coupon_invalid", "Coupon WELCOME10 is not valid."),
        ({"billing_cycles": ["yearly"]}, "coupon_invalid", "Coupon WELCOME10 is not valid for monthly billing."),
        (
            {"percent_off": None, "amount_off": 500, "currency": "eur"},
            "coupon_invalid",
            "Coupon WELCOME10 is not valid for payments in USD.",
        ),
        (
            {"valid_from": NOW + timedelta(seconds=1)},
            "coupon_expired",
            "Coupon WELCOME10 is not valid yet: it starts on 2026-11-26.",
        ),
        ({"valid_until": NOW}, "coupon_expired", "Coupon WELCOME10 expired on 2026-11-26."),
        ({"valid_until": NOW - timedelta(days=30)}, "coupon_expired", "Coupon WELCOME10 expired on 2026-10-27."),
        (
            {"max_redemptions": 3, "times_redeemed": 3},
            "coupon_expired",
            "Coupon WELCOME10 has reached its redemption limit.",
        ),
    ],
    ids=[
        "unknown",
        "inactive",
        "other-cycle",
        "other-currency",
        "not-yet-valid",
        "expired-at-the-instant",
        "expired",
        "used-up",
    ],
)
def test_coupon_that_cannot_be_used_is_refused_with_the_reason_in_one_query(
    django_assert_num_queries, coupon, code, message
):
    product = ProductFactory()
    CouponFactory(**{"code": "WELCOME10", **coupon})

    with django_assert_num_queries(1), pytest.raises(ApplicationError) as raised:
        redeem(product_id=product.pk)

    assert (raised.value.code, raised.value.message, raised.value.field, raised.value.status_code) == (
        code,
        message,
        "couponCode",
        400,
    )


def test_coupon_restricted_to_other_products_is_refused_for_this_plan_in_one_query(django_assert_num_queries):
    product = ProductFactory()
    CouponFactory(code="WELCOME10", products=[ProductFactory()])

    with django_assert_num_queries(1), pytest.raises(ApplicationError) as raised:
        redeem(product_id=product.pk)

    assert (raised.value.code, raised.value.message) == (
        "coupon_invalid",
        "Coupon WELCOME10 is not valid for this plan.",
    )


# --- coupon_discount_amount -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent_off", "amount", "discount"),
    [
        ("10", 799, 80),  # 79.9: the seed's WELCOME10 on Hosting Starter monthly
        ("10", 3588, 359),  # 358.8
        ("10", 5364, 536),  # 536.4
        ("15", 3490, 524),  # 523.5: half a cent rounds up
        ("10", 5, 1),  # 0.5: up, not to the even 0
        ("12.5", 4, 1),  # 0.5
        ("33.33", 100, 33),  # 33.33
        ("100", 799, 799),
    ],
)
def test_percentage_discount_is_rounded_to_the_nearest_cent_half_up(percent_off, amount, discount):
    coupon = Coupon(percent_off=Decimal(percent_off))

    assert coupon_discount_amount(coupon=coupon, amount=amount) == discount


@pytest.mark.parametrize(("amount_off", "amount", "discount"), [(500, 799, 500), (799, 799, 799), (1000, 799, 799)])
def test_amount_discount_never_exceeds_the_amount(amount_off, amount, discount):
    coupon = Coupon(amount_off=amount_off, currency="usd")

    assert coupon_discount_amount(coupon=coupon, amount=amount) == discount


def test_discount_of_a_coupon_read_from_the_database():
    CouponFactory(code="WELCOME10", percent_off=Decimal("10"))

    assert coupon_discount_amount(coupon=Coupon.objects.get(), amount=799) == 80

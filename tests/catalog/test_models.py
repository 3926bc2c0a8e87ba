"""The database constraints the catalog relies on, checked on the database itself."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from catalog.models import Coupon
from tests.catalog.factories import CouponFactory, PriceFactory

pytestmark = pytest.mark.django_db


def test_a_second_active_price_for_the_same_product_cycle_and_currency_is_refused():
    price = PriceFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        PriceFactory(product=price.product, billing_cycle=price.billing_cycle, currency=price.currency)


def test_an_inactive_price_beside_the_active_one_is_allowed():
    price = PriceFactory()

    PriceFactory(
        product=price.product, billing_cycle=price.billing_cycle, currency=price.currency, active=False, unit_amount=699
    )
    PriceFactory(
        product=price.product, billing_cycle=price.billing_cycle, currency=price.currency, active=False, unit_amount=599
    )

    assert price.product.prices.filter(active=True).get() == price


def test_other_cycles_and_currencies_each_have_their_own_active_price():
    price = PriceFactory()

    PriceFactory(product=price.product, billing_cycle="yearly")
    PriceFactory(product=price.product, currency="eur")

    assert price.product.prices.filter(active=True).count() == 3


def test_a_price_of_zero_is_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceFactory(unit_amount=0)


def test_coupon_codes_are_unique_without_regard_to_case():
    CouponFactory(code="WELCOME10")

    with pytest.raises(IntegrityError), transaction.atomic():
        CouponFactory(code="welcome10")


def test_a_coupon_with_both_a_percentage_and_an_amount_is_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        CouponFactory(percent_off=10, amount_off=500)


def test_a_zero_amount_off_fails_validation():
    coupon = Coupon(code="ZERO", percent_off=None, amount_off=0, currency="usd", duration="once")

    with pytest.raises(ValidationError) as raised:
        coupon.full_clean()

    assert "amount_off" in raised.value.message_dict

"""Factories for the catalog models: a sellable product, an active monthly price, a 10 % coupon for everything."""

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from catalog.models import BillingCycle, Coupon, CouponDuration, Price, Product, ProductType


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.LazyAttribute(lambda product: f"Plan {product.code}")
    type = ProductType.HOSTING
    description = "A plan made by a test."
    active = True
    sort_order = factory.Sequence(lambda n: n)


class PriceFactory(DjangoModelFactory):
    class Meta:
        model = Price

    product = factory.SubFactory(ProductFactory)
    billing_cycle = BillingCycle.MONTHLY
    currency = "usd"
    unit_amount = 799
    active = True
    trial_days = None


class CouponFactory(DjangoModelFactory):
    """Pass `products=[...]` to restrict the coupon to those products."""

    class Meta:
        model = Coupon
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"SAVE{n}")
    name = factory.LazyAttribute(lambda coupon: f"Coupon {coupon.code}")
    percent_off = Decimal("10.00")
    amount_off = None
    currency = "usd"
    duration = CouponDuration.ONCE
    active = True

    @factory.post_generation
    def products(self, create, extracted, **kwargs):
        if create and extracted:
            self.products.set(extracted)

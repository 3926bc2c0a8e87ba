"""A checkout session as create-session records it, for tests that start after the customer was sent to Stripe."""

from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from checkout.models import CheckoutSession
from tests.catalog.factories import PriceFactory


class CheckoutSessionFactory(DjangoModelFactory):
    class Meta:
        model = CheckoutSession

    price = factory.SubFactory(PriceFactory)
    stripe_session_id = factory.Sequence(lambda n: f"cs_test_factory{n:06d}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    customer_name = "Jane Customer"
    product_code = factory.LazyAttribute(lambda s: s.price.product.code)
    billing_cycle = factory.LazyAttribute(lambda s: s.price.billing_cycle)
    amount = factory.LazyAttribute(lambda s: s.price.unit_amount)
    currency = "usd"
    domain_info = {"mode": "new-or-transfer", "value": "example.com"}
    stripe_url = factory.LazyAttribute(lambda s: f"https://checkout.stripe.test/c/pay/{s.stripe_session_id}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=23))
    request_fingerprint = factory.Sequence(lambda n: f"{n:064d}")


def paid_stripe_session(session: CheckoutSession, **overrides) -> dict:
    """What Stripe says of this session once the customer paid: the fields fulfilment reads, Stripe's names."""
    data = {
        "id": session.stripe_session_id,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "mode": "subscription",
        "amount_subtotal": session.amount,
        "amount_total": session.amount_due_first,
        "currency": session.currency,
        "customer": f"cus_{session.pk.hex[:14]}",
        "subscription": f"sub_{session.pk.hex[:14]}",
        "client_reference_id": str(session.pk),
        "customer_email": session.email,
        "metadata": {"checkout_session_id": str(session.pk)},
    }
    data.update(overrides)
    return data

"""Factories for accounts: a user without a usable password (as an order makes one), its customer, a subscription."""

import factory
from factory.django import DjangoModelFactory

from accounts.models import Customer, CustomerMembership, CustomerRole, Subscription, User
from tests.checkout.factories import CheckoutSessionFactory


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = "Jane Customer"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, **kwargs)


class CustomerFactory(DjangoModelFactory):
    """A customer owned by a user with the same e-mail address."""

    class Meta:
        model = Customer
        skip_postgeneration_save = True

    name = "Jane Customer"
    email = factory.Sequence(lambda n: f"customer{n}@example.com")

    @factory.post_generation
    def owner(self, create, extracted, **kwargs):
        if create:
            user = extracted or UserFactory(email=self.email, full_name=self.name)
            CustomerMembership.objects.create(customer=self, user=user, role=CustomerRole.OWNER)


class SubscriptionFactory(DjangoModelFactory):
    """The subscription a paid checkout session made; its customer's e-mail is the session's."""

    class Meta:
        model = Subscription

    checkout_session = factory.SubFactory(CheckoutSessionFactory)
    customer = factory.LazyAttribute(
        lambda s: CustomerFactory(email=s.checkout_session.email, name=s.checkout_session.customer_name or "")
    )
    price = factory.LazyAttribute(lambda s: s.checkout_session.price)
    product = factory.LazyAttribute(lambda s: s.price.product)
    status = "active"
    billing_cycle = factory.LazyAttribute(lambda s: s.checkout_session.billing_cycle)
    amount = factory.LazyAttribute(lambda s: s.checkout_session.amount)
    currency = factory.LazyAttribute(lambda s: s.checkout_session.currency)
    domain = factory.LazyAttribute(lambda s: (s.checkout_session.domain_info or {}).get("value", ""))

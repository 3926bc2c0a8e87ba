"""Factories for provisioning: a job for a paid subscription, a hosting account, an e-mail of an order."""

import uuid

import factory
from factory.django import DjangoModelFactory

from provisioning.backends import ProvisioningRequest
from provisioning.models import EmailNotification, EmailPurpose, HostingAccount, ProvisioningJob
from tests.accounts.factories import SubscriptionFactory
from tests.checkout.factories import CheckoutSessionFactory


def subscription_for_domain(domain: str, **kwargs):
    """A subscription ordered for `domain`: the simulated backend's behaviour follows the domain's first label."""
    return SubscriptionFactory(checkout_session__domain_info={"mode": "new-or-transfer", "value": domain}, **kwargs)


class ProvisioningJobFactory(DjangoModelFactory):
    """A job as provisioning_job_create leaves it: pending, never sent. Made without sending a task."""

    class Meta:
        model = ProvisioningJob

    subscription = factory.SubFactory(SubscriptionFactory)
    action = "provision"
    backend = "simulated"
    max_attempts = 5


class HostingAccountFactory(DjangoModelFactory):
    class Meta:
        model = HostingAccount

    subscription = factory.SubFactory(SubscriptionFactory)
    username = factory.Sequence(lambda n: f"site{n}")
    server = "web01.sim.migrahosting.test"
    domain = factory.LazyAttribute(lambda a: a.subscription.domain)
    panel_reference = factory.Sequence(lambda n: f"sim-{n:012d}")


class EmailNotificationFactory(DjangoModelFactory):
    """An e-mail as email_notification_create leaves it: pending, never sent. Made without sending a task."""

    class Meta:
        model = EmailNotification

    checkout_session = factory.SubFactory(CheckoutSessionFactory)
    purpose = EmailPurpose.ORDER_CONFIRMATION
    to = factory.LazyAttribute(lambda e: e.checkout_session.email)


def provisioned_subscription(domain: str = "example.com", **kwargs):
    """A subscription whose provisioning succeeded: its job succeeded and its account is active."""
    subscription = subscription_for_domain(domain, **kwargs)
    ProvisioningJobFactory(subscription=subscription, status="succeeded", attempts=1)
    HostingAccountFactory(subscription=subscription)
    return subscription


def provisioning_request(**overrides) -> ProvisioningRequest:
    """A setup request as the worker hands it to a backend, with a fresh idempotency key unless one is given."""
    fields = {
        "idempotency_key": str(uuid.uuid4()),
        "job_id": 1,
        "attempt": 1,
        "subscription_id": 1,
        "product_code": "starter",
        "billing_cycle": "monthly",
        "domain": "example.com",
        "customer_email": "ada@example.com",
        "customer_name": "Ada",
    }
    return ProvisioningRequest(**{**fields, **overrides})

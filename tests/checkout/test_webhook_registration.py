"""Registering our webhook endpoint with Stripe (the sandbox over HTTP): created once with every event type we
handle, kept when it is already right, widened in place when a release listens to more events."""

import pytest
from djstripe.models import WebhookEndpoint

from checkout.webhook_endpoints import webhook_endpoint_register
from core.stripe_api import stripe_client

pytestmark = pytest.mark.django_db
BASE = "https://checkout.example.com"


def test_the_endpoint_is_registered_for_every_event_we_handle(stripe_sandbox, settings):
    endpoint, created = webhook_endpoint_register(base_url=BASE)

    remote = stripe_client().v1.webhook_endpoints.retrieve(endpoint.id)
    assert created
    assert set(remote.enabled_events) == set(settings.STRIPE_WEBHOOK_EVENTS)
    assert {
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.deleted",
        "charge.refunded",
        "test_helpers.test_clock.ready",
    } <= set(remote.enabled_events)


def test_registering_again_keeps_the_endpoint_and_its_secret(stripe_sandbox):
    first, _ = webhook_endpoint_register(base_url=BASE)

    second, created = webhook_endpoint_register(base_url=BASE)

    assert (second.id, second.secret, created) == (first.id, first.secret, False)
    assert len(stripe_client().v1.webhook_endpoints.list().data) == 1


def test_an_endpoint_registered_by_an_older_release_is_widened_in_place(stripe_sandbox, settings):
    everything = list(settings.STRIPE_WEBHOOK_EVENTS)
    settings.STRIPE_WEBHOOK_EVENTS = everything[:4]  # the checkout events the first release listened to
    old, _ = webhook_endpoint_register(base_url=BASE)
    settings.STRIPE_WEBHOOK_EVENTS = everything

    endpoint, created = webhook_endpoint_register(base_url=BASE)

    remote = stripe_client().v1.webhook_endpoints.retrieve(endpoint.id)
    assert (endpoint.id, endpoint.secret, created) == (old.id, old.secret, False)
    assert set(remote.enabled_events) == set(everything)
    assert set(WebhookEndpoint.objects.get(id=endpoint.id).enabled_events) == set(everything)

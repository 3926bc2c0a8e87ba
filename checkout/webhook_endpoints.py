"""Registering our webhook endpoint with whichever Stripe the settings point at (the sandbox or real test mode)."""

import uuid

import stripe
from django.conf import settings
from django.db import transaction
from djstripe.models import WebhookEndpoint

from core.stripe_api import stripe_client


def webhook_endpoint_register(*, base_url: str) -> tuple[WebhookEndpoint, bool]:
    """Our endpoint at Stripe and its signing secret stored locally; (endpoint, created).

    Running it again keeps the endpoint Stripe still knows; one Stripe has forgotten (a restarted sandbox, an
    endpoint deleted in the dashboard) is replaced.
    """
    prefix = f"{base_url.rstrip('/')}/api/webhooks/stripe/"
    for endpoint in WebhookEndpoint.objects.filter(url__startswith=prefix, livemode=settings.STRIPE_LIVE_MODE):
        try:
            remote = stripe_client().v1.webhook_endpoints.retrieve(endpoint.id)
        except stripe.InvalidRequestError:
            endpoint.delete()
            continue
        if remote.status != "enabled":
            continue
        wanted = set(settings.STRIPE_WEBHOOK_EVENTS)
        if not wanted <= set(remote.enabled_events) and "*" not in remote.enabled_events:
            # A new release listens to more events: the endpoint Stripe knows is widened, its secret kept.
            events = sorted(wanted | set(remote.enabled_events))
            stripe_client().v1.webhook_endpoints.update(endpoint.id, {"enabled_events": events})
            endpoint.enabled_events = events
            endpoint.save(update_fields=["enabled_events"])
        return endpoint, False
    endpoint_uuid = uuid.uuid4()
    created = stripe_client().v1.webhook_endpoints.create(
        {
            "url": f"{prefix}{endpoint_uuid}/",
            "enabled_events": settings.STRIPE_WEBHOOK_EVENTS,
            "api_version": settings.STRIPE_API_VERSION,
            "description": "Checkout service: fulfilment of paid checkout sessions and the subscriptions' life",
            "metadata": {"djstripe_uuid": str(endpoint_uuid)},
        }
    )
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            id=created.id,
            url=created.url,
            enabled_events=list(created.enabled_events),
            status="enabled",
            api_version=created.get("api_version") or settings.STRIPE_API_VERSION,
            secret=created.secret,  # Stripe shows it once, on creation
            livemode=bool(created.livemode),
            djstripe_uuid=endpoint_uuid,
        )
    return endpoint, True

"""The Stripe client the service uses, pointed at whichever Stripe the settings name (real Stripe or the sandbox)."""

import functools

import stripe
from django.conf import settings

from core.observability.metrics import InstrumentedRequestsClient


def stripe_client() -> stripe.StripeClient:
    return _client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        settings.STRIPE_API_VERSION,
        settings.STRIPE_TIMEOUT_SECONDS,
        settings.STRIPE_MAX_NETWORK_RETRIES,
    )


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_base: str, api_version: str, timeout: float, retries: int) -> stripe.StripeClient:
    # One client per configuration: its requests session keeps connections to Stripe alive between calls. Every
    # request is timed and counted (stripe_api_request_* metrics).
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        stripe_version=api_version,
        max_network_retries=retries,
        http_client=InstrumentedRequestsClient(timeout=timeout),
    )

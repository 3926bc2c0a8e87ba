"""The customer's way to Stripe's Billing Portal ("Manage payment method"): a portal session for their Stripe customer,
made when they click, that sends them back to our page when they are done."""

import logging
from urllib.parse import urlsplit

import stripe

from accounts.models import Customer, Subscription
from core.exceptions import ApplicationError
from core.stripe_api import stripe_client

logger = logging.getLogger(__name__)

# What the portal may open straight onto (Stripe's flow_data.type); None: the portal's home page.
PORTAL_FLOWS = ("payment_method_update",)


def billing_portal_url(
    *,
    return_url: str,
    subscription: Subscription | None = None,
    customer: Customer | None = None,
    flow: str | None = None,
) -> str:
    """The URL of a new Billing Portal session (`POST /v1/billing_portal/sessions`) for the subscription's Stripe
    customer, or the customer's; redirect the customer to it at once (a session is short-lived and single-use).

    The caller checks that the user may manage this customer's billing. `return_url`: absolute, http(s). Raises
    ApplicationError when there is no Stripe customer or Stripe cannot make the session (nothing is shown of what
    Stripe said; the log has it)."""
    if (subscription is None) == (customer is None):
        raise ValueError("Give a subscription or a customer (one of them)")
    if urlsplit(return_url).scheme not in ("http", "https") or not urlsplit(return_url).netloc:
        raise ValueError(f"return_url must be an absolute http(s) URL, not {return_url!r}")
    if flow is not None and flow not in PORTAL_FLOWS:
        raise ValueError(f"Unknown portal flow {flow!r} (one of {', '.join(PORTAL_FLOWS)})")
    stripe_customer_id = subscription.stripe_customer_id if subscription is not None else customer.stripe_customer_id
    if not stripe_customer_id:
        raise ApplicationError("There is no billing account to manage yet.", code="no_billing_account", status_code=404)
    params: dict = {"customer": stripe_customer_id, "return_url": return_url}
    if flow:
        params["flow_data"] = {"type": flow}
    try:
        session = stripe_client().v1.billing_portal.sessions.create(params)
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        logger.warning("Billing portal for %s: Stripe unreachable or busy: %s", stripe_customer_id, error)
        raise ApplicationError(
            "The billing portal could not be opened just now; try again in a minute.",
            code="payment_provider_unavailable",
            status_code=503,
        ) from error
    except stripe.StripeError as error:
        logger.error(
            "Billing portal for %s: Stripe refused (%s %s): %s",
            stripe_customer_id,
            error.http_status,
            error.code,
            error.user_message or error,
        )
        raise ApplicationError(
            "The billing portal could not be opened; please try again later or contact us.",
            code="billing_portal_unavailable",
            status_code=502,
        ) from error
    logger.info("Billing portal session %s for %s", session.id, stripe_customer_id)
    return session.url

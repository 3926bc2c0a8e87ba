"""Our calls to Stripe for checkout: the Checkout Session and the coupon behind a discount.

Every call carries an idempotency key derived from our own ids, so a retry never creates a second object, and every
Stripe failure becomes an `ApplicationError` the API can answer with; nothing here touches the database.
"""

import hashlib
import logging
from datetime import datetime

import stripe
from django.conf import settings
from django.core.cache import cache

from catalog.models import Coupon, Price
from core.exceptions import ApplicationError
from core.stripe_api import stripe_client

logger = logging.getLogger(__name__)

COUPON_SYNC_MARK_SECONDS = 24 * 60 * 60


def stripe_coupon_id(coupon: Coupon) -> str:
    """The Stripe coupon for our coupon's current terms: staff changing the terms makes a new Stripe coupon."""
    terms = f"{coupon.percent_off}|{coupon.amount_off}|{coupon.currency}|{coupon.duration}|{coupon.duration_in_months}"
    return f"{coupon.code.upper()}-{hashlib.sha256(terms.encode()).hexdigest()[:10]}"


def stripe_coupon_ensure(coupon: Coupon) -> str:
    """Create the Stripe coupon on first use; afterwards a cache mark saves the call."""
    coupon_id = stripe_coupon_id(coupon)
    mark = f"stripe-coupon:{settings.STRIPE_API_BASE}:{coupon_id}"
    if cache.get(mark):
        return coupon_id
    params: dict = {
        "id": coupon_id,
        "name": coupon.name or coupon.code,
        "duration": coupon.duration,
        "metadata": {"coupon_code": coupon.code},
    }
    if coupon.percent_off is not None:
        params["percent_off"] = str(coupon.percent_off)
    else:
        params["amount_off"] = coupon.amount_off
        params["currency"] = coupon.currency
    if coupon.duration == "repeating":
        params["duration_in_months"] = coupon.duration_in_months
    try:
        _call(lambda: stripe_client().v1.coupons.create(params, {"idempotency_key": f"coupon-create-{coupon_id}"}))
    except ApplicationError as error:
        if error.code != "resource_already_exists":
            raise
    cache.set(mark, True, COUPON_SYNC_MARK_SECONDS)
    return coupon_id


def stripe_coupon_forget(coupon: Coupon) -> None:
    cache.delete(f"stripe-coupon:{settings.STRIPE_API_BASE}:{stripe_coupon_id(coupon)}")


def stripe_checkout_session_create(
    *,
    checkout_id: str,
    price: Price,
    email: str,
    coupon_id: str | None,
    trial_days: int | None,
    expires_at: datetime,
    metadata: dict[str, str],
    stripe_customer_id: str | None = None,
    key_suffix: str = "",
) -> dict:
    """Create the Stripe session for our checkout id (Stripe's JSON); a retry with the same parameters gets the
    same session."""
    terms = price.cycle_terms
    params: dict = {
        "mode": "subscription",
        "line_items": [
            {
                "price_data": {
                    "currency": price.currency,
                    "product_data": {
                        "name": price.product.name,
                        "description": f"{price.product.type} - {price.billing_cycle}",
                        "metadata": {"product_code": price.product.code},
                    },
                    "unit_amount": price.unit_amount,
                    "recurring": {"interval": terms.interval, "interval_count": terms.interval_count},
                },
                "quantity": 1,
            }
        ],
        "client_reference_id": checkout_id,
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": settings.CHECKOUT_SUCCESS_URL,
        "cancel_url": settings.CHECKOUT_CANCEL_URL,
        "expires_at": int(expires_at.timestamp()),
    }
    if stripe_customer_id:
        # A returning buyer: the same Stripe customer (Stripe takes the e-mail from it; both may not be given).
        params["customer"] = stripe_customer_id
    else:
        params["customer_email"] = email
    if trial_days:
        params["subscription_data"]["trial_period_days"] = trial_days
    if coupon_id:
        params["discounts"] = [{"coupon": coupon_id}]
    # Stripe replays a 500 for the key that got it, so after one the next attempt needs a fresh key; a
    # generation counter in the cache gives every attempt after a Stripe failure its own.
    generation_mark = f"stripe-session-key-generation:{checkout_id}"
    generation = cache.get(generation_mark, 0)
    key = f"checkout-session-create-{checkout_id}{key_suffix}" + (f"-g{generation}" if generation else "")
    try:
        # The raw call (StripeClient.raw_request, Stripe's JSON as a dict): we need two fields of the answer, and the
        # typed v1.checkout.sessions.create turns the whole session into nested StripeObjects. Measured for issue 11
        # by bench/micro_optimisations.py, both alternating in one process: 6.1 million instructions a call raw, 10.3
        # million typed (1.7x); a whole checkout in-process 26.9 against 31.5 million (+17 %); end to end through
        # gunicorn and the sandbox, 400 checkouts each interleaved, the typed call made a checkout 6.8 % slower
        # (median of the paired ratios; 95 % interval 5.4-8.1 %, 35.3 against 37.0 ms).
        return _call(
            lambda: stripe_client().raw_request("post", "/v1/checkout/sessions", idempotency_key=key, **params).data
        )
    except ApplicationError as error:
        if isinstance(error.__cause__, stripe.APIError):
            cache.set(generation_mark, generation + 1, 24 * 60 * 60)
        raise


def stripe_checkout_session_retrieve(stripe_session_id: str) -> stripe.checkout.Session:
    return _call(lambda: stripe_client().v1.checkout.sessions.retrieve(stripe_session_id))


def stripe_checkout_session_expire(stripe_session_id: str, *, idempotency_key: str) -> stripe.checkout.Session:
    return _call(
        lambda: stripe_client().v1.checkout.sessions.expire(
            stripe_session_id, options={"idempotency_key": idempotency_key}
        )
    )


def _call(request):
    """Run one Stripe request; turn Stripe's failures into errors a customer can be shown."""
    try:
        return request()
    except stripe.InvalidRequestError as error:
        code = error.code or "invalid_request"
        if code in ("resource_already_exists", "resource_missing"):
            raise ApplicationError(
                error.user_message or str(error), code=code, status_code=502, field=getattr(error, "param", None)
            ) from error
        logger.error("Stripe rejected our request: %s (param %s)", error.user_message, getattr(error, "param", None))
        raise _provider_error("rejected the request", 502) from error
    except (stripe.AuthenticationError, stripe.PermissionError) as error:
        logger.critical("Stripe refused our API key: %s", error.user_message)
        raise _provider_error("is misconfigured on our side", 502) from error
    except stripe.RateLimitError as error:
        raise _provider_error("is busy", 503) from error
    except stripe.APIConnectionError as error:
        logger.warning("Stripe unreachable: %s", error)
        raise _provider_error("could not be reached", 503) from error
    except stripe.StripeError as error:
        logger.warning("Stripe failed: %s %s", error.http_status, error.user_message)
        raise _provider_error("failed", 502) from error


def _provider_error(what: str, status_code: int) -> ApplicationError:
    return ApplicationError(
        f"The payment provider {what}; nothing was charged. Please try again in a minute.",
        code="payment_provider_unavailable" if status_code == 503 else "payment_provider_error",
        status_code=status_code,
    )

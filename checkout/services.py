"""Writes of checkout: recording a customer's intent to buy as a Stripe Checkout Session priced from our catalog."""

import hashlib
import json
import logging
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.utils import timezone

from catalog.models import BillingCycle
from catalog.selectors import coupon_discount_amount, coupon_get_redeemable, price_get_active
from checkout.models import CheckoutSession, CheckoutSessionStatus
from checkout.selectors import checkout_session_latest_for_fingerprint
from checkout.stripe_checkout import stripe_checkout_session_create, stripe_coupon_ensure, stripe_coupon_forget
from core.exceptions import ApplicationError

logger = logging.getLogger(__name__)

# A retry of a request that never got its answer lands in the same window, so it derives the same ids and Stripe
# replays the session it already made instead of making a second one.
IDEMPOTENCY_WINDOW_SECONDS = 600
# A pending session is handed out again only while the customer still has this long to pay.
REUSE_MIN_REMAINING = timedelta(minutes=15)
# Stripe accepts expiries from 30 minutes to 24 hours ahead; a window's start can be up to 10 minutes in the past.
TTL_BOUNDS = (timedelta(minutes=40), timedelta(hours=24))
_ID_NAMESPACE = uuid.UUID("0b6f1c3e-5d7a-4f43-9a59-6c1f7f4c2a10")


def checkout_session_create(
    *,
    plan_code: str,
    billing_cycle: BillingCycle,
    email: str,
    customer_name: str | None = None,
    coupon_code: str | None = None,
    domain: dict | None = None,
    trial: bool = False,
    client_idempotency_key: str | None = None,
) -> CheckoutSession:
    """Create (or, for a repeated request, return) the checkout session for one plan and cycle.

    At most four queries: the latest session for this request, the price, the coupon, the insert. Stripe is called
    outside any transaction; the row is written only after Stripe answered, so a failure leaves nothing behind.
    """
    now = timezone.now()
    fingerprint = _request_fingerprint(
        plan_code=plan_code, billing_cycle=billing_cycle, email=email, customer_name=customer_name,
        coupon_code=coupon_code, domain=domain, trial=trial, client_idempotency_key=client_idempotency_key,
    )
    latest = checkout_session_latest_for_fingerprint(fingerprint=fingerprint)
    if latest and latest.status == CheckoutSessionStatus.PENDING and latest.expires_at - now >= REUSE_MIN_REMAINING:
        return latest

    price = price_get_active(product_code=plan_code, billing_cycle=billing_cycle, currency=settings.CHECKOUT_CURRENCY)
    if price is None:
        raise ApplicationError(f"No active price for plan {plan_code} ({billing_cycle})",
                               code="plan_unavailable", field="planId")
    trial_days = None
    if trial:
        if not price.trial_days:
            raise ApplicationError(f"Plan {plan_code} ({billing_cycle}) has no free trial",
                                   code="trial_unavailable", field="trialActive")
        trial_days = price.trial_days
    coupon = None
    amount_discount = 0
    if coupon_code:
        coupon = coupon_get_redeemable(code=coupon_code, product_id=price.product_id,
                                       billing_cycle=billing_cycle, currency=price.currency, at=now)
        amount_discount = coupon_discount_amount(coupon=coupon, amount=price.unit_amount)

    window = int(now.timestamp()) // IDEMPOTENCY_WINDOW_SECONDS
    checkout_id = uuid.uuid5(_ID_NAMESPACE, f"{fingerprint}:{latest.pk if latest else '-'}:{window}")
    expires_at = _expiry_for_window(window)
    metadata = {
        "checkout_session_id": str(checkout_id),
        "product_code": price.product.code,
        "billing_cycle": billing_cycle,
        "price_id": str(price.pk),
    }
    if coupon:
        metadata["coupon_code"] = coupon.code
    if domain:
        metadata["domain"] = domain["value"]

    stripe_session = _stripe_session_create(
        checkout_id=checkout_id, price=price, email=email, coupon=coupon, trial_days=trial_days,
        expires_at=expires_at, metadata=metadata,
    )
    session = CheckoutSession(
        id=checkout_id,
        stripe_session_id=stripe_session.id,
        email=email,
        customer_name=customer_name,
        product_code=price.product.code,
        billing_cycle=billing_cycle,
        amount=price.unit_amount,
        currency=price.currency,
        coupon_code=coupon.code if coupon else None,
        domain_info=domain,
        status=CheckoutSessionStatus.PENDING,
        metadata=metadata,
        price=price,
        amount_discount=amount_discount,
        trial_days=trial_days,
        stripe_url=stripe_session.url,
        expires_at=expires_at,
        request_fingerprint=fingerprint,
    )
    # A concurrent twin of this request derived the same id and got the same Stripe session: whichever insert
    # comes second is a no-op, and both answer with the one session.
    CheckoutSession.objects.bulk_create([session], ignore_conflicts=True)
    return session


def _stripe_session_create(*, checkout_id, price, email, coupon, trial_days, expires_at, metadata):
    params = dict(checkout_id=str(checkout_id), price=price, email=email, trial_days=trial_days,
                  expires_at=expires_at, metadata=metadata)
    if coupon is None:
        return stripe_checkout_session_create(coupon_id=None, **params)
    try:
        return stripe_checkout_session_create(coupon_id=stripe_coupon_ensure(coupon), **params)
    except ApplicationError as error:
        if error.code != "resource_missing":
            raise
    # Stripe no longer knows the coupon our cache said it had (deleted in the dashboard, a fresh sandbox): create
    # it again and retry under a new key, since Stripe replays the failed answer for the old one.
    logger.warning("Stripe lost coupon %s; creating it again", coupon.code)
    stripe_coupon_forget(coupon)
    return stripe_checkout_session_create(coupon_id=stripe_coupon_ensure(coupon), key_suffix="-coupon-resync", **params)


def _request_fingerprint(**normalized) -> str:
    return hashlib.sha256(json.dumps(normalized, sort_keys=True, default=str).encode()).hexdigest()


def _expiry_for_window(window: int) -> datetime:
    ttl = timedelta(minutes=settings.CHECKOUT_SESSION_TTL_MINUTES)
    ttl = min(max(ttl, TTL_BOUNDS[0]), TTL_BOUNDS[1])
    return datetime.fromtimestamp(window * IDEMPOTENCY_WINDOW_SECONDS, tz=dt_timezone.utc) + ttl

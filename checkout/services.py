"""Writes of checkout: the session a customer starts, priced from our catalog, and its fulfilment once paid."""

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.selectors import customer_stripe_id_for_email
from accounts.services import customer_get_or_create_for_user, subscription_create, user_get_or_create
from catalog.models import BillingCycle, Coupon, Price
from catalog.selectors import coupon_discount_amount, coupon_get_redeemable, price_get_active
from checkout.models import CheckoutSession, CheckoutSessionStatus
from checkout.selectors import (
    checkout_session_get_by_stripe_id,
    checkout_session_get_with_order,
    checkout_session_latest_for_fingerprint,
    checkout_session_latest_for_idempotency_key,
)
from checkout.stripe_checkout import (
    stripe_checkout_session_create,
    stripe_checkout_session_retrieve,
    stripe_coupon_ensure,
    stripe_coupon_forget,
)
from core.exceptions import ApplicationError
from core.observability.metrics import checkout_funnel_count
from provisioning.models import EmailPurpose
from provisioning.services import email_notification_create, provisioning_job_create

logger = logging.getLogger(__name__)

# A retry of a request that never got its answer lands in the same window, so it derives the same ids and Stripe
# replays the session it already made instead of making a second one.
IDEMPOTENCY_WINDOW_SECONDS = 600
# A pending session is handed out again only while the customer still has this long to pay.
REUSE_MIN_REMAINING = timedelta(minutes=15)
# A client's Idempotency-Key binds it to one request body for this long, as Stripe keeps keys (then it is forgotten).
IDEMPOTENCY_KEY_MEMORY = timedelta(hours=24)
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

    At most five queries: the latest session for this request, the price, the coupon, a returning buyer's Stripe
    customer, the insert. Stripe is called
    outside any transaction; the row is written only after Stripe answered, so a failure leaves nothing behind.
    """
    now = timezone.now()
    fingerprint = _request_fingerprint(
        plan_code=plan_code,
        billing_cycle=billing_cycle,
        email=email,
        customer_name=customer_name,
        coupon_code=coupon_code,
        domain=domain,
        trial=trial,
        client_idempotency_key=client_idempotency_key,
    )
    latest = _latest_for_request(fingerprint=fingerprint, client_idempotency_key=client_idempotency_key, now=now)
    if latest and latest.status == CheckoutSessionStatus.PENDING and latest.expires_at - now >= REUSE_MIN_REMAINING:
        return latest

    terms = _checkout_terms(
        plan_code=plan_code, billing_cycle=billing_cycle, trial=trial, coupon_code=coupon_code, now=now
    )
    window = int(now.timestamp()) // IDEMPOTENCY_WINDOW_SECONDS
    checkout_id = uuid.uuid5(_ID_NAMESPACE, f"{fingerprint}:{latest.pk if latest else '-'}:{window}")
    expires_at = _expiry_for_window(window)
    metadata = _checkout_metadata(checkout_id=checkout_id, terms=terms, billing_cycle=billing_cycle, domain=domain)

    stripe_session = _stripe_session_create(
        checkout_id=checkout_id,
        price=terms.price,
        email=email,
        coupon=terms.coupon,
        trial_days=terms.trial_days,
        expires_at=expires_at,
        metadata=metadata,
        stripe_customer_id=customer_stripe_id_for_email(email=email),
    )
    session = CheckoutSession(
        id=checkout_id,
        stripe_session_id=stripe_session["id"],
        email=email,
        customer_name=customer_name,
        product_code=terms.price.product.code,
        billing_cycle=billing_cycle,
        amount=terms.price.unit_amount,
        currency=terms.price.currency,
        coupon_code=terms.coupon.code if terms.coupon else None,
        domain_info=domain,
        status=CheckoutSessionStatus.PENDING,
        metadata=metadata,
        price=terms.price,
        amount_discount=terms.amount_discount,
        trial_days=terms.trial_days,
        stripe_url=stripe_session["url"],
        expires_at=expires_at,
        request_fingerprint=fingerprint,
        idempotency_key=client_idempotency_key,
    )
    # A concurrent twin of this request derived the same id and got the same Stripe session: whichever insert
    # comes second is a no-op, and both answer with the one session.
    CheckoutSession.objects.bulk_create([session], ignore_conflicts=True)
    checkout_funnel_count("created")
    return session


@dataclass(frozen=True)
class _Terms:
    """What the customer is sold, from our catalog: the price, its free trial if asked for, the coupon and what it
    takes off."""

    price: Price
    trial_days: int | None
    coupon: Coupon | None
    amount_discount: int


def _checkout_terms(
    *, plan_code: str, billing_cycle: BillingCycle, trial: bool, coupon_code: str | None, now: datetime
) -> _Terms:
    """The price, trial and coupon for the request, or the error that names what is not on sale."""
    price = price_get_active(product_code=plan_code, billing_cycle=billing_cycle, currency=settings.CHECKOUT_CURRENCY)
    if price is None:
        raise ApplicationError(
            f"No active price for plan {plan_code} ({billing_cycle})", code="plan_unavailable", field="planId"
        )
    if trial and not price.trial_days:
        raise ApplicationError(
            f"Plan {plan_code} ({billing_cycle}) has no free trial", code="trial_unavailable", field="trialActive"
        )
    coupon = None
    if coupon_code:
        coupon = coupon_get_redeemable(
            code=coupon_code, product_id=price.product_id, billing_cycle=billing_cycle, currency=price.currency, at=now
        )
    return _Terms(
        price=price,
        trial_days=price.trial_days if trial else None,
        coupon=coupon,
        amount_discount=coupon_discount_amount(coupon=coupon, amount=price.unit_amount) if coupon else 0,
    )


def _checkout_metadata(*, checkout_id: uuid.UUID, terms: _Terms, billing_cycle: str, domain: dict | None) -> dict:
    """What Stripe keeps on the session and its subscription, and hands back in the webhook: enough to fulfil the
    order from Stripe's word alone."""
    metadata = {
        "checkout_session_id": str(checkout_id),
        "product_code": terms.price.product.code,
        "billing_cycle": billing_cycle,
        "price_id": str(terms.price.pk),
    }
    if terms.coupon:
        metadata["coupon_code"] = terms.coupon.code
    if domain:
        metadata["domain"] = domain["value"]
    return metadata


def _latest_for_request(*, fingerprint: str, client_idempotency_key: str | None, now: datetime):
    """The latest session made for this very request, or None. A client key already used with another body within
    a day is an error, as at Stripe: the client has a bug, and guessing which body it meant would charge wrongly."""
    if client_idempotency_key is None:
        return checkout_session_latest_for_fingerprint(fingerprint=fingerprint)
    # The fingerprint covers the key, so every session with this key and this body is one of this key's.
    latest = checkout_session_latest_for_idempotency_key(key=client_idempotency_key)
    if latest is None or latest.request_fingerprint == fingerprint:
        return latest
    if now - latest.created_at < IDEMPOTENCY_KEY_MEMORY:
        raise ApplicationError(
            "This Idempotency-Key was already used with a different request body; use a new key for a new order.",
            code="idempotency_error",
            field="Idempotency-Key",
        )
    return None


def _stripe_session_create(*, checkout_id, price, email, coupon, trial_days, expires_at, metadata, stripe_customer_id):
    params = {
        "checkout_id": str(checkout_id),
        "price": price,
        "email": email,
        "trial_days": trial_days,
        "expires_at": expires_at,
        "metadata": metadata,
        "stripe_customer_id": stripe_customer_id,
    }
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
    return datetime.fromtimestamp(window * IDEMPOTENCY_WINDOW_SECONDS, tz=UTC) + ttl


# --- Fulfilment: from Stripe's word that a session is paid to rows and work for the workers ---------------------------

PAID_STATUSES = ("paid", "no_payment_required")


def checkout_session_fulfill(*, stripe_session: Mapping) -> CheckoutSession | None:
    """The one place that turns a paid Stripe Checkout Session into user, customer, subscription and work.

    Safe to call any number of times, from any number of processes at once (webhook deliveries, the success page):
    the checkout row is locked, and a session already completed is returned as it is. A session whose charge does
    not match what we recorded is set aside for review, never provisioned. Returns None for a session we never made.
    """
    if stripe_session.get("payment_status") not in PAID_STATUSES:
        return checkout_session_get_by_stripe_id(stripe_session_id=stripe_session["id"])
    with transaction.atomic():
        session = (
            CheckoutSession.objects.select_for_update(of=("self",))
            .select_related("price")
            .filter(stripe_session_id=stripe_session["id"])
            .first()
        )
        if session is None:
            logger.warning("Stripe reported checkout session %s, which we never made: ignored", stripe_session["id"])
            return None
        if session.status in (CheckoutSessionStatus.COMPLETED, CheckoutSessionStatus.NEEDS_REVIEW):
            return session
        checkout_funnel_count("paid")
        problem = _charge_mismatch(session, stripe_session)
        if problem:
            _checkout_session_set_aside(session, problem)
            return session

        stripe_customer_id = _stripe_id(stripe_session.get("customer"))
        user, _ = user_get_or_create(email=session.email, full_name=session.customer_name or "")
        customer = customer_get_or_create_for_user(
            user=user, name=session.customer_name or "", stripe_customer_id=stripe_customer_id
        )
        subscription = subscription_create(
            customer=customer,
            checkout_session=session,
            stripe_subscription_id=_stripe_id(stripe_session.get("subscription")),
            stripe_customer_id=stripe_customer_id,
            status="trialing" if session.trial_days else "active",
        )
        provisioning_job_create(subscription=subscription)
        if not user.has_usable_password():
            email_notification_create(checkout_session=session, purpose=EmailPurpose.SET_PASSWORD, to=user.email)
        email_notification_create(checkout_session=session, purpose=EmailPurpose.ORDER_CONFIRMATION, to=user.email)
        if session.coupon_code:
            _coupon_redeem(session.coupon_code)

        session.status = CheckoutSessionStatus.COMPLETED
        session.completed_at = timezone.now()
        session.stripe_customer_id = stripe_customer_id
        session.save(update_fields=["status", "completed_at", "stripe_customer_id", "updated_at"])
        checkout_funnel_count("fulfilled")
    logger.info("Checkout session %s fulfilled: subscription %s", session.stripe_session_id, subscription.pk)
    return session


def checkout_session_payment_failed(*, stripe_session: Mapping) -> CheckoutSession | None:
    """A delayed payment failed: the order will not be fulfilled, and the customer is told how to try again."""
    with transaction.atomic():
        session = _locked(stripe_session["id"])
        if session is None or session.status != CheckoutSessionStatus.PENDING:
            return session
        session.status = CheckoutSessionStatus.PAYMENT_FAILED
        session.save(update_fields=["status", "updated_at"])
        email_notification_create(checkout_session=session, purpose=EmailPurpose.PAYMENT_FAILED, to=session.email)
    return session


def checkout_session_mark_expired(*, stripe_session_id: str) -> CheckoutSession | None:
    with transaction.atomic():
        session = _locked(stripe_session_id)
        if session is None or session.status != CheckoutSessionStatus.PENDING:
            return session
        session.status = CheckoutSessionStatus.EXPIRED
        session.save(update_fields=["status", "updated_at"])
        checkout_funnel_count("expired")
    return session


REFRESH_INTERVAL_SECONDS = 5
# Sessions this process re-read lately. The shared mark (cache.add below) is what limits Stripe's calls across
# processes; this keeps a limit while Redis is down, when the cache answers add() with True and every poll of every
# pending success page would otherwise reach Stripe, and spares a Redis round trip per poll meanwhile. Bounded: cleared
# past 10,000 sessions.
_refreshed_here: dict[str, float] = {}


def checkout_session_refresh(*, session: CheckoutSession, force: bool = False) -> CheckoutSession:
    """The success-page path: re-read a pending session from Stripe and fulfil it if it is paid.

    Stripe is asked at most once every few seconds per session (a mark in the shared cache), whatever the page's
    polling does; `force` (staff asking explicitly) skips that limit.
    """
    if session.status != CheckoutSessionStatus.PENDING:
        return session
    if not force:
        now = time.monotonic()
        if now - _refreshed_here.get(session.stripe_session_id, -REFRESH_INTERVAL_SECONDS) < REFRESH_INTERVAL_SECONDS:
            return session
        if len(_refreshed_here) > 10_000:
            _refreshed_here.clear()
        _refreshed_here[session.stripe_session_id] = now
        if not cache.add(f"checkout-refresh:{session.stripe_session_id}", True, REFRESH_INTERVAL_SECONDS):
            return session
    stripe_session = stripe_checkout_session_retrieve(session.stripe_session_id)
    if stripe_session.get("status") == "expired":
        return checkout_session_mark_expired(stripe_session_id=session.stripe_session_id) or session
    if stripe_session.get("payment_status") in PAID_STATUSES:
        return checkout_session_fulfill(stripe_session=stripe_session) or session
    return session


def checkout_session_follow(*, stripe_session_id: str, full: bool = False) -> CheckoutSession | None:
    """What the success page and its JSON endpoint show: the session with its order's state, a pending one first
    re-read from Stripe (see checkout_session_refresh). One query while nothing changes; Stripe being unreachable
    only means the answer is what we know."""
    session = checkout_session_get_with_order(stripe_session_id=stripe_session_id, full=full)
    if session is None or session.status != CheckoutSessionStatus.PENDING:
        return session
    try:
        refreshed = checkout_session_refresh(session=session)
    except ApplicationError:
        return session
    if refreshed is session:
        return session
    # Fulfilled or expired just now: read the order it became.
    return checkout_session_get_with_order(stripe_session_id=stripe_session_id, full=full)


def _locked(stripe_session_id: str) -> CheckoutSession | None:
    return CheckoutSession.objects.select_for_update().filter(stripe_session_id=stripe_session_id).first()


def _charge_mismatch(session: CheckoutSession, stripe_session: Mapping) -> str | None:
    charged, currency = stripe_session.get("amount_total"), stripe_session.get("currency")
    if currency != session.currency or charged != session.amount_due_first:
        return (
            f"Stripe charged {charged} {currency}; we expected {session.amount_due_first} {session.currency} "
            f"(price {session.amount}, discount {session.amount_discount}, trial {session.trial_days or 0} days)"
        )
    reference = stripe_session.get("client_reference_id")
    if reference and reference != str(session.pk):
        return f"Stripe's client_reference_id {reference} is not this session's id {session.pk}"
    return None


def _checkout_session_set_aside(session: CheckoutSession, problem: str) -> None:
    session.status = CheckoutSessionStatus.NEEDS_REVIEW
    session.metadata = {**session.metadata, "review_reason": problem}
    session.save(update_fields=["status", "metadata", "updated_at"])
    logger.error("Checkout session %s needs review: %s", session.stripe_session_id, problem)
    transaction.on_commit(
        lambda: mail_admins(
            f"Checkout session {session.stripe_session_id} needs review",
            f"{problem}\n\nThe order was not provisioned. Customer: {session.email}.",
            fail_silently=True,
        )
    )


def _coupon_redeem(code: str) -> None:
    # Conditional, so the last redemption of a limited coupon is counted once even when two orders race for it.
    Coupon.objects.filter(code__iexact=code).filter(
        Q(max_redemptions__isnull=True) | Q(times_redeemed__lt=F("max_redemptions"))
    ).update(times_redeemed=F("times_redeemed") + 1)


def _stripe_id(value) -> str | None:
    if isinstance(value, Mapping):
        return value.get("id")
    return value or None

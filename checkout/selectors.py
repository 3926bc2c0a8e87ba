"""Reads of checkout sessions."""

from checkout.models import CheckoutSession

PUBLIC_FIELDS = ("id", "stripe_session_id", "email", "product_code", "billing_cycle", "amount", "status")


def checkout_session_get_by_stripe_id(*, stripe_session_id: str, public_only: bool = False) -> CheckoutSession | None:
    """One query by the unique Stripe id; `public_only` loads just what the public API shows (no JSON decoding)."""
    sessions = CheckoutSession.objects.filter(stripe_session_id=stripe_session_id)
    if public_only:
        sessions = sessions.only(*PUBLIC_FIELDS)
    return next(iter(sessions.order_by()[:1]), None)


def checkout_session_latest_for_fingerprint(*, fingerprint: str) -> CheckoutSession | None:
    return CheckoutSession.objects.filter(request_fingerprint=fingerprint).order_by("-created_at").first()

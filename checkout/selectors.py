"""Reads of checkout sessions."""

from checkout.models import CheckoutSession


def checkout_session_get_by_stripe_id(*, stripe_session_id: str) -> CheckoutSession | None:
    return CheckoutSession.objects.filter(stripe_session_id=stripe_session_id).first()


def checkout_session_latest_for_fingerprint(*, fingerprint: str) -> CheckoutSession | None:
    return CheckoutSession.objects.filter(request_fingerprint=fingerprint).order_by("-created_at").first()

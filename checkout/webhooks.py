"""dj-stripe receivers: dj-stripe has verified and de-duplicated the event; each receiver hands it to a service.

They run inside dj-stripe's transaction, so what a service enqueues goes out only once the event is recorded.
"""

from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Session as DjstripeSession

from checkout.services import checkout_session_fulfill, checkout_session_mark_expired, checkout_session_payment_failed


def _session_from(event) -> dict:
    """The session as dj-stripe just re-read it from Stripe (its own receiver runs first), else the signed snapshot."""
    snapshot = event.data["object"]
    fresh = DjstripeSession.objects.filter(id=snapshot["id"]).values_list("stripe_data", flat=True).first()
    return fresh or snapshot


@djstripe_receiver(["checkout.session.completed", "checkout.session.async_payment_succeeded"])
def checkout_session_paid_received(sender, event, **kwargs):
    checkout_session_fulfill(stripe_session=_session_from(event))


@djstripe_receiver("checkout.session.async_payment_failed")
def checkout_session_payment_failed_received(sender, event, **kwargs):
    checkout_session_payment_failed(stripe_session=_session_from(event))


@djstripe_receiver("checkout.session.expired")
def checkout_session_expired_received(sender, event, **kwargs):
    checkout_session_mark_expired(stripe_session_id=event.data["object"]["id"])

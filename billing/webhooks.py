"""dj-stripe receivers for the subscription's life: dj-stripe has verified the signature, de-duplicated the event
and re-read its object from Stripe; each receiver hands the object, as re-read, and Stripe's time of the event to
a service. They run inside dj-stripe's transaction, so what a service enqueues goes out only once the event is
recorded."""

from djstripe import models as djstripe_models
from djstripe.event_handlers import djstripe_receiver

from billing.selectors import stripe_time
from billing.services import (
    charge_refunded_apply,
    invoice_event_apply,
    refund_event_apply,
    stripe_clock_observe,
    subscription_event_apply,
    subscription_first_invoice_record,
)

INVOICE_EVENTS = [
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
]
SUBSCRIPTION_EVENTS = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
]
REFUND_EVENTS = ["refund.created", "refund.updated", "charge.refund.updated"]
TEST_CLOCK_EVENTS = ["test_helpers.test_clock.advancing", "test_helpers.test_clock.ready"]
# What our webhook endpoint must be sent for this module (settings.STRIPE_WEBHOOK_EVENTS lists them all).
EVENTS = [*INVOICE_EVENTS, *SUBSCRIPTION_EVENTS, *REFUND_EVENTS, "charge.refunded", *TEST_CLOCK_EVENTS]


def _fresh(model, event) -> dict:
    """The object as dj-stripe just re-read it from Stripe (its own receiver runs first), else the signed
    snapshot."""
    snapshot = event.data["object"]
    fresh = model.objects.filter(id=snapshot.get("id")).values_list("stripe_data", flat=True).first()
    return fresh or snapshot


@djstripe_receiver(INVOICE_EVENTS)
def invoice_received(sender, event, **kwargs):
    invoice_event_apply(
        event_type=event.type, stripe_invoice=_fresh(djstripe_models.Invoice, event), event_created=event.created
    )


@djstripe_receiver(SUBSCRIPTION_EVENTS)
def subscription_received(sender, event, **kwargs):
    subscription_event_apply(
        stripe_subscription=_fresh(djstripe_models.Subscription, event), event_created=event.created
    )


@djstripe_receiver(REFUND_EVENTS)
def refund_received(sender, event, **kwargs):
    refund_event_apply(stripe_refund=_fresh(djstripe_models.Refund, event), event_created=event.created)


@djstripe_receiver("charge.refunded")
def charge_refunded_received(sender, event, **kwargs):
    charge_refunded_apply(stripe_charge=_fresh(djstripe_models.Charge, event), event_created=event.created)


@djstripe_receiver(TEST_CLOCK_EVENTS)
def test_clock_received(sender, event, **kwargs):
    clock = event.data["object"]
    frozen = clock.get("frozen_time")
    if frozen:
        stripe_clock_observe(scope=clock["id"], at=stripe_time(frozen))


@djstripe_receiver("checkout.session.completed")
def checkout_session_completed_received(sender, event, **kwargs):
    # Registered after checkout's own receiver (app order), so the subscription exists by now.
    session = _fresh(djstripe_models.Session, event)
    invoice_id = session.get("invoice")
    invoice_id = invoice_id.get("id") if isinstance(invoice_id, dict) else invoice_id
    stripe_invoice = None
    if invoice_id:
        stripe_invoice = (
            djstripe_models.Invoice.objects.filter(id=invoice_id).values_list("stripe_data", flat=True).first()
        )
    subscription_first_invoice_record(
        stripe_session=session, stripe_invoice=stripe_invoice, event_created=event.created
    )
    # The subscription's own events may have come before fulfilment made our row: start from its state as dj-stripe
    # stored it while processing this event (period, status, test clock).
    subscription_id = session.get("subscription")
    subscription_id = subscription_id.get("id") if isinstance(subscription_id, dict) else subscription_id
    stripe_subscription = (
        djstripe_models.Subscription.objects.filter(id=subscription_id).values_list("stripe_data", flat=True).first()
        if subscription_id
        else None
    )
    if stripe_subscription:
        subscription_event_apply(stripe_subscription=stripe_subscription, event_created=event.created)

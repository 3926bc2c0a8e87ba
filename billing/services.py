"""Writes of billing: Stripe's invoice, subscription and refund events applied to our rows exactly once, the rules
that decide suspension, unsuspension and termination, staff's billing actions, and the periodic sweep.

Every rule reads Stripe's own times (the event's `created`, the invoice's and subscription's timestamps), never
our wall clock alone, so the rules follow a Stripe test clock or the sandbox's clock when they are moved forward.
A state only moves forward: an event older than the state we applied changes nothing, a paid invoice never
reopens, an ended subscription never comes back, a terminated account never changes again.
"""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Subscription, SubscriptionStatus, User
from billing import selectors
from billing.models import (
    BillingAction,
    BillingActionKind,
    BillingActionStatus,
    InvoiceStatus,
    RefundRecord,
    StripeClock,
    SubscriptionInvoice,
)
from billing.plan_changes import plan_change_perform
from billing.selectors import stripe_now, stripe_time
from billing.stripe_billing import (
    stripe_invoice_for_payment_intent,
    stripe_invoice_payment_intent,
    stripe_refund_create,
    stripe_subscription_cancel,
    stripe_subscription_cancel_at_period_end,
    stripe_subscription_paid_invoices,
)
from core.exceptions import ApplicationError
from provisioning.models import EmailPurpose, HostingAccountStatus, ProvisioningAction
from provisioning.services import email_notification_create, hosting_account_action_request

logger = logging.getLogger(__name__)

FINAL_INVOICE_STATUSES = (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)
ENDED_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)
FIRST_INVOICE_REASON = "subscription_create"
FINAL_REFUND_STATUSES = ("succeeded", "failed", "canceled")
# The name billing/tasks.py registers the task that performs a recorded action under.
ACTION_PERFORM_TASK = "billing.action_perform"


def _id(value) -> str | None:
    if isinstance(value, Mapping):
        return value.get("id")
    return value or None


# --- Stripe's clocks --------------------------------------------------------------------------------------------------


def stripe_clock_observe(*, scope: str, at: datetime) -> datetime:
    """Stripe has shown us time `at` on this clock ("" for Stripe's own time, or a test clock's id): remember the
    newest, in one statement that only ever moves it forward, and return Stripe's time on that clock as we now know
    it (what stripe_now would answer, without asking again)."""
    table = StripeClock._meta.db_table
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (scope, now, updated_at) VALUES (%s, %s, %s) "
            f"ON CONFLICT (scope) DO UPDATE SET now = {greatest}({table}.now, EXCLUDED.now), "
            f"updated_at = EXCLUDED.updated_at RETURNING now",
            [scope, at, timezone.now()],
        )
        seen = cursor.fetchone()[0]
    if isinstance(seen, str):  # SQLite hands the timestamp back as text
        seen = datetime.fromisoformat(seen)
    if timezone.is_naive(seen):
        seen = timezone.make_aware(seen, UTC)
    return seen if scope else max(seen, timezone.now())


# --- Subscriptions ----------------------------------------------------------------------------------------------------


def subscription_event_apply(*, stripe_subscription: Mapping, event_created: datetime) -> Subscription | None:
    """A `customer.subscription.*` event: mirror Stripe's state (as dj-stripe just re-read it) and decide.

    None for a subscription that is not ours (or not yet: fulfilment creates it from the checkout event)."""
    # No savepoint: inside dj-stripe's transaction an error here fails the whole delivery anyway (Stripe retries it).
    with transaction.atomic(savepoint=False):
        subscription = _subscription_locked(_id(stripe_subscription.get("id")))
        if subscription is None:
            return None
        now = stripe_clock_observe(scope=_id(stripe_subscription.get("test_clock")) or "", at=event_created)
        before = _SubscriptionBefore(subscription)
        if subscription.stripe_state_at is None or event_created >= subscription.stripe_state_at:
            _subscription_state_apply(subscription, stripe_subscription, stamp=event_created)
        else:
            logger.info(
                "Subscription %s: event from %s is older than the state applied (%s); state kept",
                subscription.pk,
                event_created,
                subscription.stripe_state_at,
            )
        _subscription_changed(subscription, before=before, stripe_subscription=stripe_subscription)
        _rules_apply(subscription, now=now)
    return subscription


class _SubscriptionBefore:
    def __init__(self, subscription: Subscription):
        self.ended = subscription.status in ENDED_STATUSES
        self.cancel_at_period_end = subscription.cancel_at_period_end


def _subscription_locked(stripe_subscription_id: str | None) -> Subscription | None:
    if not stripe_subscription_id:
        return None
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "checkout_session")
        .filter(stripe_subscription_id=stripe_subscription_id)
        .first()
    )
    if subscription is None:
        logger.info("Stripe subscription %s is not one of ours (yet): ignored", stripe_subscription_id)
    return subscription


def _subscription_state_apply(subscription: Subscription, stripe_subscription: Mapping, *, stamp: datetime) -> None:
    status = stripe_subscription.get("status") or subscription.status
    if subscription.status in ENDED_STATUSES and status not in ENDED_STATUSES:
        logger.warning("Subscription %s ended; Stripe's %r for it is ignored", subscription.pk, status)
        status = subscription.status
    items = (stripe_subscription.get("items") or {}).get("data") or [{}]
    # API 2025-03-31 moved the period onto the items; older shapes kept it on the subscription.
    start = stripe_time(items[0].get("current_period_start") or stripe_subscription.get("current_period_start"))
    end = stripe_time(items[0].get("current_period_end") or stripe_subscription.get("current_period_end"))
    if end and (subscription.current_period_end is None or end >= subscription.current_period_end):
        subscription.current_period_start, subscription.current_period_end = start, end
    ended = status in ENDED_STATUSES
    subscription.status = status
    subscription.cancel_at_period_end = bool(stripe_subscription.get("cancel_at_period_end")) and not ended
    subscription.canceled_at = stripe_time(stripe_subscription.get("canceled_at")) or subscription.canceled_at
    subscription.ended_at = (
        subscription.ended_at or stripe_time(stripe_subscription.get("ended_at")) or (stamp if ended else None)
    )
    subscription.stripe_test_clock_id = _id(stripe_subscription.get("test_clock")) or ""
    subscription.stripe_state_at = max(stamp, subscription.stripe_state_at or stamp)
    subscription.save(
        update_fields=[
            "status",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "canceled_at",
            "ended_at",
            "stripe_test_clock_id",
            "stripe_state_at",
            "updated_at",
        ]
    )


def _subscription_changed(
    subscription: Subscription, *, before: _SubscriptionBefore, stripe_subscription: Mapping
) -> None:
    """What a change of state means for the customer: the e-mails about it, and termination when it ended."""
    ended = subscription.status in ENDED_STATUSES
    if subscription.cancel_at_period_end and not before.cancel_at_period_end and not ended:
        _email(
            subscription,
            EmailPurpose.CANCELLATION_CONFIRMED,
            key=f"at-period-end:{int(subscription.current_period_end.timestamp())}",
            context={"at_period_end": True, "ends_at": _iso(subscription.current_period_end)},
        )
    if ended and not before.ended:
        reason = ((stripe_subscription.get("cancellation_details") or {}).get("reason")) or ""
        logger.info("Subscription %s ended at Stripe (%s)", subscription.pk, reason or "no reason given")
        # Cancelled at period end: the customer was told when it was scheduled (the state applied above has
        # cleared the flag, so it is read from before).
        if reason != "payment_failed" and not before.cancel_at_period_end:
            _email(
                subscription,
                EmailPurpose.CANCELLATION_CONFIRMED,
                key="ended",
                context={
                    "at_period_end": False,
                    "ends_at": _iso(subscription.ended_at),
                    "reason": _ended_reason_text(reason),
                },
            )
        if settings.BILLING_TERMINATE_AFTER_DAYS == 0:
            _terminate(
                subscription,
                key=f"terminate:ended:{subscription.pk}",
                reason=f"The subscription ended at Stripe ({_ended_reason_text(reason)}).",
            )


def _ended_reason_text(reason: str) -> str:
    return {
        "payment_failed": "the renewal was not paid",
        "cancellation_requested": "cancelled on request",
        "payment_disputed": "the payment was disputed",
    }.get(reason, reason or "cancelled")


# --- Invoices ---------------------------------------------------------------------------------------------------------


def invoice_event_apply(
    *, event_type: str, stripe_invoice: Mapping, event_created: datetime
) -> SubscriptionInvoice | None:
    """An `invoice.*` event: record the invoice as Stripe shows it now, and decide (receipt, pay link, unsuspend,
    suspend). None for an invoice of a subscription that is not ours."""
    stripe_subscription_id = selectors.stripe_invoice_subscription_id(stripe_invoice)
    with transaction.atomic(savepoint=False):
        subscription = _subscription_locked(stripe_subscription_id)
        if subscription is None:
            return None
        # Stripe's newest time on this clock, not this event's: a late event must not turn the clock back.
        now = stripe_clock_observe(scope=_id(stripe_invoice.get("test_clock")) or "", at=event_created)
        invoice, was = _invoice_record(
            subscription, stripe_invoice, stamp=event_created, failed=event_type == "invoice.payment_failed"
        )
        if invoice.status == InvoiceStatus.PAID and was != InvoiceStatus.PAID:
            if subscription.status in ENDED_STATUSES and invoice.billing_reason != FIRST_INVOICE_REASON:
                _invoice_paid_after_the_end(subscription, invoice)
            else:
                _invoice_paid(subscription, invoice)
        elif invoice.status in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE) and was not in FINAL_INVOICE_STATUSES:
            # Nothing is owed on it any more: a suspension it caused has no reason left.
            _suspension_lift_if_nothing_owed(
                subscription, invoice, why="was voided" if invoice.status == InvoiceStatus.VOID else "was written off"
            )
        elif event_type == "invoice.payment_failed" and invoice.status == InvoiceStatus.OPEN:
            _invoice_payment_failed(subscription, invoice)
        _rules_apply(subscription, now=now)
    return invoice


def _invoice_record(
    subscription: Subscription, stripe_invoice: Mapping, *, stamp: datetime, failed: bool
) -> tuple[SubscriptionInvoice, str | None]:
    """Our row for the invoice, created or brought up to date; (row, its status before, None when new)."""
    fields = selectors.stripe_invoice_fields(stripe_invoice)
    invoice = SubscriptionInvoice.objects.select_for_update().filter(stripe_invoice_id=stripe_invoice["id"]).first()
    if invoice is None:
        invoice = SubscriptionInvoice.objects.create(
            subscription=subscription,
            stripe_invoice_id=stripe_invoice["id"],
            stripe_state_at=stamp,
            first_failed_at=stamp if failed and fields["status"] != InvoiceStatus.PAID else None,
            **fields,
        )
        return invoice, None
    was = invoice.status
    was_paid = was == InvoiceStatus.PAID
    changed = []
    newer = stamp >= invoice.stripe_state_at
    backwards = invoice.status in FINAL_INVOICE_STATUSES and fields["status"] not in FINAL_INVOICE_STATUSES
    if newer and not backwards:
        for name, value in fields.items():
            if value in (None, "") and name in (
                "stripe_payment_intent_id",
                "hosted_invoice_url",
                "invoice_pdf",
                "paid_at",
                "number",
            ):
                continue  # a re-read without an expansion says nothing about these
            if getattr(invoice, name) != value:
                setattr(invoice, name, value)
                changed.append(name)
        invoice.stripe_state_at = stamp
        changed.append("stripe_state_at")
    if failed and not was_paid and (invoice.first_failed_at is None or stamp < invoice.first_failed_at):
        # Events can come in any order: the first failure is the earliest one Stripe reports.
        invoice.first_failed_at = stamp
        changed.append("first_failed_at")
    if changed:
        invoice.save(update_fields=[*set(changed), "updated_at"])
    return invoice, was


def _invoice_paid(subscription: Subscription, invoice: SubscriptionInvoice) -> None:
    if invoice.period_end and (
        subscription.current_period_end is None or invoice.period_end > subscription.current_period_end
    ):
        subscription.current_period_start, subscription.current_period_end = invoice.period_start, invoice.period_end
        subscription.save(update_fields=["current_period_start", "current_period_end", "updated_at"])
    if invoice.billing_reason != FIRST_INVOICE_REASON and invoice.amount_paid > 0:
        _email(
            subscription,
            EmailPurpose.RENEWAL_RECEIPT,
            key=invoice.stripe_invoice_id,
            context={
                "invoice_id": invoice.stripe_invoice_id,
                "number": invoice.number,
                "amount_paid": invoice.amount_paid,
                "currency": invoice.currency,
                "period_start": _iso(invoice.period_start),
                "period_end": _iso(invoice.period_end),
                "hosted_invoice_url": invoice.hosted_invoice_url,
                "invoice_pdf": invoice.invoice_pdf,
                "billing_reason": invoice.billing_reason,
            },
        )
    _suspension_lift_if_nothing_owed(subscription, invoice, why="was paid")


def _suspension_lift_if_nothing_owed(subscription: Subscription, invoice: SubscriptionInvoice, *, why: str) -> None:
    """Lift a suspension our rules made (done or still waiting) once no renewal is overdue; a person's suspension
    stays until a person lifts it."""
    if selectors.subscription_unsuspends_on_payment(subscription=subscription) and (
        not selectors.subscription_has_overdue_invoice(subscription=subscription, exclude_id=invoice.pk)
    ):
        hosting_account_action_request(
            subscription=subscription,
            action=ProvisioningAction.UNSUSPEND,
            decision_key=f"unsuspend:{invoice.stripe_invoice_id}",
            reason=f"Invoice {invoice.number or invoice.stripe_invoice_id} {why}.",
        )


def _invoice_paid_after_the_end(subscription: Subscription, invoice: SubscriptionInvoice) -> None:
    """Paid (through the link we mailed) after Stripe ended the subscription: the period it pays for will never be
    served, so the money goes back, once; no receipt, no unsuspension, the period does not move. The account keeps
    the ended subscription's termination date."""
    logger.warning(
        "Subscription %s: invoice %s paid after the subscription ended; refunding it",
        subscription.pk,
        invoice.stripe_invoice_id,
    )
    action, created = BillingAction.objects.get_or_create(
        idempotency_key=f"refund:paid-after-end:{invoice.stripe_invoice_id}",
        defaults={
            "subscription": subscription,
            "kind": BillingActionKind.REFUND,
            "amount": invoice.amount_paid,
            "stripe_object_id": invoice.stripe_invoice_id,
            "reason": "Paid after the subscription had ended: the period it pays for is not served.",
        },
    )
    if created:
        transaction.on_commit(partial(_billing_action_enqueue, action_id=action.pk))


def _invoice_payment_failed(subscription: Subscription, invoice: SubscriptionInvoice) -> None:
    if subscription.status in ENDED_STATUSES:
        return
    suspend_on = invoice.first_failed_at + timedelta(days=settings.BILLING_SUSPEND_AFTER_DAYS)
    _email(
        subscription,
        EmailPurpose.RENEWAL_FAILED,
        key=invoice.stripe_invoice_id,
        context={
            "invoice_id": invoice.stripe_invoice_id,
            "number": invoice.number,
            "amount_due": invoice.amount_due,
            "currency": invoice.currency,
            "hosted_invoice_url": invoice.hosted_invoice_url,
            "next_payment_attempt": _iso(invoice.next_payment_attempt),
            "suspend_on": _iso(suspend_on),
        },
    )


# --- The rules that take time -----------------------------------------------------------------------------------------


def _rules_apply(subscription: Subscription, *, now: datetime) -> None:
    """Decisions that depend on how much of Stripe's time has passed: suspension of an unpaid renewal. An ended
    subscription too: its account runs until termination, and an unpaid one must not run for free meanwhile (the
    events may only arrive after the cancellation: a clock jump, a webhook outage)."""
    for invoice in selectors.subscription_invoices_due_for_suspension(subscription=subscription, now=now):
        hosting_account_action_request(
            subscription=subscription,
            action=ProvisioningAction.SUSPEND,
            decision_key=f"suspend:{invoice.stripe_invoice_id}",
            reason=(
                f"Invoice {invoice.number or invoice.stripe_invoice_id} unpaid "
                f"{settings.BILLING_SUSPEND_AFTER_DAYS} days after its first failed payment."
            ),
            # What the suspension e-mail tells the customer, once the panel has suspended the account.
            email_context={
                "invoice_id": invoice.stripe_invoice_id,
                "amount_due": invoice.amount_remaining,
                "currency": invoice.currency,
                "hosted_invoice_url": invoice.hosted_invoice_url,
            },
        )


def _terminate(subscription: Subscription, *, key: str, reason: str, actor: User | None = None):
    return hosting_account_action_request(
        subscription=subscription,
        action=ProvisioningAction.TERMINATE,
        decision_key=key,
        reason=reason,
        requested_by=actor,
    )


def billing_sweep() -> dict[str, int]:
    """The periodic half of the rules (Celery beat): suspensions due without a new event, termination warnings and
    terminations of ended subscriptions, refunds of setups that failed for good, and staff actions whose Stripe call
    never finished. Reads the database; safe to run anywhere, any number of times."""
    counts = {"suspended": 0, "warned": 0, "terminated": 0, "refunded": 0, "actions_resent": 0}
    for subscription_id in selectors.subscription_ids_with_overdue_invoices():
        with transaction.atomic():
            subscription = Subscription.objects.select_for_update().select_related("customer").get(pk=subscription_id)
            before = subscription.provisioning_jobs.count()
            _rules_apply(subscription, now=stripe_now(scope=subscription.stripe_test_clock_id))
            counts["suspended"] += subscription.provisioning_jobs.count() - before
    terminate_after = timedelta(days=settings.BILLING_TERMINATE_AFTER_DAYS)
    warn_before = timedelta(days=settings.BILLING_TERMINATION_WARNING_DAYS)
    for subscription in selectors.subscriptions_ended_not_terminated():
        now = stripe_now(scope=subscription.stripe_test_clock_id)
        terminate_on = subscription.ended_at + terminate_after
        with transaction.atomic():
            if now >= terminate_on:
                if _terminate(
                    subscription,
                    key=f"terminate:ended:{subscription.pk}",
                    reason=f"The subscription ended on {subscription.ended_at:%Y-%m-%d}; "
                    f"{settings.BILLING_TERMINATE_AFTER_DAYS} days have passed.",
                ):
                    counts["terminated"] += 1
            elif terminate_after > warn_before and now >= terminate_on - warn_before:
                _, created = _email_created(
                    subscription,
                    EmailPurpose.TERMINATION_WARNING,
                    key="ended",
                    context={
                        "terminate_on": _iso(terminate_on),
                        "reason": f"Your subscription ended on {subscription.ended_at:%d %B %Y}.",
                    },
                )
                counts["warned"] += created
    for subscription_id in selectors.subscription_ids_due_for_auto_refund(now=timezone.now()):
        counts["refunded"] += bool(subscription_failed_setup_refund(subscription_id=subscription_id))
    for action_id in selectors.billing_action_ids_stale(now=timezone.now()):
        billing_action_perform(action_id=action_id)
        counts["actions_resent"] += 1
    if any(counts.values()):
        logger.info("Billing sweep: %s", counts)
    return counts


# --- Refunds ----------------------------------------------------------------------------------------------------------


def refund_event_apply(*, stripe_refund: Mapping, event_created: datetime) -> RefundRecord | None:
    """`refund.created` / `refund.updated` / `charge.refund.updated`: record the refund once, tell the customer."""
    subscription_id = _refund_subscription_id(stripe_refund)
    if subscription_id is None:
        logger.info("Refund %s is not for one of our subscriptions: ignored", stripe_refund.get("id"))
        return None
    with transaction.atomic(savepoint=False):
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("customer", "checkout_session")
            .get(pk=subscription_id)
        )
        intent = _id(stripe_refund.get("payment_intent")) or ""
        known = RefundRecord.objects.filter(stripe_refund_id=stripe_refund["id"]).first()
        if known and known.status in FINAL_REFUND_STATUSES and stripe_refund.get("status") not in FINAL_REFUND_STATUSES:
            logger.info(
                "Refund %s is %s; an older %r for it changes nothing",
                known.stripe_refund_id,
                known.status,
                stripe_refund.get("status"),
            )
            return known
        refund, _ = RefundRecord.objects.update_or_create(
            stripe_refund_id=stripe_refund["id"],
            defaults={
                "subscription": subscription,
                "stripe_charge_id": _id(stripe_refund.get("charge")) or "",
                "stripe_payment_intent_id": intent,
                "amount": int(stripe_refund.get("amount") or 0),
                "currency": stripe_refund.get("currency") or subscription.currency,
                "status": stripe_refund.get("status") or "",
                "reason": stripe_refund.get("reason") or "",
                "stripe_created": stripe_time(stripe_refund.get("created")) or event_created,
            },
        )
        if refund.status in ("succeeded", "pending"):
            paid = selectors.payment_intent_amount_paid(subscription=subscription, payment_intent=intent)
            refunded = (
                RefundRecord.objects.filter(
                    subscription=subscription, stripe_payment_intent_id=intent, status__in=("succeeded", "pending")
                ).aggregate(total=Sum("amount"))["total"]
                or 0
            )
            _email(
                subscription,
                EmailPurpose.REFUND_ISSUED,
                key=refund.stripe_refund_id,
                context={
                    "refund_id": refund.stripe_refund_id,
                    "amount": refund.amount,
                    "currency": refund.currency,
                    "full": bool(paid) and refunded >= paid,
                },
            )
    return refund


def charge_refunded_apply(*, stripe_charge: Mapping, event_created: datetime) -> Subscription | None:
    """`charge.refunded`: a payment of one of our subscriptions was refunded. Refunded in full, and it was the
    subscription's latest payment: the subscription ends at Stripe and the account is terminated now. A partial
    refund is recorded only (refund_event_apply)."""
    intent = _id(stripe_charge.get("payment_intent"))
    fully = bool(stripe_charge.get("refunded")) or (
        int(stripe_charge.get("amount_refunded") or 0) >= int(stripe_charge.get("amount") or 0) > 0
    )
    if not intent or not fully:
        return None
    subscription_id = selectors.subscription_id_for_payment_intent(payment_intent=intent) or (
        _subscription_id_from_stripe_invoice(intent)
    )
    if subscription_id is None:
        return None
    with transaction.atomic(savepoint=False):
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("customer", "checkout_session")
            .get(pk=subscription_id)
        )
        if not selectors.payment_intent_is_latest_payment(subscription=subscription, payment_intent=intent):
            logger.info(
                "Charge %s of subscription %s refunded in full, but it is not the payment for the current "
                "service (a later renewal exists, or it paid a plan change): recorded only",
                stripe_charge.get("id"),
                subscription.pk,
            )
            return subscription
        if subscription.status in ENDED_STATUSES:
            # Already ended: its termination date stands (a payment made after the end was refunded, say).
            return subscription
        reason = f"Payment {stripe_charge.get('id')} was refunded in full."
        _terminate(subscription, key=f"terminate:refund:{stripe_charge.get('id')}", reason=reason)
        if subscription.status not in ENDED_STATUSES:
            action, created = BillingAction.objects.get_or_create(
                idempotency_key=f"cancel:refund:{stripe_charge.get('id')}",
                defaults={"subscription": subscription, "kind": BillingActionKind.CANCEL_NOW, "reason": reason},
            )
            if created:
                transaction.on_commit(partial(_billing_action_enqueue, action_id=action.pk))
    return subscription


def _refund_subscription_id(stripe_refund: Mapping) -> int | None:
    ours = (stripe_refund.get("metadata") or {}).get("subscription_id")
    if ours and str(ours).isdigit() and Subscription.objects.filter(pk=int(ours)).exists():
        return int(ours)
    intent = _id(stripe_refund.get("payment_intent"))
    if not intent:
        return None
    return selectors.subscription_id_for_payment_intent(payment_intent=intent) or (
        _subscription_id_from_stripe_invoice(intent)
    )


def _subscription_id_from_stripe_invoice(payment_intent: str) -> int | None:
    """A payment we have no record of (made before we recorded invoices, or refunded in Stripe's dashboard): ask
    Stripe which invoice it paid, and record that invoice."""
    try:
        stripe_invoice = stripe_invoice_for_payment_intent(payment_intent)
    except ApplicationError as error:
        logger.warning("Could not find the invoice of payment %s at Stripe: %s", payment_intent, error.message)
        return None
    if not stripe_invoice:
        return None
    stripe_invoice = {**stripe_invoice}
    record = invoice_event_apply(
        event_type="invoice.retrieved",
        stripe_invoice=stripe_invoice,
        event_created=stripe_time(stripe_invoice.get("created")) or timezone.now(),
    )
    if record is None:
        return None
    if not record.stripe_payment_intent_id:
        SubscriptionInvoice.objects.filter(pk=record.pk).update(stripe_payment_intent_id=payment_intent)
    return record.subscription_id


# --- The first invoice, recorded when the checkout is fulfilled --------------------------------------------------------


def subscription_first_invoice_record(
    *, stripe_session: Mapping, stripe_invoice: Mapping | None, event_created: datetime
) -> SubscriptionInvoice | None:
    """After fulfilment (`checkout.session.completed`): the first invoice's events may have come before the
    subscription existed here; record the invoice as dj-stripe stored it, so its payment can be found and
    refunded like any other."""
    if not stripe_invoice or stripe_session.get("mode") != "subscription":
        return None
    return invoice_event_apply(
        event_type="invoice.retrieved", stripe_invoice=stripe_invoice, event_created=event_created
    )


# --- Staff's actions --------------------------------------------------------------------------------------------------


def subscription_cancel(
    *,
    subscription: Subscription,
    at_period_end: bool,
    reason: str,
    actor: User | None,
    idempotency_key: str | None = None,
) -> BillingAction:
    """Cancel at Stripe, now or at the end of the paid period. Our state follows from Stripe's answer and events;
    the account is terminated by the rules (after BILLING_TERMINATE_AFTER_DAYS)."""
    kind = BillingActionKind.CANCEL_AT_PERIOD_END if at_period_end else BillingActionKind.CANCEL_NOW
    if done := _action_already_taken(subscription=subscription, kind=kind, idempotency_key=idempotency_key):
        return done
    if subscription.status in ENDED_STATUSES:
        raise ApplicationError("The subscription has already ended.", code="subscription_ended")
    if at_period_end and subscription.cancel_at_period_end:
        raise ApplicationError("The subscription already cancels at the end of its period.", code="already_cancelling")
    return _staff_action(
        subscription=subscription, kind=kind, reason=reason, actor=actor, idempotency_key=idempotency_key
    )


def subscription_cancel_undo(
    *, subscription: Subscription, reason: str, actor: User | None, idempotency_key: str | None = None
) -> BillingAction:
    if done := _action_already_taken(
        subscription=subscription, kind=BillingActionKind.UNDO_CANCEL, idempotency_key=idempotency_key
    ):
        return done
    if not subscription.cancel_at_period_end or subscription.status in ENDED_STATUSES:
        raise ApplicationError(
            "Only a subscription that cancels at the end of its period can be kept.", code="not_cancelling"
        )
    return _staff_action(
        subscription=subscription,
        kind=BillingActionKind.UNDO_CANCEL,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
    )


def invoice_refund(
    *,
    invoice: SubscriptionInvoice,
    amount: int | None,
    reason: str,
    actor: User | None,
    idempotency_key: str | None = None,
) -> BillingAction:
    """Refund (part of) what the invoice's payment took; `amount` None refunds all that is left. Never more than
    was paid: checked against our records here and by Stripe again."""
    if done := _action_already_taken(
        subscription=invoice.subscription, kind=BillingActionKind.REFUND, idempotency_key=idempotency_key
    ):
        return done
    invoice.refresh_from_db()  # what has been refunded since the page was drawn counts
    refundable = selectors.invoice_refundable_amount(invoice=invoice)
    if invoice.status != InvoiceStatus.PAID or refundable <= 0:
        raise ApplicationError("Nothing is left to refund on this invoice.", code="nothing_to_refund")
    if amount is not None and not 0 < amount <= refundable:
        raise ApplicationError(
            f"A refund must be between 0.01 and {refundable / 100:.2f} {invoice.currency.upper()} (what is left of "
            f"the payment).",
            code="refund_amount_invalid",
            field="amount",
        )
    return _staff_action(
        subscription=invoice.subscription,
        kind=BillingActionKind.REFUND,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
        amount=amount if amount is not None else refundable,
        stripe_object_id=invoice.stripe_invoice_id,
    )


def hosting_account_suspend(
    *, subscription: Subscription, reason: str, actor: User | None, idempotency_key: str | None = None
) -> BillingAction:
    return _account_action(
        subscription=subscription,
        kind=BillingActionKind.SUSPEND,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
    )


def hosting_account_unsuspend(
    *, subscription: Subscription, reason: str, actor: User | None, idempotency_key: str | None = None
) -> BillingAction:
    return _account_action(
        subscription=subscription,
        kind=BillingActionKind.UNSUSPEND,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
    )


def hosting_account_terminate(
    *, subscription: Subscription, reason: str, actor: User | None, idempotency_key: str | None = None
) -> BillingAction:
    """Terminate the account now; a subscription still running at Stripe is cancelled too (no invoices for a
    terminated service)."""
    action = _account_action(
        subscription=subscription,
        kind=BillingActionKind.TERMINATE,
        reason=reason,
        actor=actor,
        idempotency_key=idempotency_key,
    )
    if subscription.status not in ENDED_STATUSES and subscription.stripe_subscription_id:
        _staff_action(
            subscription=subscription,
            kind=BillingActionKind.CANCEL_NOW,
            reason=reason,
            actor=actor,
            idempotency_key=f"{action.idempotency_key}:cancel",
        )
    return action


ACCOUNT_ACTIONS = {
    BillingActionKind.SUSPEND: ProvisioningAction.SUSPEND,
    BillingActionKind.UNSUSPEND: ProvisioningAction.UNSUSPEND,
    BillingActionKind.TERMINATE: ProvisioningAction.TERMINATE,
}


def _account_action(
    *, subscription: Subscription, kind: str, reason: str, actor: User | None, idempotency_key: str | None
) -> BillingAction:
    reason = _reason_required(reason)
    with transaction.atomic():
        action, created = _action_get_or_create(
            subscription=subscription, kind=kind, reason=reason, actor=actor, idempotency_key=idempotency_key
        )
        if not created:
            return action
        job = hosting_account_action_request(
            subscription=subscription,
            action=ACCOUNT_ACTIONS[kind],
            decision_key=f"staff:{action.idempotency_key}",
            reason=reason,
            requested_by=actor,
            # A suspension by hand owes nothing: the e-mail asks for no payment.
            email_context={"amount_due": 0, "currency": subscription.currency},
        )
        if job is None and not (
            kind == BillingActionKind.SUSPEND and _account_status(subscription) == HostingAccountStatus.SUSPENDED
        ):
            raise ApplicationError(_nothing_to_do(subscription, kind), code="nothing_to_do")
        # Already suspended (for non-payment): recorded all the same, so a payment does not lift what staff decided.
        action.status = BillingActionStatus.DONE
        action.stripe_object_id = f"job:{job.pk}" if job else ""
        action.save(update_fields=["status", "stripe_object_id", "updated_at"])
    return action


def _account_status(subscription: Subscription) -> str | None:
    from provisioning.models import HostingAccount

    return HostingAccount.objects.filter(subscription=subscription).values_list("status", flat=True).first()


def _nothing_to_do(subscription: Subscription, kind: str) -> str:
    account = getattr(subscription, "hosting_account", None)
    status = account.status if account else "not set up"
    if status == HostingAccountStatus.TERMINATED:
        return "The account is terminated; nothing can change it any more."
    return f"Nothing to do: the account is {status} and no opposite change is waiting."


def _action_already_taken(
    *, subscription: Subscription, kind: str, idempotency_key: str | None
) -> BillingAction | None:
    """The action a form with this key already asked for (a second click, a resubmitted page): returned as it is,
    before any check of the state the first one changed."""
    if not idempotency_key:
        return None
    action = BillingAction.objects.filter(idempotency_key=idempotency_key).first()
    if action is not None and (action.subscription_id != subscription.pk or action.kind != kind):
        raise ApplicationError(
            "This form was already used for another action; reload the page.", code="idempotency_key_reused"
        )
    return action


def _staff_action(
    *,
    subscription: Subscription,
    kind: str,
    reason: str,
    actor: User | None,
    idempotency_key: str | None,
    amount: int | None = None,
    stripe_object_id: str = "",
) -> BillingAction:
    """Record the action (once per idempotency key: a second click returns the first), then ask Stripe now, outside
    any transaction, so staff see Stripe's answer. Should this process die in between, the sweep asks again with the
    same key."""
    reason = _reason_required(reason)
    with transaction.atomic():
        action, created = _action_get_or_create(
            subscription=subscription,
            kind=kind,
            reason=reason,
            actor=actor,
            idempotency_key=idempotency_key,
            amount=amount,
            stripe_object_id=stripe_object_id,
        )
    if created:
        action = billing_action_perform(action_id=action.pk)
        if action.status == BillingActionStatus.FAILED:
            raise ApplicationError(action.error, code="stripe_refused")
    return action


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ApplicationError(
            "Say why (a few words): it is kept with the action.", code="reason_required", field="reason"
        )
    return reason


def _action_get_or_create(
    *, subscription: Subscription, kind: str, reason: str, actor: User | None, idempotency_key: str | None, **fields
) -> tuple[BillingAction, bool]:
    defaults = {"subscription": subscription, "kind": kind, "reason": reason, "actor": actor, **fields}
    if not idempotency_key:
        return BillingAction.objects.create(**defaults), True
    action, created = BillingAction.objects.get_or_create(idempotency_key=idempotency_key, defaults=defaults)
    if not created and (action.subscription_id != subscription.pk or action.kind != kind):
        raise ApplicationError(
            "This form was already used for another action; reload the page.", code="idempotency_key_reused"
        )
    return action, created


def billing_action_perform(*, action_id: int) -> BillingAction:
    """Make the Stripe call a recorded action asks for (the task's body, and staff's request). Safe to run again:
    the action's idempotency key makes Stripe answer a repeat with its first answer."""
    action = BillingAction.objects.select_related("subscription").get(pk=action_id)
    if action.kind == BillingActionKind.CHANGE_PLAN:
        return plan_change_perform(action_id=action_id)
    if action.status != BillingActionStatus.REQUESTED:
        return action
    subscription = action.subscription
    try:
        stripe_object = _billing_action_call(action)
    except ApplicationError as error:
        if error.code == "payment_provider_unavailable":
            logger.warning("Billing action %s: Stripe unreachable; the sweep will try again", action.pk)
            BillingAction.objects.filter(pk=action.pk).update(error=error.message, updated_at=timezone.now())
            action.refresh_from_db()
            return action
        BillingAction.objects.filter(pk=action.pk, status=BillingActionStatus.REQUESTED).update(
            status=BillingActionStatus.FAILED, error=error.message, updated_at=timezone.now()
        )
        logger.error(
            "Billing action %s (%s of subscription %s) failed: %s",
            action.pk,
            action.kind,
            subscription.pk,
            error.message,
        )
        action.refresh_from_db()
        return action
    with transaction.atomic():
        BillingAction.objects.filter(pk=action.pk, status=BillingActionStatus.REQUESTED).update(
            status=BillingActionStatus.DONE,
            error="",
            updated_at=timezone.now(),
            stripe_object_id=stripe_object.get("id") or action.stripe_object_id,
        )
        if stripe_object.get("object") == "refund":
            refund_event_apply(stripe_refund=stripe_object, event_created=timezone.now())
        if stripe_object.get("object") == "subscription":
            # Stripe's answer is the freshest state there is; the events that follow will say the same.
            locked = _subscription_locked(subscription.stripe_subscription_id)
            before = _SubscriptionBefore(locked)
            stamp = max(
                filter(None, (locked.stripe_state_at, stripe_time(stripe_object.get("canceled_at")))),
                default=timezone.now(),
            )
            _subscription_state_apply(locked, stripe_object, stamp=stamp)
            _subscription_changed(locked, before=before, stripe_subscription=stripe_object)
    action.refresh_from_db()
    return action


def _billing_action_call(action: BillingAction) -> dict:
    subscription = action.subscription
    key = action.idempotency_key
    if action.kind == BillingActionKind.CANCEL_NOW:
        return stripe_subscription_cancel(
            subscription.stripe_subscription_id, comment=action.reason, idempotency_key=key
        ).to_dict()
    if action.kind in (BillingActionKind.CANCEL_AT_PERIOD_END, BillingActionKind.UNDO_CANCEL):
        return stripe_subscription_cancel_at_period_end(
            subscription.stripe_subscription_id,
            cancel=action.kind == BillingActionKind.CANCEL_AT_PERIOD_END,
            comment=action.reason,
            idempotency_key=key,
        ).to_dict()
    if action.kind == BillingActionKind.REFUND:
        invoice = SubscriptionInvoice.objects.get(stripe_invoice_id=action.stripe_object_id)
        intent = _invoice_payment_intent(invoice)
        refund = stripe_refund_create(
            payment_intent=intent,
            amount=action.amount,
            idempotency_key=key,
            metadata={
                "subscription_id": str(subscription.pk),
                "billing_action_id": str(action.pk),
                "invoice": invoice.stripe_invoice_id,
            },
        )
        return refund.to_dict()
    raise ApplicationError(f"{action.kind} is not a Stripe call", code="not_a_stripe_action")


def _invoice_payment_intent(invoice: SubscriptionInvoice) -> str:
    if not invoice.stripe_payment_intent_id:
        intent = stripe_invoice_payment_intent(invoice.stripe_invoice_id)
        if not intent:
            raise ApplicationError(
                f"Stripe shows no payment for invoice {invoice.stripe_invoice_id}.", code="no_payment"
            )
        SubscriptionInvoice.objects.filter(pk=invoice.pk).update(stripe_payment_intent_id=intent)
        invoice.stripe_payment_intent_id = intent
    return invoice.stripe_payment_intent_id


def _billing_action_enqueue(*, action_id: int) -> None:
    # By name from Celery's registry (BillingConfig.ready imports the tasks): the tasks call this module, which
    # never imports them (imports run tasks -> services). A name Celery does not know is a KeyError, logged below.
    try:
        current_app.tasks[ACTION_PERFORM_TASK].apply_async(args=[action_id], retry=False)
    except Exception:
        # The row stays REQUESTED; the sweep performs it.
        logger.exception("Billing action %s not sent; the sweep will perform it", action_id)


# --- Setups that failed for good: the customer gets their money back ----------------------------------------------------


def subscription_failed_setup_refund(*, subscription_id: int) -> BillingAction | None:
    """Provisioning failed and no one fixed it within PROVISIONING_AUTO_REFUND_AFTER_HOURS: refund every payment of
    the subscription in full, cancel it, and apologise. Once per subscription (the action's key)."""
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("customer", "checkout_session")
            .get(pk=subscription_id)
        )
        action, _ = BillingAction.objects.get_or_create(
            idempotency_key=f"auto-refund:{subscription.pk}",
            defaults={
                "subscription": subscription,
                "kind": BillingActionKind.AUTO_REFUND,
                "reason": f"Provisioning failed and was not resolved within "
                f"{settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS} hours.",
            },
        )
    if action.status != BillingActionStatus.REQUESTED:
        return None
    try:
        refunded = _refund_everything(subscription, key=action.idempotency_key)
        if subscription.status not in ENDED_STATUSES and subscription.stripe_subscription_id:
            answer = stripe_subscription_cancel(
                subscription.stripe_subscription_id,
                comment=action.reason,
                idempotency_key=f"{action.idempotency_key}:cancel",
            ).to_dict()
        else:
            answer = None
    except ApplicationError as error:
        BillingAction.objects.filter(pk=action.pk).update(error=error.message, updated_at=timezone.now())
        logger.error("Refund of failed setup for subscription %s not done yet: %s", subscription.pk, error.message)
        return None
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update()
            .select_related("customer", "checkout_session")
            .get(pk=subscription_id)
        )
        BillingAction.objects.filter(pk=action.pk).update(
            status=BillingActionStatus.DONE, amount=refunded, error="", updated_at=timezone.now()
        )
        if answer is not None:
            before = _SubscriptionBefore(subscription)
            _subscription_state_apply(
                subscription,
                answer,
                stamp=max(
                    filter(None, (subscription.stripe_state_at, stripe_time(answer.get("canceled_at")))),
                    default=timezone.now(),
                ),
            )
            # No "cancellation confirmed": the apology says it all.
            before.ended = True
            _subscription_changed(subscription, before=before, stripe_subscription=answer)
        _email(
            subscription,
            EmailPurpose.SETUP_FAILED_REFUNDED,
            key="auto-refund",
            context={"amount": refunded, "currency": subscription.currency},
        )
    logger.warning(
        "Subscription %s: setup failed for good; %s refunded and the subscription cancelled", subscription.pk, refunded
    )
    action.refresh_from_db()
    return action


def _refund_everything(subscription: Subscription, *, key: str) -> int:
    total = 0
    for stripe_invoice in stripe_subscription_paid_invoices(subscription.stripe_subscription_id):
        if not stripe_invoice.get("amount_paid"):
            continue
        intent = stripe_invoice_payment_intent(stripe_invoice["id"])
        if intent is None:
            continue
        refund = stripe_refund_create(
            payment_intent=intent,
            amount=None,
            idempotency_key=f"{key}:{stripe_invoice['id']}",
            metadata={"subscription_id": str(subscription.pk), "reason": "setup_failed"},
        )
        total += int(refund.get("amount") or 0)  # what was left: a partial refund made earlier is not counted twice
    return total


# --- E-mails ----------------------------------------------------------------------------------------------------------


def _email(subscription: Subscription, purpose: str, *, key: str, context: dict) -> None:
    email_notification_create(
        checkout_session=subscription.checkout_session,
        purpose=purpose,
        to=subscription.customer.email,
        key=key,
        context=context,
    )


def _email_created(subscription: Subscription, purpose: str, *, key: str, context: dict):
    from provisioning.models import EmailNotification

    exists = EmailNotification.objects.filter(
        checkout_session_id=subscription.checkout_session_id, purpose=purpose, key=key
    ).exists()
    notification = email_notification_create(
        checkout_session=subscription.checkout_session,
        purpose=purpose,
        to=subscription.customer.email,
        key=key,
        context=context,
    )
    return notification, not exists


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None

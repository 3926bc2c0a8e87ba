"""Reads of billing: Stripe's invoice as our fields, what is overdue, what is due for termination or for a refund
of a setup that failed, and what staff can still refund."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.utils import timezone

from accounts.models import Subscription, SubscriptionStatus
from billing.models import (
    BillingAction,
    BillingActionKind,
    BillingActionStatus,
    InvoiceStatus,
    RefundRecord,
    StripeClock,
    SubscriptionInvoice,
)
from provisioning.models import (
    HostingAccountStatus,
    ProvisioningAction,
    ProvisioningJob,
    ProvisioningJobStatus,
)

ENDED_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)
# Invoices that pay for the service's periods (not a plan change's proration, not a one-off).
SERVICE_INVOICE_REASONS = ("subscription_create", "subscription_cycle")
# A staff action whose Stripe call has not finished after this long was interrupted: the sweep performs it again.
ACTION_STALE_AFTER = timedelta(minutes=5)


def stripe_time(value) -> datetime | None:
    """Stripe's unix seconds (or a datetime dj-stripe already made) as an aware datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(int(value), tz=UTC)


def stripe_now(*, scope: str = "") -> datetime:
    """Stripe's time on that clock as far as we know it. Stripe's own clock: our wall clock, or later if Stripe has
    shown us later (the sandbox's clock runs ahead). A test clock: exactly the time it has shown us, which may be
    in the past (a clock starts where its creator puts it), and our wall clock only while it has shown nothing."""
    seen = StripeClock.objects.filter(scope=scope).values_list("now", flat=True).first()
    if scope:
        return seen or timezone.now()
    now = timezone.now()
    return max(now, seen) if seen else now


def stripe_invoice_subscription_id(stripe_invoice: Mapping) -> str | None:
    """The subscription an invoice bills: `parent.subscription_details.subscription` since API 2025-03-31.basil.

    The top-level `subscription` of older versions is read only when the parent is missing. Our own requests pin
    STRIPE_API_VERSION, so what dj-stripe re-reads never has it; but when that re-read is not stored, the receivers
    fall back to the event's snapshot (billing/webhooks.py `_fresh`), and Stripe renders a snapshot in the webhook
    endpoint's API version: an endpoint made in the Dashboard or before the pin (kept by stripe_webhook_register)
    can be older than basil, and then this is where the id is."""
    details = (stripe_invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or stripe_invoice.get("subscription")
    if isinstance(subscription, Mapping):
        return subscription.get("id")
    return subscription or None


def stripe_invoice_fields(stripe_invoice: Mapping) -> dict:
    """Our SubscriptionInvoice's fields from Stripe's invoice."""
    lines = (stripe_invoice.get("lines") or {}).get("data") or []
    periods = [line.get("period") or {} for line in lines]
    period_start = min((stripe_time(p.get("start")) for p in periods if p.get("start")), default=None)
    period_end = max((stripe_time(p.get("end")) for p in periods if p.get("end")), default=None)
    transitions = stripe_invoice.get("status_transitions") or {}
    return {
        "number": stripe_invoice.get("number") or "",
        "billing_reason": stripe_invoice.get("billing_reason") or "",
        "status": stripe_invoice.get("status") or InvoiceStatus.DRAFT,
        "amount_due": int(stripe_invoice.get("amount_due") or 0),
        "amount_paid": int(stripe_invoice.get("amount_paid") or 0),
        "amount_remaining": int(stripe_invoice.get("amount_remaining") or 0),
        "currency": stripe_invoice.get("currency") or "",
        "attempt_count": int(stripe_invoice.get("attempt_count") or 0),
        "next_payment_attempt": stripe_time(stripe_invoice.get("next_payment_attempt")),
        "paid_at": stripe_time(transitions.get("paid_at")),
        "period_start": period_start or stripe_time(stripe_invoice.get("period_start")),
        "period_end": period_end or stripe_time(stripe_invoice.get("period_end")),
        "hosted_invoice_url": stripe_invoice.get("hosted_invoice_url") or "",
        "invoice_pdf": stripe_invoice.get("invoice_pdf") or "",
        "stripe_payment_intent_id": _invoice_payment_intent(stripe_invoice) or "",
        "stripe_created": stripe_time(stripe_invoice.get("created")),
    }


def _invoice_payment_intent(stripe_invoice: Mapping) -> str | None:
    payments = stripe_invoice.get("payments") or {}
    for invoice_payment in (payments.get("data") or []) if isinstance(payments, Mapping) else []:
        payment = invoice_payment.get("payment") or {}
        intent = payment.get("payment_intent")
        if invoice_payment.get("status") == "paid" and intent:
            return intent if isinstance(intent, str) else intent.get("id")
    intent = stripe_invoice.get("payment_intent")  # API versions before 2025-03-31
    return intent if isinstance(intent, str) else None


def subscription_invoices_due_for_suspension(
    *, subscription: Subscription, now: datetime
) -> QuerySet[SubscriptionInvoice]:
    """Open invoices whose first failed payment is BILLING_SUSPEND_AFTER_DAYS or more before `now` (Stripe's)."""
    due_before = now - timedelta(days=settings.BILLING_SUSPEND_AFTER_DAYS)
    return subscription.invoices.filter(status=InvoiceStatus.OPEN, first_failed_at__lte=due_before).order_by(
        "first_failed_at"
    )


def subscription_has_overdue_invoice(*, subscription: Subscription, exclude_id: int | None = None) -> bool:
    """An invoice still open after a failed payment (other than `exclude_id`): paying another one must not lift a
    suspension while this one is unpaid."""
    return (
        subscription.invoices.filter(status=InvoiceStatus.OPEN, first_failed_at__isnull=False)
        .exclude(pk=exclude_id)
        .exists()
    )


def subscription_unsuspends_on_payment(*, subscription: Subscription) -> bool:
    """A suspension is waiting or in force (the newest suspend/unsuspend decision is a suspend) and no person has
    suspended the account since (abuse, a request): then paying what is owed lifts it. The common case, no
    suspension at all, costs one query."""
    latest = (
        subscription.provisioning_jobs.filter(action__in=(ProvisioningAction.SUSPEND, ProvisioningAction.UNSUSPEND))
        .exclude(status=ProvisioningJobStatus.CANCELED)
        .order_by("-pk")
        .values_list("action", flat=True)
        .first()
    )
    if latest != ProvisioningAction.SUSPEND:
        return False
    staff = (
        subscription.billing_actions.filter(
            kind__in=(BillingActionKind.SUSPEND, BillingActionKind.UNSUSPEND),
            status=BillingActionStatus.DONE,
            actor__isnull=False,
        )
        .order_by("-pk")
        .values_list("kind", flat=True)
        .first()
    )
    return staff != BillingActionKind.SUSPEND


def subscription_ids_with_overdue_invoices() -> list[int]:
    """Subscriptions with a renewal unpaid after a failure whose account is neither suspended nor terminated (the
    sweep checks whether Stripe's clock has passed the point)."""
    return list(
        SubscriptionInvoice.objects.filter(status=InvoiceStatus.OPEN, first_failed_at__isnull=False)
        .exclude(
            subscription__hosting_account__status__in=(HostingAccountStatus.SUSPENDED, HostingAccountStatus.TERMINATED),
        )
        .values_list("subscription_id", flat=True)
        .distinct()[:500]
    )


def subscriptions_ended_not_terminated() -> QuerySet[Subscription]:
    """Ended subscriptions whose account is not terminated and has no termination on its way."""
    terminating = ProvisioningJob.objects.filter(
        subscription=OuterRef("pk"),
        action=ProvisioningAction.TERMINATE,
    ).exclude(status__in=(ProvisioningJobStatus.CANCELED, ProvisioningJobStatus.FAILED))
    return (
        Subscription.objects.filter(status__in=ENDED_STATUSES, ended_at__isnull=False)
        .exclude(hosting_account__status=HostingAccountStatus.TERMINATED)
        .exclude(Exists(terminating))
        .select_related("customer", "checkout_session")
        .order_by("ended_at")
    )


def provisioning_failures_heading_for_refund() -> QuerySet[ProvisioningJob]:
    """Provision jobs that failed for good and that no one has resolved: each is refunded automatically
    PROVISIONING_AUTO_REFUND_AFTER_HOURS after it failed (the dashboard lists them with that time)."""
    refunded = BillingAction.objects.filter(
        subscription=OuterRef("subscription_id"), kind=BillingActionKind.AUTO_REFUND, status=BillingActionStatus.DONE
    )
    return (
        ProvisioningJob.objects.filter(action=ProvisioningAction.PROVISION, status=ProvisioningJobStatus.FAILED)
        .exclude(subscription__status__in=ENDED_STATUSES)
        .exclude(Exists(refunded))
        .select_related("subscription__customer")
        .order_by("finished_at")
    )


def subscription_ids_due_for_auto_refund(*, now: datetime) -> list[int]:
    hours = settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS
    if not hours:
        return []
    jobs = provisioning_failures_heading_for_refund().filter(finished_at__lte=now - timedelta(hours=hours))
    return list(jobs.values_list("subscription_id", flat=True)[:100])


def billing_action_ids_stale(*, now: datetime) -> list[int]:
    """Stripe calls recorded but never finished (the process died, Stripe was down): performed again."""
    stripe_kinds = (
        BillingActionKind.CANCEL_NOW,
        BillingActionKind.CANCEL_AT_PERIOD_END,
        BillingActionKind.UNDO_CANCEL,
        BillingActionKind.REFUND,
        BillingActionKind.CHANGE_PLAN,
    )
    return list(
        BillingAction.objects.filter(
            status=BillingActionStatus.REQUESTED,
            kind__in=stripe_kinds,
            updated_at__lt=now - ACTION_STALE_AFTER,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:100]
    )


def subscription_id_for_payment_intent(*, payment_intent: str) -> int | None:
    return (
        SubscriptionInvoice.objects.filter(stripe_payment_intent_id=payment_intent)
        .values_list("subscription_id", flat=True)
        .first()
    )


def payment_intent_amount_paid(*, subscription: Subscription, payment_intent: str) -> int:
    return (
        subscription.invoices.filter(stripe_payment_intent_id=payment_intent).aggregate(total=Sum("amount_paid"))[
            "total"
        ]
        or 0
    )


def payment_intent_is_latest_payment(*, subscription: Subscription, payment_intent: str) -> bool:
    """True when this payment paid the service's current period: no newer paid period invoice exists (or we cannot
    tell which invoice it paid)."""
    invoice = subscription.invoices.filter(stripe_payment_intent_id=payment_intent).first()
    if invoice is None:
        return True
    if invoice.billing_reason not in SERVICE_INVOICE_REASONS:
        return False  # a plan change's proration charge, say: refunding it does not take the service back
    return not subscription.invoices.filter(
        status=InvoiceStatus.PAID,
        amount_paid__gt=0,
        billing_reason__in=SERVICE_INVOICE_REASONS,
        stripe_created__gt=invoice.stripe_created,
    ).exists()


def invoice_refundable_amount(*, invoice: SubscriptionInvoice) -> int:
    """What is left to refund of the invoice's payment: paid, less the refunds recorded against its payment (pending
    ones included) and the refunds staff asked for whose Stripe call has not finished."""
    if invoice.status != InvoiceStatus.PAID:
        return 0
    refunded = 0
    if invoice.stripe_payment_intent_id:
        refunded = (
            RefundRecord.objects.filter(
                stripe_payment_intent_id=invoice.stripe_payment_intent_id,
                status__in=("succeeded", "pending"),
            ).aggregate(total=Sum("amount"))["total"]
            or 0
        )
    return max(0, invoice.amount_paid - refunded - _requested_refunds(invoice))


def _requested_refunds(invoice: SubscriptionInvoice) -> int:
    """Refunds staff asked for that Stripe has not confirmed yet (still REQUESTED): they count as spent."""
    return (
        BillingAction.objects.filter(
            kind=BillingActionKind.REFUND,
            status=BillingActionStatus.REQUESTED,
            stripe_object_id=invoice.stripe_invoice_id,
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )

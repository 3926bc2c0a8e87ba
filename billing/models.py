"""Billing after the first payment: our record of each invoice and refund Stripe reports, the decisions we took
about them (who, why, when), and how far Stripe's clocks have moved. Stripe's own data stays in dj-stripe's rows."""

import uuid

from django.db import models

from core.models import TimeStampedModel


class InvoiceStatus(models.TextChoices):
    """Stripe's invoice statuses."""

    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    VOID = "void", "Void"


class SubscriptionInvoice(TimeStampedModel):
    """One Stripe invoice of one of our subscriptions, as the newest event or re-read showed it, plus what only we
    track: when its first attempt failed (the suspension clock starts there)."""

    subscription = models.ForeignKey("accounts.Subscription", on_delete=models.PROTECT, related_name="invoices")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    number = models.CharField(max_length=100, blank=True)
    billing_reason = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices)
    amount_due = models.IntegerField(default=0)
    amount_paid = models.IntegerField(default=0)
    amount_remaining = models.IntegerField(default=0)
    currency = models.CharField(max_length=3)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    first_failed_at = models.DateTimeField(
        null=True, blank=True, help_text="Stripe's time of the first failed attempt at paying it."
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    stripe_created = models.DateTimeField(help_text="When Stripe created the invoice (Stripe's clock).")
    stripe_state_at = models.DateTimeField(help_text="Stripe's time of the newest state applied.")

    class Meta:
        ordering = ("-stripe_created", "-id")
        indexes = [
            models.Index(fields=("subscription", "-stripe_created"), name="billing_invoice_sub_created"),
            # Refunds and charges name a payment intent: which invoice (and subscription) it paid.
            models.Index(fields=("stripe_payment_intent_id",), name="billing_invoice_payment_intent"),
        ]

    def __str__(self) -> str:
        return self.number or self.stripe_invoice_id


class RefundRecord(TimeStampedModel):
    """A refund Stripe reports for one of our subscriptions' payments (by staff, by the auto-refund rule, or made in
    Stripe's dashboard)."""

    subscription = models.ForeignKey("accounts.Subscription", on_delete=models.PROTECT, related_name="refunds")
    stripe_refund_id = models.CharField(max_length=255, unique=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=30)
    reason = models.CharField(max_length=50, blank=True)
    charge_fully_refunded = models.BooleanField(default=False)
    stripe_created = models.DateTimeField()

    class Meta:
        ordering = ("-stripe_created", "-id")

    def __str__(self) -> str:
        return self.stripe_refund_id


class BillingActionKind(models.TextChoices):
    CANCEL_NOW = "cancel_now", "Cancel now"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end", "Cancel at period end"
    UNDO_CANCEL = "undo_cancel", "Undo cancellation"
    REFUND = "refund", "Refund"
    SUSPEND = "suspend", "Suspend"
    UNSUSPEND = "unsuspend", "Unsuspend"
    TERMINATE = "terminate", "Terminate"
    AUTO_REFUND = "auto_refund", "Refund of a failed setup"
    CHANGE_PLAN = "change_plan", "Change plan"


class BillingActionStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"  # recorded; the Stripe call or job is on its way
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class BillingAction(TimeStampedModel):
    """A decision about a subscription taken by staff or by a rule of ours: who, why, when, and what Stripe said.

    Its `idempotency_key` goes to Stripe with the call, so a click repeated or a task run twice asks once.
    """

    subscription = models.ForeignKey("accounts.Subscription", on_delete=models.PROTECT, related_name="billing_actions")
    kind = models.CharField(max_length=30, choices=BillingActionKind.choices)
    status = models.CharField(max_length=20, choices=BillingActionStatus.choices, default=BillingActionStatus.REQUESTED)
    reason = models.TextField()
    actor = models.ForeignKey(
        "accounts.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when a rule of ours decided.",
    )
    amount = models.PositiveIntegerField(null=True, blank=True, help_text="Refunds: in cents.")
    price = models.ForeignKey(
        "catalog.Price",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Plan changes: the price moved to.",
    )
    details = models.JSONField(
        default=dict,
        blank=True,
        help_text="Plan changes: the plan moved from, the proration date and behaviour "
        "Stripe was asked for, and what it charged.",
    )
    idempotency_key = models.CharField(max_length=255, unique=True, default=uuid.uuid4)
    stripe_object_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        permissions = [
            ("cancel_subscription", "Can cancel subscriptions (now or at period end)"),
            ("suspend_account", "Can suspend and unsuspend hosting accounts"),
            ("refund_payment", "Can refund payments"),
            ("terminate_account", "Can terminate hosting accounts"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of subscription {self.subscription_id} ({self.status})"


class StripeClock(models.Model):
    """The newest time Stripe has shown us, per clock: "" for Stripe's own time, or a test clock's id.

    Time-based rules (termination after N days) compare against this, not our wall clock alone, so they follow a
    Stripe test clock or the sandbox's clock when those are moved forward. It only ever moves forward.
    """

    scope = models.CharField(max_length=255, unique=True, blank=True)
    now = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.scope or 'stripe'} at {self.now:%Y-%m-%d %H:%M}"

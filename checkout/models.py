"""A checkout session: the customer's intent to buy, recorded before Stripe reports the payment."""

import uuid

from django.db import models

from core.models import TimeStampedModel


class CheckoutSessionStatus(models.TextChoices):
    PENDING = "pending", "Pending payment"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    NEEDS_REVIEW = "needs_review", "Needs review"


class CheckoutSession(TimeStampedModel):
    """The seed's `checkout_sessions` table, plus what retries, expiry and fulfilment need.

    No foreign key to users or customers: a session exists before either does. `price` is kept only to know what
    was sold; the amount is copied so later catalog edits never change what this session charged.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stripe_session_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    email = models.CharField(max_length=255, db_index=True)
    customer_name = models.CharField(max_length=255, null=True, blank=True)
    product_code = models.CharField(max_length=100, db_index=True)
    billing_cycle = models.CharField(max_length=50)
    amount = models.IntegerField(help_text="Catalog price of one billing period, in cents, before any discount.")
    currency = models.CharField(max_length=3, default="usd")
    coupon_code = models.CharField(max_length=50, null=True, blank=True)
    domain_info = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=50, choices=CheckoutSessionStatus.choices, default=CheckoutSessionStatus.PENDING, db_index=True
    )
    metadata = models.JSONField(default=dict, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    # Beyond the seed's columns.
    price = models.ForeignKey(
        "catalog.Price", on_delete=models.PROTECT, null=True, blank=True, related_name="checkout_sessions"
    )
    amount_discount = models.IntegerField(default=0, help_text="Discount on the first invoice, in cents.")
    trial_days = models.PositiveSmallIntegerField(null=True, blank=True)
    stripe_url = models.URLField(max_length=2048, help_text="Stripe's hosted payment page for this session.")
    expires_at = models.DateTimeField()
    request_fingerprint = models.CharField(
        max_length=64, db_index=True, help_text="Hash of the normalised request: a retry finds this session by it."
    )
    idempotency_key = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="The client's Idempotency-Key header, if it sent one: the same key with another body is refused.",
    )

    class Meta:
        db_table = "checkout_sessions"
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=("request_fingerprint", "-created_at"), name="checkout_fingerprint_recent"),
            models.Index(
                fields=("idempotency_key", "-created_at"),
                name="checkout_idemkey_recent",
                condition=models.Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} {self.product_code}/{self.billing_cycle} ({self.status})"

    @property
    def amount_due_first(self) -> int:
        """What the first invoice should charge: nothing during a trial, else the price less the discount."""
        return 0 if self.trial_days else max(self.amount - self.amount_discount, 0)

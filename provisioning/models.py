"""What fulfilment leaves for the workers: provisioning jobs and e-mails, written in the same transaction as the
subscription (a transactional outbox), so a paid order has its work recorded even while Redis or a worker is down."""

import uuid

from django.db import models

from core.models import TimeStampedModel


class ProvisioningJobStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # recorded; waiting for a worker
    RUNNING = "running", "Running"  # a worker holds it (until lease_expires_at)
    RETRYING = "retrying", "Retrying"  # the last attempt failed; another is scheduled
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"  # attempts exhausted: staff were alerted


class ProvisioningJob(TimeStampedModel):
    subscription = models.ForeignKey("accounts.Subscription", on_delete=models.PROTECT,
                                     related_name="provisioning_jobs")
    action = models.CharField(max_length=20, default="provision")
    status = models.CharField(max_length=20, choices=ProvisioningJobStatus.choices,
                              default=ProvisioningJobStatus.PENDING, db_index=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                                       help_text="Sent to the control panel so a repeated call creates nothing new.")
    backend = models.CharField(max_length=50, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    last_error = models.TextField(blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last time a task was sent for it.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=("subscription", "action"), name="provisioning_job_one_per_action"),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} ({self.status})"


class ProvisioningAttempt(models.Model):
    job = models.ForeignKey(ProvisioningJob, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("job", "number")
        constraints = [models.UniqueConstraint(fields=("job", "number"), name="provisioning_attempt_unique")]


class HostingAccount(TimeStampedModel):
    """The service a provisioning job delivered, as the control panel reported it."""

    subscription = models.OneToOneField("accounts.Subscription", on_delete=models.PROTECT,
                                        related_name="hosting_account")
    username = models.CharField(max_length=64)
    server = models.CharField(max_length=255)
    domain = models.CharField(max_length=253, blank=True)
    panel_reference = models.CharField(max_length=255, blank=True, help_text="The control panel's own id.")

    def __str__(self) -> str:
        return f"{self.username}@{self.server}"


class EmailPurpose(models.TextChoices):
    SET_PASSWORD = "set_password", "Set your password"
    ORDER_CONFIRMATION = "order_confirmation", "Order confirmation"
    SERVICE_READY = "service_ready", "Service ready"
    PAYMENT_FAILED = "payment_failed", "Payment failed"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailNotification(TimeStampedModel):
    """One e-mail to a customer about one order, at most once per purpose (the unique constraint says so)."""

    checkout_session = models.ForeignKey("checkout.CheckoutSession", on_delete=models.PROTECT,
                                         related_name="emails")
    purpose = models.CharField(max_length=30, choices=EmailPurpose.choices)
    to = models.EmailField(max_length=254)
    status = models.CharField(max_length=20, choices=EmailStatus.choices, default=EmailStatus.PENDING,
                              db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=("checkout_session", "purpose"), name="provisioning_email_once_per_purpose"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} to {self.to} ({self.status})"

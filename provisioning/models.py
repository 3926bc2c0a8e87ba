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
    CANCELED = "canceled", "Canceled"  # superseded by a later decision before it ran (never sent to the panel)
    # Support made the account in the control panel themselves and recorded it: closed, but no attempt of ours made it.
    DONE_BY_HAND = "done_by_hand", "Set up by hand"


class ProvisioningAction(models.TextChoices):
    """What a job asks of the control panel. One `provision` per subscription; the others are billing decisions,
    as many as the subscription's life needs, run in the order they were decided."""

    PROVISION = "provision", "Provision"
    SUSPEND = "suspend", "Suspend"
    UNSUSPEND = "unsuspend", "Unsuspend"
    TERMINATE = "terminate", "Terminate"
    CHANGE_PLAN = "change_plan", "Change plan"  # the account's resources follow the plan the customer moved to


class ProvisioningJob(TimeStampedModel):
    subscription = models.ForeignKey(
        "accounts.Subscription", on_delete=models.PROTECT, related_name="provisioning_jobs"
    )
    action = models.CharField(max_length=20, choices=ProvisioningAction.choices, default=ProvisioningAction.PROVISION)
    decision_key = models.CharField(
        max_length=200,
        unique=True,
        null=True,
        blank=True,
        help_text="The billing decision this job carries out (e.g. suspend:in_123): the same decision, reached "
        "twice by a duplicated or late event, makes no second job.",
    )
    reason = models.TextField(blank=True, help_text="Why: the rule or the staff member's words.")
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the panel is asked for beyond the action, as decided: for change_plan the new product_code "
        "and billing_cycle (and the previous ones).",
    )
    email_context = models.JSONField(
        default=dict,
        blank=True,
        help_text="Facts the customer's e-mail about this decision states, as decided (the amount owed, the pay "
        "link); sent with the reason once the panel carried the decision out.",
    )
    requested_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Staff who decided it; empty for automatic rules.",
    )
    superseded_by = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(
        max_length=20, choices=ProvisioningJobStatus.choices, default=ProvisioningJobStatus.PENDING, db_index=True
    )
    idempotency_key = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Sent to the control panel so a repeated call creates nothing new.",
    )
    backend = models.CharField(max_length=50, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts made, in all (each is in the attempt log).")
    max_attempts = models.PositiveIntegerField(
        default=5,
        help_text="The attempt number after which the job fails: the allowance counted from allowance_attempts_before.",
    )
    allowance_attempts_before = models.PositiveIntegerField(
        default=0,
        help_text="Attempts made before the current allowance: support's retry gives a fresh allowance "
        "from there, and the attempts before it stay in the log.",
    )
    allowance_granted_at = models.DateTimeField(
        null=True, blank=True, help_text="When support last gave the job a fresh allowance."
    )
    allowance_granted_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
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
            models.UniqueConstraint(
                fields=("subscription",), condition=models.Q(action="provision"), name="provisioning_job_one_provision"
            ),
        ]
        indexes = [
            models.Index(fields=("subscription", "id"), name="provisioning_job_sub_order"),
            # The job list filtered by action or status, newest first: a range of the index, not a scan of millions.
            models.Index(fields=("action", "-created_at"), name="provisioning_job_action_new"),
            models.Index(fields=("status", "-created_at"), name="provisioning_job_status_new"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.pk} ({self.get_status_display()})"

    @property
    def allowance(self) -> int:
        """Attempts the current allowance holds (PROVISIONING_MAX_ATTEMPTS when it was given)."""
        return self.max_attempts - self.allowance_attempts_before

    @property
    def attempts_in_allowance(self) -> int:
        """Attempts made since the current allowance began: what "attempt 2 of 5" counts."""
        return self.attempts - self.allowance_attempts_before


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

    def __str__(self) -> str:
        outcome = "succeeded" if self.succeeded else "failed" if self.finished_at else "running"
        return f"Attempt {self.number} of job #{self.job_id}: {outcome}"


class HostingAccountStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    TERMINATED = "terminated", "Terminated"  # final


class HostingAccount(TimeStampedModel):
    """The service a provisioning job delivered, as the control panel reported it."""

    status = models.CharField(
        max_length=20, choices=HostingAccountStatus.choices, default=HostingAccountStatus.ACTIVE, db_index=True
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    subscription = models.OneToOneField(
        "accounts.Subscription", on_delete=models.PROTECT, related_name="hosting_account"
    )
    username = models.CharField(max_length=64)
    server = models.CharField(max_length=255)
    domain = models.CharField(max_length=253, blank=True)
    panel_reference = models.CharField(max_length=255, blank=True, help_text="The control panel's own id.")
    set_up_by = models.ForeignKey(
        "accounts.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Staff who made the account in the control panel by hand and recorded it here; empty when the "
        "panel reported it to a provisioning job.",
    )

    class Meta:
        indexes = [
            # Exact and prefix lookups of a panel username (support's search, the by-hand check that a username is
            # free on its server) on a table of millions: pattern ops serve both = and LIKE 'abc%'.
            models.Index(
                fields=("username", "server"),
                name="provisioning_account_username",
                opclasses=("varchar_pattern_ops", "varchar_pattern_ops"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.server}"


class HostingAccountStatusChange(models.Model):
    """The account's status history: one row per change the control panel confirmed (or staff recorded)."""

    account = models.ForeignKey(HostingAccount, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=HostingAccountStatus.choices)
    to_status = models.CharField(max_length=20, choices=HostingAccountStatus.choices)
    job = models.ForeignKey(ProvisioningJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("account", "created_at", "id")

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status}"


class EmailPurpose(models.TextChoices):
    SET_PASSWORD = "set_password", "Set your password"
    ORDER_CONFIRMATION = "order_confirmation", "Order confirmation"
    SERVICE_READY = "service_ready", "Service ready"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    # The subscription's life after the first payment (billing); keyed by the invoice or decision they are about.
    RENEWAL_RECEIPT = "renewal_receipt", "Renewal receipt"
    RENEWAL_FAILED = "renewal_failed", "Renewal payment failed"
    SERVICE_SUSPENDED = "service_suspended", "Service suspended"
    TERMINATION_WARNING = "termination_warning", "Termination warning"
    SERVICE_TERMINATED = "service_terminated", "Service terminated"
    CANCELLATION_CONFIRMED = "cancellation_confirmed", "Cancellation confirmed"
    REFUND_ISSUED = "refund_issued", "Refund issued"
    SETUP_FAILED_REFUNDED = "setup_failed_refunded", "Setup failed, refunded"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"  # a worker holds it (until lease_expires_at), or handed it over (handed_over_at)
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class EmailNotification(TimeStampedModel):
    """One e-mail to a customer about one order, one row per purpose and key (the unique constraint says so)."""

    checkout_session = models.ForeignKey("checkout.CheckoutSession", on_delete=models.PROTECT, related_name="emails")
    purpose = models.CharField(max_length=30, choices=EmailPurpose.choices)
    key = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="What this e-mail is about when a purpose recurs (an invoice, a refund, a "
        "decision); empty for the once-per-order e-mails.",
    )
    context = models.JSONField(default=dict, blank=True, help_text="Facts the e-mail states, as decided.")
    to = models.EmailField(max_length=254)
    status = models.CharField(max_length=20, choices=EmailStatus.choices, default=EmailStatus.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While sending: until when the worker that claimed it holds it. Past it, the e-mail is tried "
        "again (under the same Message-ID).",
    )
    handed_over_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the message started to go to the mail server, on the latest attempt: from then on the "
        "customer may have it, and a retry can be a second copy (same Message-ID).",
    )
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("checkout_session", "purpose", "key"), name="provisioning_email_once_per_purpose_key"
            ),
        ]
        # The customer page's "all e-mails to this address" (the e-mail list filtered by `to`).
        indexes = [models.Index(fields=("to",), name="provisioning_email_to")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} to {self.to} ({self.get_status_display()})"

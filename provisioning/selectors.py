"""Reads of provisioning: what the sweeper must send again, and what staff should look at."""

from datetime import datetime, timedelta

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce, Greatest

from provisioning.models import EmailNotification, EmailStatus, ProvisioningJob, ProvisioningJobStatus

# An e-mail claimed for sending this long ago and still not sent: its worker died mid-send.
EMAIL_STUCK_AFTER = timedelta(minutes=15)


def provisioning_job_ids_to_send(*, now: datetime, stale_before: datetime, limit: int) -> list[int]:
    """Jobs that should have started by now but have no live task: never sent (the broker was down), sent and lost,
    a retry whose message vanished, or running under a lease that expired with attempts left (worker killed).

    `waiting_since` is when a sent task should have picked the job up: the last send, or the retry's due time if
    later (a retry's message is sent early, with a countdown). It must be older than `stale_before`, so a job whose
    task is merely still in the queue is not sent again on every sweep.
    """
    waiting = Q(status__in=(ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING))
    abandoned = Q(status=ProvisioningJobStatus.RUNNING, lease_expires_at__lt=now, attempts__lt=F("max_attempts"))
    jobs = ProvisioningJob.objects.alias(
        waiting_since=Greatest(Coalesce("enqueued_at", "created_at"), Coalesce("next_attempt_at", "created_at"))
    ).filter(waiting | abandoned, waiting_since__lt=stale_before)
    return list(jobs.order_by("pk").values_list("pk", flat=True)[:limit])


def provisioning_job_ids_abandoned_without_attempts(*, now: datetime, limit: int) -> list[int]:
    """Running jobs whose lease expired on their last allowed attempt: nobody will run them again."""
    jobs = ProvisioningJob.objects.filter(
        status=ProvisioningJobStatus.RUNNING, lease_expires_at__lt=now, attempts__gte=F("max_attempts")
    )
    return list(jobs.order_by("pk").values_list("pk", flat=True)[:limit])


def email_notification_ids_to_send(*, stale_before: datetime, limit: int) -> list[int]:
    """Pending e-mails whose task was never sent, got lost, or whose SMTP server could not be reached."""
    emails = EmailNotification.objects.alias(waiting_since=Coalesce("enqueued_at", "created_at")).filter(
        status=EmailStatus.PENDING, waiting_since__lt=stale_before
    )
    return list(emails.order_by("pk").values_list("pk", flat=True)[:limit])


def email_notification_list_needing_attention(
    *, now: datetime, queryset: QuerySet[EmailNotification] | None = None
) -> QuerySet[EmailNotification]:
    """E-mails a person should look at: failed ones, and ones left in `sending` by a worker that died (maybe
    delivered, maybe not, so never re-sent automatically)."""
    queryset = EmailNotification.objects.all() if queryset is None else queryset
    return queryset.filter(
        Q(status=EmailStatus.FAILED) | Q(status=EmailStatus.SENDING, updated_at__lt=now - EMAIL_STUCK_AFTER)
    )

"""Writes of provisioning: jobs and e-mails recorded in the caller's transaction (a transactional outbox), one
attempt at a job against the backend, one e-mail sent at most once, and the sweeper that re-sends what waited."""

import dataclasses
import logging
import random
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import get_connection, mail_admins
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.models import Subscription
from checkout.models import CheckoutSession
from provisioning import selectors
from provisioning.backends import ProvisionedAccount, ProvisioningError, ProvisioningRequest, provisioning_backend_get
from provisioning.emails import email_message_build
from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    EmailStatus,
    HostingAccount,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.outbox import email_notification_enqueue, provisioning_job_enqueue

logger = logging.getLogger(__name__)

PROVISION = "provision"
# Attempts at reaching the mail server before an e-mail is given up (only failures to connect are retried, one per
# sweep: about five minutes of a mail-server outage at the default interval). Staff can send failed ones again.
EMAIL_MAX_ATTEMPTS = 10
SWEEP_BATCH_SIZE = 200
ABANDONED = "abandoned: the worker stopped before finishing and its lease expired"


# --- Jobs -------------------------------------------------------------------------------------------------------------


def provisioning_job_create(*, subscription: Subscription) -> ProvisioningJob:
    """The subscription's provisioning job, created once, its task sent when the caller's transaction commits.

    Called inside fulfilment's transaction: the row commits with the subscription or not at all, so a paid order
    always has its job even when Redis is down (the sweeper sends it later).
    """
    job, created = ProvisioningJob.objects.get_or_create(
        subscription=subscription,
        action=PROVISION,
        defaults={"backend": provisioning_backend_get().name, "max_attempts": settings.PROVISIONING_MAX_ATTEMPTS},
    )
    if created:
        transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
    return job


def provisioning_job_run(*, job_id: int) -> ProvisioningJob | None:
    """One attempt at a job (the task's body). None when the job is not this delivery's to run: finished already,
    not due yet, or held by a worker whose lease is still valid (the same message delivered twice).

    The backend is called outside any transaction and without a row lock. The outcome is written only if this
    attempt still holds the job (status running, same attempt number): a worker that outlived its lease cannot
    overwrite what the attempt that replaced it recorded.
    """
    backend = provisioning_backend_get()
    attempt = _job_claim(job_id=job_id, backend_name=backend.name)
    if attempt is None:
        logger.info("Provisioning job %s not claimed: finished, not due, or held by another worker", job_id)
        return None
    job = attempt.job
    try:
        account = backend.provision(_provisioning_request(job=job, attempt=attempt.number))
    except ProvisioningError as error:
        _job_record_failure(job=job, attempt=attempt, error=str(error), retryable=error.retryable)
    except Exception as error:
        # A backend bug counts as a failed attempt like any other; the traceback goes to the log.
        logger.exception("Provisioning job %s: the %s backend raised", job.pk, backend.name)
        _job_record_failure(job=job, attempt=attempt, error=_error_text(error), retryable=True)
    else:
        _job_record_success(job=job, attempt=attempt, account=account)
    job.refresh_from_db()
    return job


def provisioning_job_retry(*, job: ProvisioningJob) -> bool:
    """Staff's "run it again" for a failed job (after fixing what failed it): a fresh allowance of attempts.

    Earlier attempts stay in the log; the idempotency key stays too, so a panel that did create the account answers
    with it. False when the job is not failed.
    """
    with transaction.atomic():
        reopened = ProvisioningJob.objects.filter(pk=job.pk, status=ProvisioningJobStatus.FAILED).update(
            status=ProvisioningJobStatus.PENDING,
            max_attempts=F("attempts") + settings.PROVISIONING_MAX_ATTEMPTS,
            next_attempt_at=None,
            finished_at=None,
            updated_at=timezone.now(),
        )
        if reopened:
            transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
    return bool(reopened)


def provisioning_retry_delay(*, attempt: int) -> float:
    """Seconds before the attempt after `attempt`: exponential, capped, and half of it random ("equal jitter"), so
    jobs that failed together (a panel outage) do not all come back at the same moment."""
    exponential = settings.PROVISIONING_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    ceiling = min(settings.PROVISIONING_RETRY_CAP_SECONDS, exponential)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _job_claim(*, job_id: int, backend_name: str) -> ProvisioningAttempt | None:
    """Take the job for one attempt, in one conditional UPDATE: of two deliveries of the same message, the database
    lets exactly one through (on PostgreSQL the second waits for the row and then finds it running)."""
    now = timezone.now()
    due = Q(status__in=(ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    abandoned = Q(status=ProvisioningJobStatus.RUNNING, lease_expires_at__lt=now)
    with transaction.atomic():
        claimed = ProvisioningJob.objects.filter(due | abandoned, pk=job_id, attempts__lt=F("max_attempts")).update(
            status=ProvisioningJobStatus.RUNNING,
            attempts=F("attempts") + 1,
            backend=backend_name,
            next_attempt_at=None,
            lease_expires_at=now + timedelta(seconds=settings.PROVISIONING_LEASE_SECONDS),
            started_at=Coalesce("started_at", Value(now)),
            updated_at=now,
        )
        if not claimed:
            return None
        job = ProvisioningJob.objects.select_related(
            "subscription__customer", "subscription__product", "subscription__checkout_session"
        ).get(pk=job_id)
        job.attempt_log.filter(finished_at__isnull=True).update(finished_at=now, error=ABANDONED)
        return ProvisioningAttempt.objects.create(job=job, number=job.attempts, started_at=now)


def _provisioning_request(*, job: ProvisioningJob, attempt: int) -> ProvisioningRequest:
    subscription = job.subscription
    return ProvisioningRequest(
        idempotency_key=str(job.idempotency_key),
        job_id=job.pk,
        attempt=attempt,
        subscription_id=subscription.pk,
        product_code=subscription.product.code,
        billing_cycle=subscription.billing_cycle,
        domain=subscription.domain,
        customer_email=subscription.customer.email,
        customer_name=subscription.customer.name,
    )


def _job_update_if_held(*, job: ProvisioningJob, attempt: ProvisioningAttempt, **fields) -> bool:
    held = ProvisioningJob.objects.filter(
        pk=job.pk, status=ProvisioningJobStatus.RUNNING, attempts=attempt.number
    ).update(lease_expires_at=None, updated_at=timezone.now(), **fields)
    if not held:
        logger.warning("Provisioning job %s: attempt %s ended after its lease expired and another attempt took "
                       "over; its outcome is not recorded", job.pk, attempt.number)
    return bool(held)


def _job_record_success(*, job: ProvisioningJob, attempt: ProvisioningAttempt, account: ProvisionedAccount) -> None:
    now = timezone.now()
    subscription = job.subscription
    with transaction.atomic():
        if not _job_update_if_held(job=job, attempt=attempt, status=ProvisioningJobStatus.SUCCEEDED, finished_at=now,
                                   last_error="", result={**dataclasses.asdict(account), "backend": job.backend}):
            return
        ProvisioningAttempt.objects.filter(pk=attempt.pk).update(finished_at=now, succeeded=True)
        HostingAccount.objects.get_or_create(subscription=subscription, defaults={
            "username": account.username, "server": account.server, "domain": account.domain,
            "panel_reference": account.reference,
        })
        email_notification_create(checkout_session=subscription.checkout_session, purpose=EmailPurpose.SERVICE_READY,
                                  to=subscription.customer.email)
    logger.info("Provisioning job %s succeeded on attempt %s: %s@%s", job.pk, attempt.number, account.username,
                account.server)


def _job_record_failure(*, job: ProvisioningJob, attempt: ProvisioningAttempt, error: str, retryable: bool) -> None:
    now = timezone.now()
    retry = retryable and attempt.number < job.max_attempts
    delay = provisioning_retry_delay(attempt=attempt.number) if retry else 0.0
    with transaction.atomic():
        if retry:
            fields = {"status": ProvisioningJobStatus.RETRYING, "next_attempt_at": now + timedelta(seconds=delay)}
        else:
            fields = {"status": ProvisioningJobStatus.FAILED, "finished_at": now}
        if not _job_update_if_held(job=job, attempt=attempt, last_error=error, **fields):
            return
        ProvisioningAttempt.objects.filter(pk=attempt.pk).update(finished_at=now, error=error)
        if retry:
            logger.warning("Provisioning job %s: attempt %s of %s failed, next in %.0f s: %s", job.pk, attempt.number,
                           job.max_attempts, delay, error)
            # The retry's message carries the countdown; should it be lost, the sweeper sends the job once due.
            transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk, countdown=delay))
        else:
            _job_failed_alert(job=job, attempts=attempt.number, error=error)


def _job_failed_alert(*, job: ProvisioningJob, attempts: int, error: str) -> None:
    """Tell staff that a paid order has no service, once (it follows the one transition to failed).

    Through `mail_admins` (settings.ADMINS), the channel fulfilment already uses for orders set aside for review,
    so staff have one list to maintain; and as an ERROR log line, which log-based alerting sees even if ADMINS is
    empty or the mail server is down. Mailed after commit: no alert for a failure that was rolled back, and nothing
    in the e-mail's making can undo the transition.
    """
    logger.error("Provisioning job %s (subscription %s) failed after %s attempts: %s", job.pk, job.subscription_id,
                 attempts, error)
    transaction.on_commit(partial(_job_failed_mail_admins, job_id=job.pk, attempts=attempts, error=error))


def _job_failed_mail_admins(*, job_id: int, attempts: int, error: str) -> None:
    try:
        job = ProvisioningJob.objects.select_related("subscription__customer", "subscription__product").get(pk=job_id)
        subscription = job.subscription
        admin_path = reverse("admin:provisioning_provisioningjob_change", args=[job.pk])
        mail_admins(
            f"Provisioning failed: {subscription.domain or subscription.customer.email} (job {job.pk})",
            f"A paid order has no hosting account: provisioning gave up after {attempts} attempts.\n\n"
            f"Job:          {job.pk} (backend {job.backend}, idempotency key {job.idempotency_key})\n"
            f"Subscription: {subscription.pk}, {subscription.product.code} / {subscription.billing_cycle}\n"
            f"Customer:     {subscription.customer.name} <{subscription.customer.email}>\n"
            f"Domain:       {subscription.domain or '-'}\n"
            f"Last error:   {error}\n\n"
            f"Once the cause is fixed, run it again from the admin (action \"Run again\"):\n"
            f"{settings.SITE_URL}{admin_path}\n",
        )
    except Exception:
        logger.exception("Could not e-mail the admins about failed provisioning job %s", job_id)


# --- E-mails ----------------------------------------------------------------------------------------------------------


def email_notification_create(*, checkout_session: CheckoutSession, purpose: str, to: str, key: str = "",
                              context: dict | None = None) -> EmailNotification:
    """The order's e-mail for this purpose (and key: the invoice, refund or decision it is about), created once (the
    unique constraint), sent after the caller commits. `context` holds the facts it states, as decided now."""
    if purpose not in EmailPurpose.values:
        raise ValueError(f"Unknown e-mail purpose {purpose!r}")
    notification, created = EmailNotification.objects.get_or_create(
        checkout_session=checkout_session, purpose=purpose, key=key, defaults={"to": to, "context": context or {}}
    )
    if created:
        transaction.on_commit(partial(email_notification_enqueue, email_id=notification.pk))
    return notification


def email_notification_send(*, email_id: int) -> EmailNotification | None:
    """Send one e-mail, at most once (the task's body). None when it is not pending (sent, being sent, given up).

    At most once rather than at least once: the row is claimed (pending -> sending) before anything is sent, and
    only a failure to connect to the mail server, when certainly nothing left, puts it back to pending for the
    sweeper. Any error once the message is handed over marks it failed, and a worker that dies after claiming
    leaves it in `sending`: in both cases the server may have accepted it, so it is never re-sent automatically.
    Staff see such e-mails in the admin (filter "Needs attention") and may send them again by hand.
    """
    claimed = EmailNotification.objects.filter(pk=email_id, status=EmailStatus.PENDING).update(
        status=EmailStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    notification = EmailNotification.objects.select_related("checkout_session").get(pk=email_id)
    try:
        message = email_message_build(notification=notification)
    except Exception as error:
        logger.exception("E-mail %s (%s) could not be built", notification.pk, notification.purpose)
        return _email_finish(notification=notification, status=EmailStatus.FAILED, error=_error_text(error))

    connection = get_connection()
    try:
        connection.open()
    except Exception as error:
        again = notification.attempts < EMAIL_MAX_ATTEMPTS
        logger.warning("E-mail %s: the mail server could not be reached (attempt %s)%s: %s", notification.pk,
                       notification.attempts, "; the sweeper will try again" if again else "; giving up", error)
        return _email_finish(notification=notification, status=EmailStatus.PENDING if again else EmailStatus.FAILED,
                             error=_error_text(error))
    try:
        sent = connection.send_messages([message])
    except Exception as error:
        logger.exception("E-mail %s (%s) failed while sending; not sent again automatically", notification.pk,
                         notification.purpose)
        return _email_finish(notification=notification, status=EmailStatus.FAILED, error=_error_text(error))
    finally:
        connection.close()
    if not sent:
        return _email_finish(notification=notification, status=EmailStatus.FAILED, error="the mail server refused it")
    return _email_finish(notification=notification, status=EmailStatus.SENT)


def email_notification_send_again(*, notification: EmailNotification) -> bool:
    """Staff's decision to send a failed or stuck e-mail again, accepting that the customer may get it twice.
    False for any other e-mail (one still being sent is left alone)."""
    now = timezone.now()
    with transaction.atomic():
        reopened = selectors.email_notification_list_needing_attention(
            now=now, queryset=EmailNotification.objects.filter(pk=notification.pk)
        ).update(status=EmailStatus.PENDING, updated_at=now)
        if reopened:
            transaction.on_commit(partial(email_notification_enqueue, email_id=notification.pk))
    return bool(reopened)


def _email_finish(*, notification: EmailNotification, status: str, error: str = "") -> EmailNotification:
    now = timezone.now()
    fields = {"status": status, "last_error": error, "updated_at": now}
    if status == EmailStatus.SENT:
        fields["sent_at"] = now
    EmailNotification.objects.filter(pk=notification.pk, status=EmailStatus.SENDING).update(**fields)
    notification.refresh_from_db()
    return notification


# --- The sweeper ------------------------------------------------------------------------------------------------------


def provisioning_outbox_sweep() -> dict[str, int]:
    """Send again every job and e-mail that waited too long for its task, and fail jobs abandoned on their last
    attempt. Run by Celery beat every PROVISIONING_SWEEP_INTERVAL_SECONDS; safe to run anywhere, any number of
    times, concurrently: a duplicate send costs one no-op claim."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.PROVISIONING_OUTBOX_STALE_SECONDS)
    abandoned = selectors.provisioning_job_ids_abandoned_without_attempts(now=now, limit=SWEEP_BATCH_SIZE)
    failed = sum(_job_fail_abandoned(job_id=job_id, now=now) for job_id in abandoned)
    job_ids = selectors.provisioning_job_ids_to_send(now=now, stale_before=stale_before, limit=SWEEP_BATCH_SIZE)
    jobs_sent = sum(provisioning_job_enqueue(job_id=job_id) for job_id in job_ids)
    email_ids = selectors.email_notification_ids_to_send(stale_before=stale_before, limit=SWEEP_BATCH_SIZE)
    emails_sent = sum(email_notification_enqueue(email_id=email_id) for email_id in email_ids)
    if job_ids or email_ids or failed:
        logger.info("Outbox sweep: %s/%s jobs and %s/%s e-mails sent again, %s abandoned jobs failed",
                    jobs_sent, len(job_ids), emails_sent, len(email_ids), failed)
    return {"jobs_sent": jobs_sent, "emails_sent": emails_sent, "jobs_failed": failed}


def _job_fail_abandoned(*, job_id: int, now: datetime) -> bool:
    with transaction.atomic():
        failed = ProvisioningJob.objects.filter(
            pk=job_id, status=ProvisioningJobStatus.RUNNING, lease_expires_at__lt=now, attempts__gte=F("max_attempts")
        ).update(status=ProvisioningJobStatus.FAILED, lease_expires_at=None, finished_at=now, last_error=ABANDONED,
                 updated_at=now)
        if not failed:
            return False
        job = ProvisioningJob.objects.get(pk=job_id)
        job.attempt_log.filter(finished_at__isnull=True).update(finished_at=now, error=ABANDONED)
        _job_failed_alert(job=job, attempts=job.attempts, error=ABANDONED)
    return True


def _error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"

"""Reads of provisioning: what the sweeper must send again, which job of a subscription runs next, and what staff
should look at."""

from datetime import datetime, timedelta

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.formats import date_format

from provisioning.models import EmailNotification, EmailStatus, ProvisioningJob, ProvisioningJobStatus

# A job in one of these states waits for a worker to pick it up: its first attempt or a retry.
JOB_WAITING = (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)
# A job in one of these states holds back the later jobs of its subscription.
JOB_OPEN = (*JOB_WAITING, ProvisioningJobStatus.RUNNING)

# A job waiting longer than this for its first or next attempt needs a person: the sweeper should have sent it long
# ago (it sends again after PROVISIONING_OUTBOX_STALE_SECONDS, 30 s by default).
JOB_WAITING_TOO_LONG = timedelta(minutes=30)

# An e-mail claimed for sending this long ago and still not sent: its worker died mid-send.
EMAIL_STUCK_AFTER = timedelta(minutes=15)


def provisioning_jobs_ahead() -> QuerySet[ProvisioningJob]:
    """For Exists() in a query over jobs: the earlier jobs of the outer job's subscription that are still waiting or
    running. Jobs of a subscription run in id order (decisions get their ids under the subscription's row lock)."""
    return ProvisioningJob.objects.filter(
        subscription_id=OuterRef("subscription_id"), pk__lt=OuterRef("pk"), status__in=JOB_OPEN
    )


def provisioning_jobs_ahead_of(*, job: ProvisioningJob) -> QuerySet[ProvisioningJob]:
    """The earlier jobs of the job's subscription still waiting or running: while one exists, the job cannot be
    claimed (provisioning_jobs_ahead, for one job)."""
    return ProvisioningJob.objects.filter(subscription_id=job.subscription_id, pk__lt=job.pk, status__in=JOB_OPEN)


def provisioning_job_attempts_text(*, job: ProvisioningJob) -> str:
    """The attempts as staff read them: "2 of 5 attempts", or, after support gave a fresh allowance, "1 of 5
    attempts since support retried it at 2026-11-30 18:03 UTC (6 in all)"."""
    if not job.allowance_granted_at:
        return f"{job.attempts} of {job.max_attempts} attempts"
    when = date_format(timezone.localtime(job.allowance_granted_at), "DATETIME_FORMAT")
    return (
        f"{job.attempts_in_allowance} of {job.allowance} attempts since support retried it at {when} "
        f"({job.attempts} in all)"
    )


def provisioning_job_next_waiting_id(*, subscription_id: int) -> int | None:
    """The subscription's first unfinished job, if it is waiting for a worker (None when one is running)."""
    first = (
        ProvisioningJob.objects.filter(subscription_id=subscription_id, status__in=JOB_OPEN)
        .order_by("pk")
        .values("pk", "status")
        .first()
    )
    return first["pk"] if first and first["status"] != ProvisioningJobStatus.RUNNING else None


def provisioning_job_lease_expired_q(*, now: datetime) -> Q:
    """Jobs abandoned by their worker: running under a lease that ran out before `now` (the worker was killed, or
    lost the database, before it could record how the attempt ended). Both rules below start from this one; they
    differ on the jobs that have no attempts left (see each)."""
    return Q(status=ProvisioningJobStatus.RUNNING, lease_expires_at__lt=now)


def provisioning_job_due_before_q(*, before: datetime) -> Q:
    """Jobs due before `before`: a retry whose time (next_attempt_at) came then, or a first attempt (no
    next_attempt_at) recorded then (created_at). The same due time as the sweeper's Coalesce("next_attempt_at",
    "created_at"), written as two plain conditions so that each reads an index instead of computing the due time of
    every waiting job. Combine it with a status: alone it matches finished jobs too."""
    return Q(next_attempt_at__lt=before) | Q(next_attempt_at__isnull=True, created_at__lt=before)


def provisioning_job_ids_to_send(*, now: datetime, stale_before: datetime, limit: int) -> list[int]:
    """The sweeper's rule: jobs that should have started by now but have no live task: never sent (the broker was
    down), sent and lost, a retry whose message vanished, or abandoned (provisioning_job_lease_expired_q) with
    attempts left (a worker killed).

    `waiting_since` is when a sent task should have picked the job up: the last send, or the retry's due time if
    later (a retry's message is sent early, with a countdown). It must be older than `stale_before`, so a job whose
    task is merely still in the queue is not sent again on every sweep. A job queued behind an earlier job of its
    subscription is not sent: it could not be claimed; the earlier one sends it when it finishes (or, should that
    send be lost, a later sweep does, the job's wait being long by then). An abandoned job with no attempts left is
    not sent either: provisioning_job_ids_abandoned_without_attempts finds it, and the sweep fails it.

    Staff's rule (provisioning_job_waiting_too_long_q) counts the wait from the due time and includes the jobs
    queued behind another and the abandoned ones with no attempts left, on purpose: see there.
    """
    waiting = Q(status__in=JOB_WAITING) & ~Exists(provisioning_jobs_ahead())
    abandoned = provisioning_job_lease_expired_q(now=now) & Q(attempts__lt=F("max_attempts"))
    jobs = ProvisioningJob.objects.alias(
        waiting_since=Greatest(Coalesce("enqueued_at", "created_at"), Coalesce("next_attempt_at", "created_at"))
    ).filter(waiting | abandoned, waiting_since__lt=stale_before)
    return list(jobs.order_by("pk").values_list("pk", flat=True)[:limit])


def provisioning_job_ids_abandoned_without_attempts(*, now: datetime, limit: int) -> list[int]:
    """Abandoned jobs (provisioning_job_lease_expired_q) whose lease expired on their last allowed attempt: nobody
    will run them again, and the sweep fails them."""
    jobs = ProvisioningJob.objects.filter(provisioning_job_lease_expired_q(now=now), attempts__gte=F("max_attempts"))
    return list(jobs.order_by("pk").values_list("pk", flat=True)[:limit])


def provisioning_job_waiting_too_long_q(*, now: datetime) -> Q:
    """Staff's rule: jobs a person should look at although they have not failed: waiting for an attempt that was due
    more than JOB_WAITING_TOO_LONG ago, or abandoned by their worker (provisioning_job_lease_expired_q). The
    dashboard's count, the job list's "waiting" filter and the "setup overdue" attention all read it.

    It differs from the sweeper's rule (provisioning_job_ids_to_send) on purpose:
    - The wait counts from the due time (next_attempt_at, else created_at), not from the last send: the sweeper sends
      a lost job again every PROVISIONING_OUTBOX_STALE_SECONDS, and that must not hide a job that has waited for two
      hours from the person who should find out why no worker runs it.
    - A job queued behind an earlier job of its subscription counts: the sweeper leaves it to the earlier job, but a
      customer waiting that long is waiting whatever the cause.
    - An abandoned job counts whether or not it has attempts left: one on its last attempt is what the sweeper fails
      rather than sends, and until a sweep does (the beat stopped, or the database is away) it is stuck.
    - An abandoned job counts as soon as its lease ran out; the sweeper also wants its last send older than
      `stale_before` (true by then unless the lease is set shorter than the sweeper's wait).
    """
    waiting = Q(status__in=JOB_WAITING) & provisioning_job_due_before_q(before=now - JOB_WAITING_TOO_LONG)
    return waiting | provisioning_job_lease_expired_q(now=now)


def provisioning_job_waiting_too_long_by_status(*, now: datetime) -> list[Q]:
    """provisioning_job_waiting_too_long_q as one condition per status (ORed, they are the rule): a list that shows
    the newest few reads each status's index range newest first and stops, where the OR of the whole rule over a
    million jobs is misestimated and sorted whole."""
    due = provisioning_job_due_before_q(before=now - JOB_WAITING_TOO_LONG)
    return [due & Q(status=status) for status in JOB_WAITING] + [provisioning_job_lease_expired_q(now=now)]


def email_notification_ids_to_send(
    *, now: datetime, stale_before: datetime, max_attempts: int, limit: int
) -> list[int]:
    """Pending e-mails whose task was never sent, got lost, or whose SMTP server could not be reached; and e-mails
    claimed by a worker whose lease expired before it could record the outcome (it died, or lost the database), with
    attempts left, handed to the mail server or not: at least once (services.email_notification_send)."""
    waiting = Q(status=EmailStatus.PENDING) & Q(waiting_since__lt=stale_before)
    abandoned = Q(status=EmailStatus.SENDING, lease_expires_at__lt=now, attempts__lt=max_attempts)
    emails = EmailNotification.objects.alias(waiting_since=Coalesce("enqueued_at", "created_at")).filter(
        waiting | abandoned
    )
    return list(emails.order_by("pk").values_list("pk", flat=True)[:limit])


def email_notification_list_needing_attention(
    *, now: datetime, queryset: QuerySet[EmailNotification] | None = None
) -> QuerySet[EmailNotification]:
    """E-mails a person should look at: failed ones, and ones left in `sending` for long: abandoned by a worker on
    their last allowed attempt, or held while the database or the sweeper stayed away."""
    queryset = EmailNotification.objects.all() if queryset is None else queryset
    return queryset.filter(
        Q(status=EmailStatus.FAILED) | Q(status=EmailStatus.SENDING, updated_at__lt=now - EMAIL_STUCK_AFTER)
    )

"""Writes of provisioning: jobs and e-mails recorded in the caller's transaction (a transactional outbox), billing's
decisions about an account (suspend, unsuspend, terminate, change its plan) as jobs run in order per subscription,
one attempt at a job against the backend, one e-mail sent at least once (under one Message-ID), and the sweeper that re-sends what waited."""

import dataclasses
import logging
import random
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from django.conf import settings
from django.core.mail import get_connection, mail_admins
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, Model, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from accounts.models import Subscription, User
from provisioning import selectors
from provisioning.backends import (
    AccountActionRequest,
    PlanChangeRequest,
    ProvisionedAccount,
    ProvisioningBackend,
    ProvisioningError,
    ProvisioningRequest,
    provisioning_backend_get,
)
from provisioning.emails import email_message_build
from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    EmailStatus,
    HostingAccount,
    HostingAccountStatus,
    HostingAccountStatusChange,
    ProvisioningAction,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.outbox import email_notification_enqueue, provisioning_job_enqueue

logger = logging.getLogger(__name__)

PROVISION = ProvisioningAction.PROVISION
SUSPEND, UNSUSPEND, TERMINATE = ProvisioningAction.SUSPEND, ProvisioningAction.UNSUSPEND, ProvisioningAction.TERMINATE
CHANGE_PLAN = ProvisioningAction.CHANGE_PLAN
DECISION_ACTIONS = (SUSPEND, UNSUSPEND, TERMINATE, CHANGE_PLAN)
WAITING = (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)
OPEN = (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RUNNING, ProvisioningJobStatus.RETRYING)
# What the account is once a decision is carried out.
ACTION_STATUS = {
    SUSPEND: HostingAccountStatus.SUSPENDED,
    UNSUSPEND: HostingAccountStatus.ACTIVE,
    TERMINATE: HostingAccountStatus.TERMINATED,
}
# The jobs a new decision overrides while they wait (see hosting_account_action_request).
SUPERSEDES = {
    SUSPEND: (UNSUSPEND,),
    UNSUSPEND: (SUSPEND,),
    TERMINATE: (PROVISION, SUSPEND, UNSUSPEND, TERMINATE, CHANGE_PLAN),
    # Each plan change names the whole plan: a newer one makes a waiting (or failed) older one pointless.
    CHANGE_PLAN: (CHANGE_PLAN,),
}
DECISION_EMAILS = {SUSPEND: EmailPurpose.SERVICE_SUSPENDED, TERMINATE: EmailPurpose.SERVICE_TERMINATED}
# Attempts at reaching the mail server before an e-mail is given up (only failures to connect are retried, one per
# sweep: about five minutes of a mail-server outage at the default interval). Staff can send failed ones again.
EMAIL_MAX_ATTEMPTS = 10
SWEEP_BATCH_SIZE = 200
ABANDONED = "abandoned: the worker stopped before finishing and its lease expired"
# What a lost database connection raises (killed, server restarted, network): the server may well be back for the
# next connection, so these are worth one more try on a new one. Not DataError, IntegrityError and the like.
DATABASE_CONNECTION_ERRORS = (OperationalError, InterfaceError)

T = TypeVar("T")


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


def hosting_account_action_request(
    *,
    subscription: Subscription,
    action: str,
    decision_key: str,
    reason: str,
    requested_by: User | None = None,
    email_context: dict | None = None,
    parameters: dict | None = None,
) -> ProvisioningJob | None:
    """Record billing's (or staff's) decision to suspend, unsuspend or terminate the subscription's account, or to
    change its plan, as a job run after the subscription's earlier jobs; its task is sent when the caller's
    transaction commits.

    Made to be called inside the caller's transaction: it locks the subscription row (the caller may hold that lock
    already), so two decisions about one subscription are taken one after the other and get ids in that order.

    - One job per `decision_key`: the same key again returns the job it made (whatever became of it).
    - `email_context`: facts the customer's e-mail (suspended, terminated) states besides the reason, as decided
      now (for a suspension: amount_due, currency, invoice_id, hosted_invoice_url); kept on the job until the panel
      has carried the decision out, then the e-mail is made with them.
    - A later decision overrides earlier ones still waiting: suspend cancels waiting unsuspends and unsuspend waiting
      suspends (status canceled, superseded_by the new job); terminate cancels everything waiting, provisioning
      included unless it has already made an attempt (then the panel may have made the account: the termination
      waits for it and removes what it made). A failed decision that is overridden is canceled too, so that nobody
      runs it again by mistake (a suspension that failed, then the customer paid).
    - None, and no job, when the decision changes nothing: after a termination (the account terminated, or a
      terminate job that has not failed), an unsuspend of an account that is active with no suspension ahead of it,
      a suspend of one already suspended with no unsuspension ahead. A waiting job it overrides is canceled all the
      same (paying cancels a pending suspension). When an overridden job had already made an attempt, the panel may
      have acted on it, so the new decision's job is made even though our records say there is nothing to change.
    - `change_plan` carries the plan in `parameters` (product_code, billing_cycle, previous_product_code,
      previous_billing_cycle): it always makes a job (but after a termination), and cancels an older plan change
      still waiting or failed, since the newer one names the whole plan.
    """
    if action not in DECISION_ACTIONS:
        raise ValueError(f"{action!r} is not a decision about an account (one of {', '.join(DECISION_ACTIONS)})")
    if not decision_key:
        raise ValueError("A decision needs its key: the same decision reached twice must make one job")
    with transaction.atomic():
        Subscription.objects.select_for_update().filter(pk=subscription.pk).values_list("pk", flat=True).get()
        existing = ProvisioningJob.objects.filter(decision_key=decision_key).first()
        if existing is not None:
            if (existing.subscription_id, existing.action) != (subscription.pk, action):
                raise ValueError(
                    f"Decision key {decision_key!r} already names job {existing.pk}, "
                    f"{existing.action} of subscription {existing.subscription_id}"
                )
            return existing
        account = HostingAccount.objects.filter(subscription=subscription).first()
        jobs = _jobs_a_decision_weighs(subscription=subscription)
        if _subscription_terminated(account=account, jobs=jobs):
            logger.info(
                "Decision %s (%s of subscription %s): nothing to do after termination",
                decision_key,
                action,
                subscription.pk,
            )
            return None

        overridden = [job for job in jobs if _job_overridden(job, by=action)]
        ahead = [job for job in jobs if job not in overridden and job.status in OPEN]
        status = account.status if account else HostingAccountStatus.ACTIVE
        for job in ahead:
            status = ACTION_STATUS.get(job.action, status)
        maybe_acted = any(job.attempts and job.action in DECISION_ACTIONS for job in overridden)
        job = None
        if action == CHANGE_PLAN or status != ACTION_STATUS[action] or maybe_acted:
            job = ProvisioningJob.objects.create(
                subscription=subscription,
                action=action,
                decision_key=decision_key,
                reason=reason,
                requested_by=requested_by,
                email_context=email_context or {},
                parameters=parameters or {},
                backend=provisioning_backend_get().name,
                max_attempts=settings.PROVISIONING_MAX_ATTEMPTS,
            )
        if overridden:
            _jobs_cancel(overridden, by=job, decision_key=decision_key, reason=reason)
            logger.info(
                "Decision %s (%s of subscription %s) canceled jobs %s",
                decision_key,
                action,
                subscription.pk,
                [old.pk for old in overridden],
            )
        if job is not None and not ahead:
            transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
        elif job is None and overridden:
            # A canceled job may have been what the next one waited for.
            transaction.on_commit(partial(provisioning_job_next_enqueue, subscription_id=subscription.pk))
    return job


def _jobs_a_decision_weighs(*, subscription: Subscription) -> list[ProvisioningJob]:
    """The subscription's jobs a new decision may override or wait for (waiting or running, decisions that failed)
    and its succeeded terminations, oldest first. Locked, so that no worker claims one of them while the decision is
    taken (its claim waits, then finds it canceled)."""
    return list(
        ProvisioningJob.objects.select_for_update()
        .filter(subscription=subscription)
        .filter(
            Q(status__in=OPEN)
            | Q(status=ProvisioningJobStatus.FAILED, action__in=DECISION_ACTIONS)
            | Q(action=TERMINATE, status=ProvisioningJobStatus.SUCCEEDED)
        )
        .order_by("pk")
    )


def _jobs_cancel(jobs: list[ProvisioningJob], *, by: ProvisioningJob | None, decision_key: str, reason: str) -> None:
    """Cancel jobs a later decision overrode, naming it (`by`: None when the decision itself made no job)."""
    now = timezone.now()
    ProvisioningJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=ProvisioningJobStatus.CANCELED,
        superseded_by=by,
        next_attempt_at=None,
        finished_at=Coalesce("finished_at", Value(now)),
        updated_at=now,
        result={"canceled_by_decision": decision_key, "reason": reason},
    )


def provisioning_job_next_enqueue(*, subscription_id: int) -> bool:
    """Send the task of the subscription's next job, if it is waiting and nothing runs ahead of it: what a job that
    finished leaves after its commit, so the decisions queued behind it go on at once."""
    job_id = selectors.provisioning_job_next_waiting_id(subscription_id=subscription_id)
    return provisioning_job_enqueue(job_id=job_id) if job_id else False


def _subscription_terminated(
    *, account: HostingAccount | None, jobs: list[ProvisioningJob], exclude_job_id: int | None = None
) -> bool:
    """Terminated, or on its way there: every later decision is moot."""
    if account is not None and account.status == HostingAccountStatus.TERMINATED:
        return True
    return any(
        job.action == TERMINATE
        and job.pk != exclude_job_id
        and job.status not in (ProvisioningJobStatus.FAILED, ProvisioningJobStatus.CANCELED)
        for job in jobs
    )


def _job_overridden(job: ProvisioningJob, *, by: str) -> bool:
    if job.action not in SUPERSEDES[by]:
        return False
    if job.status == ProvisioningJobStatus.FAILED:
        return job.action in DECISION_ACTIONS
    # A provisioning attempt may have made the account on the panel: let it finish, so termination can remove it.
    return job.status in WAITING and not (job.action == PROVISION and job.attempts)


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
        if job.action == PROVISION:
            account = backend.provision(_provisioning_request(job=job, attempt=attempt.number))
        else:
            skipped = _decision_carry_out(job=job, attempt=attempt, backend=backend)
    except DATABASE_CONNECTION_ERRORS as error:
        # Our database, not the backend, failed (reading what to ask for): release the job for a short retry rather
        # than leave it `running` for the rest of its lease. Safe even had the backend been called: it is asked
        # with the job's idempotency key.
        logger.warning(
            "Provisioning job %s: the database connection failed during attempt %s; released for a short retry: %s",
            job.pk,
            attempt.number,
            error,
        )
        _database_reconnect()
        _on_a_new_connection_if_lost(
            partial(
                _job_record_failure,
                job=job,
                attempt=attempt,
                error=f"database connection lost: {_error_text(error)}",
                retryable=True,
                delay=provisioning_retry_delay(attempt=1),
            ),
            what=f"Releasing provisioning job {job.pk}",
        )
    except ProvisioningError as error:
        _on_a_new_connection_if_lost(
            partial(_job_record_failure, job=job, attempt=attempt, error=str(error), retryable=error.retryable),
            what=f"Recording provisioning job {job.pk}'s failure",
        )
    except Exception as error:
        # A backend bug counts as a failed attempt like any other; the traceback goes to the log.
        logger.exception("Provisioning job %s: the %s backend raised", job.pk, backend.name)
        _on_a_new_connection_if_lost(
            partial(_job_record_failure, job=job, attempt=attempt, error=_error_text(error), retryable=True),
            what=f"Recording provisioning job {job.pk}'s failure",
        )
    else:
        # The backend did its part: a connection killed meanwhile must not leave the job `running` until its lease
        # expires and the backend is asked again.
        if job.action == PROVISION:
            record = partial(_job_record_success, job=job, attempt=attempt, account=account)
        else:
            record = partial(_decision_record_success, job=job, attempt=attempt, skipped=skipped)
        _on_a_new_connection_if_lost(record, what=f"Recording provisioning job {job.pk}'s success")
    _on_a_new_connection_if_lost(job.refresh_from_db, what=f"Reading provisioning job {job.pk}")
    return job


def _on_a_new_connection_if_lost(write: Callable[[], T], *, what: str) -> T:
    """Run `write`; should this process's database connection turn out to be dead (killed, the server restarted),
    run it once more on a new connection rather than fail, or record the failure, on the dead one.

    Only for writes that are safe to repeat: each is conditional (the job still held by this attempt, the e-mail
    still claimed by it), so a first run whose COMMIT went through unseen makes the second a no-op. Should the new
    connection fail too, the error propagates and the row's lease brings it back later.
    """
    try:
        return write()
    except DATABASE_CONNECTION_ERRORS as error:
        logger.warning("%s: the database connection failed (%s); trying again on a new connection", what, error)
        _database_reconnect()
        return write()


def _database_reconnect() -> None:
    """Drop this process's database connection after it failed; the next query opens a new one. (Django drops a
    broken connection only between requests or tasks: within one, every later query would fail on it too.)"""
    try:
        connection.close()
    except DatabaseError:
        pass  # closing a dead connection may complain; it is dropped all the same


def _decision_carry_out(*, job: ProvisioningJob, attempt: ProvisioningAttempt, backend: ProvisioningBackend) -> str:
    """Ask the panel to carry out the decision. Returns why it was not asked ("" when it was)."""
    account = HostingAccount.objects.filter(subscription_id=job.subscription_id).first()
    if account is None:
        # Provisioning failed or was canceled: there is nothing on the panel to act on.
        return "no hosting account"
    if account.status == HostingAccountStatus.TERMINATED:
        return "account terminated"
    # What every request to the panel about this account says; a plan change adds the plans.
    about = {
        "idempotency_key": str(job.idempotency_key),
        "job_id": job.pk,
        "attempt": attempt.number,
        "subscription_id": job.subscription_id,
        "action": job.action,
        "username": account.username,
        "server": account.server,
        "domain": account.domain,
        "panel_reference": account.panel_reference,
        "reason": job.reason,
    }
    if job.action == CHANGE_PLAN:
        plans = ("product_code", "billing_cycle", "previous_product_code", "previous_billing_cycle")
        backend.change_plan(PlanChangeRequest(**about, **{name: job.parameters.get(name, "") for name in plans}))
        return ""
    act = {SUSPEND: backend.suspend, UNSUSPEND: backend.unsuspend, TERMINATE: backend.terminate}[job.action]
    act(AccountActionRequest(**about))
    return ""


def provisioning_job_retry(*, job: ProvisioningJob, by: User | None = None) -> bool:
    """Staff's "run it again" for a failed job (after fixing what failed it): a fresh allowance of attempts.

    The allowance restarts where the job stands: PROVISIONING_MAX_ATTEMPTS more attempts, counted from the attempts
    made so far (`allowance_attempts_before`), so the job page reads "attempt 1 of 5 since support retried it"
    rather than "6 of 10". Earlier attempts stay in the log; the idempotency key stays too, so a panel that did
    create the account answers with it. False when the job is not failed (a second click finds it pending), and when
    running it again would undo a later decision: nothing runs again once the account is terminated or terminating
    (but a failed termination itself), and a failed suspend or unsuspend does not once a later decision about the
    account was taken.
    """
    with transaction.atomic():
        Subscription.objects.select_for_update().filter(pk=job.subscription_id).values_list("pk", flat=True).get()
        if provisioning_job_retry_blocker(job=job):
            return False
        reopened = provisioning_job_reopen_with_fresh_allowance(
            ProvisioningJob.objects.filter(pk=job.pk, status=ProvisioningJobStatus.FAILED), by=by
        )
        if reopened:
            transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
    return bool(reopened)


def provisioning_job_retry_blocker(*, job: ProvisioningJob) -> str:
    """Why running the job again would undo a later decision ("" when nothing stands in the way). Read under the
    subscription's row lock by the caller that acts on it."""
    account = HostingAccount.objects.filter(subscription_id=job.subscription_id).first()
    terminations = list(ProvisioningJob.objects.filter(subscription_id=job.subscription_id, action=TERMINATE))
    if _subscription_terminated(account=account, jobs=terminations, exclude_job_id=job.pk):
        return "the account is terminated or being terminated"
    if (
        job.action in (SUSPEND, UNSUSPEND)
        and ProvisioningJob.objects.filter(
            subscription_id=job.subscription_id, pk__gt=job.pk, action__in=(SUSPEND, UNSUSPEND, TERMINATE)
        )
        .exclude(status=ProvisioningJobStatus.CANCELED)
        .exists()
    ):
        return "a later decision about the account overrides it"
    if (
        job.action == CHANGE_PLAN
        and ProvisioningJob.objects.filter(subscription_id=job.subscription_id, pk__gt=job.pk, action=CHANGE_PLAN)
        .exclude(status=ProvisioningJobStatus.CANCELED)
        .exists()
    ):
        return "a later plan change overrides it"
    return ""


def provisioning_job_reopen_with_fresh_allowance(jobs, *, by: User | None, **fields) -> int:
    """Put the jobs of `jobs` (a queryset that also states the status they must be in) back to pending with a fresh
    allowance of attempts, in one conditional UPDATE: of two staff clicking at once, one reopens it."""
    now = timezone.now()
    return jobs.update(
        status=ProvisioningJobStatus.PENDING,
        allowance_attempts_before=F("attempts"),
        max_attempts=F("attempts") + settings.PROVISIONING_MAX_ATTEMPTS,
        allowance_granted_at=now,
        allowance_granted_by=by,
        next_attempt_at=None,
        finished_at=None,
        updated_at=now,
        **fields,
    )


def provisioning_retry_delay(*, attempt: int) -> float:
    """Seconds before the attempt after `attempt`: exponential, capped, and half of it random ("equal jitter"), so
    jobs that failed together (a panel outage) do not all come back at the same moment."""
    exponential = settings.PROVISIONING_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    ceiling = min(settings.PROVISIONING_RETRY_CAP_SECONDS, exponential)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _job_claim(*, job_id: int, backend_name: str) -> ProvisioningAttempt | None:
    """Take the job for one attempt, in one conditional UPDATE: of two deliveries of the same message, the database
    lets exactly one through (on PostgreSQL the second waits for the row and then finds it running).

    Jobs of one subscription run in the order they were decided: the UPDATE also requires that no earlier job of
    the subscription is still waiting or running. A job whose claim is refused for that reason is sent again by the
    earlier job when it finishes (provisioning_job_next_enqueue).
    """
    now = timezone.now()
    due = Q(status__in=selectors.JOB_WAITING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    with transaction.atomic():
        claimed = ProvisioningJob.objects.filter(
            due | selectors.provisioning_job_lease_expired_q(now=now),
            ~Exists(selectors.provisioning_jobs_ahead()),
            pk=job_id,
            attempts__lt=F("max_attempts"),
        ).update(
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
    """What the panel is asked to make: the subscription's domain and plan, or the plan support set for the panel
    when they fixed the setup (job.parameters, see provisioning.support.setup_fix_and_run_again)."""
    subscription = job.subscription
    return ProvisioningRequest(
        idempotency_key=str(job.idempotency_key),
        job_id=job.pk,
        attempt=attempt,
        subscription_id=subscription.pk,
        product_code=job.parameters.get("product_code") or subscription.product.code,
        billing_cycle=job.parameters.get("billing_cycle") or subscription.billing_cycle,
        domain=subscription.domain,
        customer_email=subscription.customer.email,
        customer_name=subscription.customer.name,
    )


def _job_update_if_held(*, job: ProvisioningJob, attempt: ProvisioningAttempt, **fields) -> bool:
    held = ProvisioningJob.objects.filter(
        pk=job.pk, status=ProvisioningJobStatus.RUNNING, attempts=attempt.number
    ).update(lease_expires_at=None, updated_at=timezone.now(), **fields)
    if not held:
        logger.warning(
            "Provisioning job %s: attempt %s ended after its lease expired and another attempt took "
            "over; its outcome is not recorded",
            job.pk,
            attempt.number,
        )
    return bool(held)


def _job_record_succeeded(*, job: ProvisioningJob, attempt: ProvisioningAttempt, now: datetime, result: dict) -> bool:
    """In the caller's transaction: the job succeeded with `result`, its attempt is finished, and the subscription's
    next job is sent after commit. False, with nothing written, when another attempt took the job over."""
    if not _job_update_if_held(
        job=job,
        attempt=attempt,
        status=ProvisioningJobStatus.SUCCEEDED,
        finished_at=now,
        last_error="",
        result=result,
    ):
        return False
    ProvisioningAttempt.objects.filter(pk=attempt.pk).update(finished_at=now, succeeded=True)
    transaction.on_commit(partial(provisioning_job_next_enqueue, subscription_id=job.subscription_id))
    return True


def _job_record_success(*, job: ProvisioningJob, attempt: ProvisioningAttempt, account: ProvisionedAccount) -> None:
    now = timezone.now()
    subscription = job.subscription
    with transaction.atomic():
        result = {**dataclasses.asdict(account), "backend": job.backend}
        if not _job_record_succeeded(job=job, attempt=attempt, now=now, result=result):
            return
        HostingAccount.objects.get_or_create(
            subscription=subscription,
            defaults={
                "username": account.username,
                "server": account.server,
                "domain": account.domain,
                "panel_reference": account.reference,
            },
        )
        email_notification_create(
            checkout_session=subscription.checkout_session,
            purpose=EmailPurpose.SERVICE_READY,
            to=subscription.customer.email,
        )
    logger.info(
        "Provisioning job %s succeeded on attempt %s: %s@%s", job.pk, attempt.number, account.username, account.server
    )


def _decision_record_success(*, job: ProvisioningJob, attempt: ProvisioningAttempt, skipped: str) -> None:
    """The decision done: the account's new status, its history row and the customer's e-mail, in the transaction
    that records the job's success (so none of them exists without the others)."""
    now = timezone.now()
    subscription = job.subscription
    if job.action == CHANGE_PLAN:
        _plan_change_record_success(job=job, attempt=attempt, skipped=skipped, now=now)
        return
    status = ACTION_STATUS[job.action]
    result = {"skipped": skipped} if skipped else {"action": job.action, "status": status, "backend": job.backend}
    with transaction.atomic():
        if not _job_record_succeeded(job=job, attempt=attempt, now=now, result=result):
            return
        if skipped:
            logger.info("Provisioning job %s (%s) skipped: %s", job.pk, job.action, skipped)
            return
        account = HostingAccount.objects.select_for_update().filter(subscription=subscription).first()
        if account is None:  # deleted by hand while the panel acted: nothing left to record it on
            logger.warning("Provisioning job %s (%s): the hosting account is gone", job.pk, job.action)
            return
        if account.status in (status, HostingAccountStatus.TERMINATED):
            # Already so (a repeat made because an overridden attempt may have acted), or terminated: final.
            logger.info("Provisioning job %s (%s): the account was already %s", job.pk, job.action, account.status)
            return
        HostingAccountStatusChange.objects.create(
            account=account, from_status=account.status, to_status=status, job=job, reason=job.reason
        )
        account.status, account.status_changed_at = status, now
        account.save(update_fields=["status", "status_changed_at", "updated_at"])
        if purpose := DECISION_EMAILS.get(job.action):
            email_notification_create(
                checkout_session=subscription.checkout_session,
                purpose=purpose,
                to=subscription.customer.email,
                key=job.decision_key or f"job:{job.pk}",
                context={**job.email_context, "reason": job.reason},
            )
    logger.info("Provisioning job %s: account %s@%s is %s", job.pk, account.username, account.server, status)


def _plan_change_record_success(
    *, job: ProvisioningJob, attempt: ProvisioningAttempt, skipped: str, now: datetime
) -> None:
    """The panel moved the account to the new plan: the job's result says which (the account's status is
    unchanged; the subscription already names the plan, billing wrote it with the decision)."""
    result = (
        {"skipped": skipped}
        if skipped
        else {
            "action": job.action,
            "product_code": job.parameters.get("product_code", ""),
            "billing_cycle": job.parameters.get("billing_cycle", ""),
            "backend": job.backend,
        }
    )
    with transaction.atomic():
        if not _job_record_succeeded(job=job, attempt=attempt, now=now, result=result):
            return
    logger.info(
        "Provisioning job %s (change_plan of subscription %s) %s",
        job.pk,
        job.subscription_id,
        f"skipped: {skipped}" if skipped else f"done: now {result['product_code']}/{result['billing_cycle']}",
    )


def _job_record_failure(
    *, job: ProvisioningJob, attempt: ProvisioningAttempt, error: str, retryable: bool, delay: float | None = None
) -> None:
    """The attempt failed: retried after `delay` seconds (by default the backoff for its number) while attempts
    remain and the error is retryable, else failed for good and staff alerted."""
    now = timezone.now()
    retry = retryable and attempt.number < job.max_attempts
    if not retry:
        delay = 0.0
    elif delay is None:
        delay = provisioning_retry_delay(attempt=attempt.number)
    with transaction.atomic():
        if retry:
            fields = {"status": ProvisioningJobStatus.RETRYING, "next_attempt_at": now + timedelta(seconds=delay)}
        else:
            fields = {"status": ProvisioningJobStatus.FAILED, "finished_at": now}
        if not _job_update_if_held(job=job, attempt=attempt, last_error=error, **fields):
            return
        ProvisioningAttempt.objects.filter(pk=attempt.pk).update(finished_at=now, error=error)
        if retry:
            logger.warning(
                "Provisioning job %s: attempt %s of %s failed, next in %.0f s: %s",
                job.pk,
                attempt.number,
                job.max_attempts,
                delay,
                error,
            )
            # The retry's message carries the countdown; should it be lost, the sweeper sends the job once due.
            transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk, countdown=delay))
        else:
            _job_failed_alert(job=job, attempts=attempt.number, error=error)
            transaction.on_commit(partial(provisioning_job_next_enqueue, subscription_id=job.subscription_id))


def _job_failed_alert(*, job: ProvisioningJob, attempts: int, error: str) -> None:
    """Tell staff that a paid order has no service, once (it follows the one transition to failed).

    Through `mail_admins` (settings.ADMINS), the channel fulfilment already uses for orders set aside for review,
    so staff have one list to maintain; and as an ERROR log line, which log-based alerting sees even if ADMINS is
    empty or the mail server is down. Mailed after commit: no alert for a failure that was rolled back, and nothing
    in the e-mail's making can undo the transition.
    """
    logger.error(
        "Provisioning job %s (subscription %s) failed after %s attempts: %s",
        job.pk,
        job.subscription_id,
        attempts,
        error,
    )
    transaction.on_commit(partial(_job_failed_mail_admins, job_id=job.pk, attempts=attempts, error=error))


def _job_failed_mail_admins(*, job_id: int, attempts: int, error: str) -> None:
    try:
        job = ProvisioningJob.objects.select_related("subscription__customer", "subscription__product").get(pk=job_id)
        if job.action != PROVISION:
            _decision_failed_mail_admins(job=job, attempts=attempts, error=error)
            return
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
            f"On the job's page: Retry once the cause is fixed, Fix and run again to correct the domain or plan, or "
            f"Mark as set up by hand after making the account in the control panel:\n"
            f"{settings.SITE_URL}{admin_path}\n",
        )
    except Exception:
        logger.exception("Could not e-mail the admins about failed provisioning job %s", job_id)


def _decision_failed_mail_admins(*, job: ProvisioningJob, attempts: int, error: str) -> None:
    subscription = job.subscription
    account = HostingAccount.objects.filter(subscription=subscription).first()
    admin_path = reverse("admin:provisioning_provisioningjob_change", args=[job.pk])
    consequence = {
        SUSPEND: "The account is still serving although billing decided to suspend it.",
        UNSUSPEND: "The customer's account is still suspended although they are entitled to it.",
        TERMINATE: "The account still exists on the control panel although it was to be terminated.",
        CHANGE_PLAN: f"The account is not on the plan the customer moved to "
        f"({job.parameters.get('product_code', '?')} / {job.parameters.get('billing_cycle', '?')}).",
    }[job.action]
    mail_admins(
        f"{job.get_action_display()} failed: {subscription.domain or subscription.customer.email} (job {job.pk})",
        f"{consequence} The control panel gave up after {attempts} attempts.\n\n"
        f"Job:          {job.pk}, {job.action} (backend {job.backend}, idempotency key {job.idempotency_key})\n"
        f"Decision:     {job.decision_key or '-'}\n"
        f"Reason:       {job.reason or '-'}\n"
        f"Account:      {f'{account.username}@{account.server} ({account.status})' if account else '-'}\n"
        f"Subscription: {subscription.pk}, {subscription.product.code} / {subscription.billing_cycle}\n"
        f"Customer:     {subscription.customer.name} <{subscription.customer.email}>\n"
        f"Last error:   {error}\n\n"
        f"Once the cause is fixed, Retry it on the job's page, or act on the panel by hand:\n"
        f"{settings.SITE_URL}{admin_path}\n",
    )


# --- E-mails ----------------------------------------------------------------------------------------------------------


def email_notification_create(
    *, checkout_session: Model, purpose: str, to: str, key: str = "", context: dict | None = None
) -> EmailNotification:
    """The order's e-mail for this purpose (and key: the invoice, refund or decision it is about), created once (the
    unique constraint), sent after the caller commits. `checkout_session` is the order (checkout.CheckoutSession), as
    EmailNotification refers to it; provisioning does not import checkout. `context` holds the facts it states, as decided now."""
    if purpose not in EmailPurpose.values:
        raise ValueError(f"Unknown e-mail purpose {purpose!r}")
    notification, created = EmailNotification.objects.get_or_create(
        checkout_session=checkout_session, purpose=purpose, key=key, defaults={"to": to, "context": context or {}}
    )
    if created:
        transaction.on_commit(partial(email_notification_enqueue, email_id=notification.pk))
    return notification


def email_notification_send(*, email_id: int) -> EmailNotification | None:
    """Send one e-mail (the task's body). None when it is not this delivery's to send: sent, given up, or held by a
    worker whose lease is still valid.

    At least once, under one Message-ID. A lost e-mail costs more than a second copy: a customer without the
    set-password e-mail cannot reach what they paid for, while a second receipt is a nuisance that mail clients
    dropping duplicates by Message-ID do not even show. So every attempt that cannot be known to have been accepted
    is tried again, and every attempt carries the same Message-ID (emails.email_message_id).

    - Before the hand-over (building the message, connecting to the mail server, a database failure) nothing can
      have reached the customer: the e-mail goes back to pending at once when this worker can still say so (on a
      new database connection if its own died), otherwise once its lease expires, when the sweeper sends it again.
    - `handed_over_at` is committed by the worker holding the e-mail's current claim (status sending, same attempt
      number) before the first byte goes to the mail server. From then on the server may have accepted the message.
      A refusal the server says is permanent (a 5xx: unknown recipient, rejected content) fails the e-mail for
      staff; anything else (a dropped connection, a timeout, a 4xx, a worker killed mid-send, the outcome not
      recordable) leaves it to be tried again, by the sweeper once the claim's lease expires. A second copy can only
      reach the customer if the server accepted the first in the moment between its answer and our record of it.

    A worker that outlived its lease cannot hand over: its claim was taken over, so its conditional write changes
    nothing. After EMAIL_MAX_ATTEMPTS claims the e-mail is failed and shown to staff.
    """
    notification = _email_claim(email_id=email_id)
    if notification is None:
        return None
    try:
        message = email_message_build(notification=notification)
    except Exception as error:
        return _email_not_built(notification=notification, error=error)
    mail_connection = get_connection()
    try:
        mail_connection.open()
    except Exception as error:
        return _email_again_or_failed(
            notification=notification, error=error, what="the mail server could not be reached"
        )
    try:
        return _email_hand_over(notification=notification, message=message, mail_connection=mail_connection)
    finally:
        mail_connection.close()


def _email_claim(*, email_id: int) -> EmailNotification | None:
    """Take the e-mail for one attempt (pending, or sending under a lease that ran out with attempts left), in one
    conditional UPDATE; the e-mail as claimed, or None when it is not this delivery's."""
    now = timezone.now()
    claimable = Q(status=EmailStatus.PENDING) | Q(
        status=EmailStatus.SENDING, lease_expires_at__lt=now, attempts__lt=EMAIL_MAX_ATTEMPTS
    )
    if EmailNotification.objects.filter(
        pk=email_id, status=EmailStatus.SENDING, handed_over_at__isnull=False, lease_expires_at__lt=now
    ).exists():
        logger.warning(
            "E-mail %s was handed to the mail server by a worker that did not live to record the outcome; "
            "sending it again under the same Message-ID",
            email_id,
        )
    claimed = _on_a_new_connection_if_lost(
        partial(
            EmailNotification.objects.filter(claimable, pk=email_id).update,
            # Each claim is a new attempt, not handed over yet (an e-mail staff reopened may have been, before).
            status=EmailStatus.SENDING,
            attempts=F("attempts") + 1,
            handed_over_at=None,
            updated_at=now,
            lease_expires_at=now + timedelta(seconds=settings.PROVISIONING_LEASE_SECONDS),
        ),
        what=f"Claiming e-mail {email_id}",
    )
    if not claimed:
        return None
    return _on_a_new_connection_if_lost(
        EmailNotification.objects.select_related("checkout_session").filter(pk=email_id).get,
        what=f"Reading e-mail {email_id}",
    )


def _email_not_built(*, notification: EmailNotification, error: Exception) -> EmailNotification:
    """The message could not be built: back to pending if the database connection was lost meanwhile (nothing was
    sent), failed for staff otherwise (a template or data error would fail again)."""
    if isinstance(error, DATABASE_CONNECTION_ERRORS):
        logger.warning(
            "E-mail %s: the database connection failed while building it; back to pending: %s", notification.pk, error
        )
        _database_reconnect()
        return _email_finish(
            notification=notification,
            status=EmailStatus.PENDING,
            error=f"database connection lost: {_error_text(error)}",
        )
    logger.error("E-mail %s (%s) could not be built", notification.pk, notification.purpose, exc_info=error)
    return _email_finish(notification=notification, status=EmailStatus.FAILED, error=_error_text(error))


def _email_again_or_failed(
    *, notification: EmailNotification, error: Exception, what: str, permanent: bool = False
) -> EmailNotification:
    """An attempt that did not go through: pending again for the sweeper while attempts are left and the mail server
    did not refuse for good, else failed for staff."""
    again = not permanent and notification.attempts < EMAIL_MAX_ATTEMPTS
    logger.warning(
        "E-mail %s (%s): %s (attempt %s)%s: %s",
        notification.pk,
        notification.purpose,
        what,
        notification.attempts,
        "; the sweeper will try again" if again else "; giving up",
        error,
    )
    return _email_finish(
        notification=notification,
        status=EmailStatus.PENDING if again else EmailStatus.FAILED,
        error=_error_text(error),
    )


def _email_hand_over(*, notification: EmailNotification, message, mail_connection) -> EmailNotification | None:
    """Record the hand-over while the claim still holds, then give the message to the mail server and record how
    it answered. None when the claim was taken over (this attempt outlived its lease)."""
    handed_over = _on_a_new_connection_if_lost(
        partial(_email_claim_held(notification).update, handed_over_at=timezone.now(), updated_at=timezone.now()),
        what=f"Recording e-mail {notification.pk}'s hand-over",
    )
    if not handed_over:
        logger.warning(
            "E-mail %s: attempt %s outlived its lease and another took over; not sent by this one",
            notification.pk,
            notification.attempts,
        )
        return None
    try:
        sent = mail_connection.send_messages([message])
    except Exception as error:
        return _email_again_or_failed(
            notification=notification,
            error=error,
            what="failed while sending",
            permanent=_smtp_refusal_is_permanent(error),
        )
    # Recorded before QUIT: from the server's "250 queued" to this record is the only moment in which a worker
    # killed would leave a copy delivered but not recorded (and so a second copy, under the same Message-ID).
    if not sent:
        return _email_finish(notification=notification, status=EmailStatus.FAILED, error="the mail server refused it")
    return _email_finish(notification=notification, status=EmailStatus.SENT)


def _smtp_refusal_is_permanent(error: Exception) -> bool:
    """The mail server said no for good (a 5xx reply): sending again would be refused again."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def email_notification_reopen(*, email_id: int, eligible: QuerySet, now: datetime, **changes) -> bool:
    """Put the e-mail back to pending and send it after commit, if it is still among `eligible` (the caller's rule:
    staff's "send again", support's set-password resend). One conditional UPDATE decides, so two clicks, or two staff,
    reopen it once. `changes`: other fields to set with it (a corrected address, a cleared error)."""
    with transaction.atomic():
        reopened = eligible.filter(pk=email_id).update(status=EmailStatus.PENDING, updated_at=now, **changes)
        if reopened:
            transaction.on_commit(partial(email_notification_enqueue, email_id=email_id))
    return bool(reopened)


def email_notification_send_again(*, notification: EmailNotification) -> bool:
    """Staff's decision to send a failed or stuck e-mail again, accepting that the customer may get it twice.
    False for any other e-mail (one still being sent is left alone)."""
    now = timezone.now()
    eligible = selectors.email_notification_list_needing_attention(
        now=now, queryset=EmailNotification.objects.filter(pk=notification.pk)
    )
    return email_notification_reopen(email_id=notification.pk, eligible=eligible, now=now)


def _email_claim_held(notification: EmailNotification):
    """The e-mail, if the claim `notification` was read under still holds it (sending, same attempt)."""
    return EmailNotification.objects.filter(
        pk=notification.pk, status=EmailStatus.SENDING, attempts=notification.attempts
    )


def _email_finish(*, notification: EmailNotification, status: str, error: str = "") -> EmailNotification:
    """Record how the attempt ended, if its claim still holds; on a new database connection if this one died."""
    now = timezone.now()
    fields = {"status": status, "last_error": error, "lease_expires_at": None, "updated_at": now}
    if status == EmailStatus.SENT:
        fields["sent_at"] = now
    _on_a_new_connection_if_lost(
        partial(_email_claim_held(notification).update, **fields),
        what=f"Recording e-mail {notification.pk} as {status}",
    )
    _on_a_new_connection_if_lost(notification.refresh_from_db, what=f"Reading e-mail {notification.pk}")
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
    email_ids = selectors.email_notification_ids_to_send(
        now=now, stale_before=stale_before, max_attempts=EMAIL_MAX_ATTEMPTS, limit=SWEEP_BATCH_SIZE
    )
    emails_sent = sum(email_notification_enqueue(email_id=email_id) for email_id in email_ids)
    if job_ids or email_ids or failed:
        logger.info(
            "Outbox sweep: %s/%s jobs and %s/%s e-mails sent again, %s abandoned jobs failed",
            jobs_sent,
            len(job_ids),
            emails_sent,
            len(email_ids),
            failed,
        )
    return {"jobs_sent": jobs_sent, "emails_sent": emails_sent, "jobs_failed": failed}


def _job_fail_abandoned(*, job_id: int, now: datetime) -> bool:
    with transaction.atomic():
        failed = ProvisioningJob.objects.filter(
            selectors.provisioning_job_lease_expired_q(now=now), pk=job_id, attempts__gte=F("max_attempts")
        ).update(
            status=ProvisioningJobStatus.FAILED,
            lease_expires_at=None,
            finished_at=now,
            last_error=ABANDONED,
            updated_at=now,
        )
        if not failed:
            return False
        job = ProvisioningJob.objects.get(pk=job_id)
        job.attempt_log.filter(finished_at__isnull=True).update(finished_at=now, error=ABANDONED)
        _job_failed_alert(job=job, attempts=job.attempts, error=ABANDONED)
        transaction.on_commit(partial(provisioning_job_next_enqueue, subscription_id=job.subscription_id))
    return True


def _error_text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"

"""Support's setup tools, the business rules behind the buttons on a provisioning job's page: run a failed job again
with a fresh allowance, fix a failed setup's domain or panel plan and run it again, record a setup done by hand in
the control panel, and run a waiting job now.

Each tool locks what it changes (the subscription's row, then the job's: the order every writer of jobs uses), acts
only in the state it is for, and says in one sentence what it did or why it did nothing: two clicks, or two staff at
once, give one effect and, for the second, a message saying so. The admin views that call them only check the
permission, log the sentence (LogEntry) and show it.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Subscription, User
from catalog.models import BillingCycle, Product
from core.domains import InvalidDomainName, domain_name_normalize
from core.exceptions import ApplicationError
from provisioning.models import (
    EmailPurpose,
    HostingAccount,
    HostingAccountStatus,
    ProvisioningAction,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.outbox import provisioning_job_enqueue
from provisioning.selectors import provisioning_jobs_ahead_of
from provisioning.services import (
    email_notification_create,
    provisioning_job_next_enqueue,
    provisioning_job_reopen_with_fresh_allowance,
    provisioning_job_retry_blocker,
)

FAILED = ProvisioningJobStatus.FAILED
RUNNING = ProvisioningJobStatus.RUNNING
WAITING = (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)
# What the setup of an order can be fixed or finished by hand from: failed for good, or failing and waiting for its
# next attempt. Never while a worker holds it: it has read the domain and may be talking to the panel.
FIXABLE = (FAILED, *WAITING)

# A panel account name as control panels make them (cPanel, Plesk, DirectAdmin: lower case, a letter first) and as
# HostingAccount holds them (the HTTP backend refuses a longer one from the panel too).
PANEL_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,253}[a-z0-9])?$")


@dataclass(frozen=True)
class SetupToolOutcome:
    done: bool  # False: nothing done; `message` says why (the wrong state, a second click, someone else first)
    message: str
    changes: list[str] = field(default_factory=list)  # "domain: a.com → b.com", for the log


@dataclass(frozen=True)
class SetupDetails:
    """What the provisioning job asks the panel for: the subscription's domain, and the plan (the subscription's, or
    the one support set for the panel)."""

    domain: str
    product_code: str
    billing_cycle: str
    billed_product_code: str
    billed_billing_cycle: str

    @property
    def fingerprint(self) -> str:
        """What the fix form was shown with: a submit made on an older view of the setup is refused."""
        return f"{self.domain}|{self.product_code}|{self.billing_cycle}"


def setup_details(*, job: ProvisioningJob) -> SetupDetails:
    subscription = job.subscription
    return SetupDetails(
        domain=subscription.domain,
        product_code=job.parameters.get("product_code") or subscription.product.code,
        billing_cycle=job.parameters.get("billing_cycle") or subscription.billing_cycle,
        billed_product_code=subscription.product.code,
        billed_billing_cycle=subscription.billing_cycle,
    )


def _when(value: datetime | None) -> str:
    return date_format(timezone.localtime(value), "DATETIME_FORMAT") if value else "-"


def _by(user: User | None) -> str:
    return f" by {user.email}" if user else ""


def _locked(job_id: int) -> tuple[Subscription, ProvisioningJob]:
    """The job's subscription and the job, locked in that order (hosting_account_action_request's order)."""
    subscription_id = ProvisioningJob.objects.filter(pk=job_id).values_list("subscription_id", flat=True).get()
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("product", "customer", "checkout_session")
        .get(pk=subscription_id)
    )
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    job.subscription = subscription
    return subscription, job


def _state_sentence(job: ProvisioningJob) -> str:
    """Where the job stands, for a refusal."""
    if job.status == ProvisioningJobStatus.SUCCEEDED:
        return f"Job #{job.pk} has already succeeded ({_when(job.finished_at)})"
    if job.status == ProvisioningJobStatus.DONE_BY_HAND:
        who = job.result.get("by") or "support"
        return f"Job #{job.pk} was already marked as set up by hand by {who} at {_when(job.finished_at)}"
    if job.status == ProvisioningJobStatus.CANCELED:
        return f"Job #{job.pk} was canceled by a later decision"
    if job.status == RUNNING:
        return (
            f"A worker is running job #{job.pk} right now (attempt {job.attempts_in_allowance} of "
            f"{job.allowance}, held until {_when(job.lease_expires_at)})"
        )
    if job.status == FAILED:
        return f"Job #{job.pk} has failed"
    if job.next_attempt_at and job.next_attempt_at > timezone.now():
        return f"Job #{job.pk} is {job.get_status_display().lower()}, next attempt due {_when(job.next_attempt_at)}"
    return f"Job #{job.pk} is {job.get_status_display().lower()}"


def _ended_or_terminated(subscription: Subscription, job: ProvisioningJob) -> str:
    # An ended subscription's decisions (its termination above all) still run; only its setup is moot.
    if job.action == ProvisioningAction.PROVISION and subscription.is_ended:
        return f"The subscription has ended ({subscription.get_status_display().lower()}): there is nothing to set up."
    if blocker := provisioning_job_retry_blocker(job=job):
        return f"Job #{job.pk} is not run again: {blocker}."
    return ""


# --- Retry: a fresh allowance -------------------------------------------------------------------------------------------


def setup_job_retry(*, job_id: int, by: User | None) -> SetupToolOutcome:
    """Run a failed job again with a fresh allowance of attempts (PROVISIONING_MAX_ATTEMPTS, counted from now); its
    attempt history stays. A second click finds it no longer failed and says who retried it when."""
    with transaction.atomic():
        subscription, job = _locked(job_id)
        if job.status != FAILED:
            if job.allowance_granted_at and job.status in (*WAITING, RUNNING, ProvisioningJobStatus.SUCCEEDED):
                return SetupToolOutcome(
                    False,
                    f"{_state_sentence(job)}: it was already sent again"
                    f"{_by(job.allowance_granted_by)} at {_when(job.allowance_granted_at)}. "
                    "Not sent again.",
                )
            return SetupToolOutcome(False, f"{_state_sentence(job)}, not failed: nothing to retry.")
        if refusal := _ended_or_terminated(subscription, job):
            return SetupToolOutcome(False, refusal)
        before = job.attempts
        provisioning_job_reopen_with_fresh_allowance(ProvisioningJob.objects.filter(pk=job.pk, status=FAILED), by=by)
        transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
    return SetupToolOutcome(
        True,
        f"Job #{job.pk} sent again with a fresh allowance: attempt 1 of "
        f"{settings.PROVISIONING_MAX_ATTEMPTS} comes next ({before} earlier attempt(s) kept "
        "in its history).",
        changes=[f"allowance: {before} attempt(s) used → 0 of {settings.PROVISIONING_MAX_ATTEMPTS}"],
    )


# --- Fix and run again --------------------------------------------------------------------------------------------------


def setup_plan_choices(*, job: ProvisioningJob) -> list[tuple[str, str]]:
    """The plans a setup can ask the panel for: the catalog's products on sale (a short table), and the plan billed
    and the plan asked for now even when retired, so that fixing only the domain of an old plan's setup works."""
    details = setup_details(job=job)
    products = Product.objects.filter(Q(active=True) | Q(code__in=(details.product_code, details.billed_product_code)))
    return [
        (code, f"{name} ({code})") for code, name in products.order_by("sort_order", "code").values_list("code", "name")
    ]


def setup_fix_and_run_again(
    *, job_id: int, domain: str, product_code: str, billing_cycle: str, seen: str, by: User | None, note: str = ""
) -> SetupToolOutcome:
    """Correct what a failed (or failing) setup asks the panel for, then run it again with a fresh allowance.

    - `domain`: validated and normalised as the checkout does (IDNA 2008, core.domains); empty means no domain,
      as an order may have none. Written on the subscription, where provisioning reads it; the order keeps the domain
      the customer typed.
    - `product_code`, `billing_cycle`: the plan the panel is asked for. Billing is not changed by this (Stripe bills
      the subscription's price; a plan change is billing's own action): a plan other than the one billed is kept on
      the job (`parameters`) and the job page says both.
    - `seen`: SetupDetails.fingerprint as the form showed it: if someone changed the setup meanwhile, nothing is done.

    Raises ApplicationError (with the field) for a value that is not valid; returns an outcome that did nothing for
    the wrong state or when nothing would change.
    """
    domain = _domain_clean(domain)
    if billing_cycle not in BillingCycle.values:
        raise ApplicationError("Choose a billing cycle.", code="invalid_billing_cycle", field="billing_cycle")
    with transaction.atomic():
        subscription, job = _locked(job_id)
        if product_code not in dict(setup_plan_choices(job=job)):
            raise ApplicationError("Choose a plan from the catalog.", code="invalid_plan", field="product_code")
        if job.action != ProvisioningAction.PROVISION:
            return SetupToolOutcome(
                False,
                f"Job #{job.pk} is a {job.get_action_display().lower()} decision, not a "
                "setup: only a setup's domain and plan can be fixed.",
            )
        if job.status not in FIXABLE:
            return SetupToolOutcome(False, f"{_state_sentence(job)}: there is no failed setup to fix.")
        if refusal := _ended_or_terminated(subscription, job):
            return SetupToolOutcome(False, refusal)
        details = setup_details(job=job)
        if seen != details.fingerprint:
            return SetupToolOutcome(
                False,
                "Someone changed this setup since the form was shown: it now asks for "
                f"{details.domain or 'no domain'}, {details.product_code} / "
                f"{details.billing_cycle}. Nothing done; look at it again.",
            )
        changes = []
        if domain != details.domain:
            changes.append(f"domain: {details.domain or '(none)'} → {domain or '(none)'}")
        if (product_code, billing_cycle) != (details.product_code, details.billing_cycle):
            changes.append(
                f"plan for the panel: {details.product_code} / {details.billing_cycle} → "
                f"{product_code} / {billing_cycle}"
            )
        if not changes:
            return SetupToolOutcome(
                False,
                "Nothing changed: the domain and the plan are as they were. Use Retry to run the job again as it is.",
            )
        if domain != details.domain:
            Subscription.objects.filter(pk=subscription.pk).update(domain=domain, updated_at=timezone.now())
        parameters = {
            key: value for key, value in job.parameters.items() if key not in ("product_code", "billing_cycle")
        }
        if (product_code, billing_cycle) != (details.billed_product_code, details.billed_billing_cycle):
            parameters.update(product_code=product_code, billing_cycle=billing_cycle)
        before = job.attempts
        provisioning_job_reopen_with_fresh_allowance(
            ProvisioningJob.objects.filter(pk=job.pk, status__in=FIXABLE),
            by=by,
            parameters=parameters,
            lease_expires_at=None,
        )
        transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
    note_text = f" Note: {note.strip()}" if note.strip() else ""
    return SetupToolOutcome(
        True,
        f"Setup fixed ({'; '.join(changes)}) and job #{job.pk} sent again with a fresh "
        f"allowance: attempt 1 of {settings.PROVISIONING_MAX_ATTEMPTS} comes next ({before} "
        f"earlier attempt(s) kept in its history).{note_text}",
        changes=changes,
    )


def _domain_clean(value: str) -> str:
    if not value.strip():
        return ""
    try:
        return domain_name_normalize(value)
    except InvalidDomainName as error:
        raise ApplicationError(str(error), code="invalid_domain", field="domain") from None


# --- Set up by hand -----------------------------------------------------------------------------------------------------


def panel_username_clean(value: str) -> str:
    """The panel's account name as staff typed it, in the form panels make them (lower case), or ApplicationError."""
    username = value.strip().lower()
    if not username:
        raise ApplicationError(
            "Enter the account's username in the control panel.", code="invalid_username", field="username"
        )
    if not PANEL_USERNAME.match(username):
        raise ApplicationError(
            "A panel username is 1 to 64 letters, digits, dots, hyphens or underscores, starting with a letter.",
            code="invalid_username",
            field="username",
        )
    return username


def server_name_clean(value: str) -> str:
    server = value.strip().lower().rstrip(".")
    if not server or len(server) > 255 or not SERVER_NAME.match(server) or ".." in server:
        raise ApplicationError(
            "Enter the server's host name, such as web01.example.net.", code="invalid_server", field="server"
        )
    return server


def setup_mark_done_by_hand(
    *, job_id: int, username: str, server: str, panel_reference: str, by: User | None, note: str = ""
) -> SetupToolOutcome:
    """Record that support made the account in the control panel themselves: the job is closed as done by hand (its
    own status: no attempt of ours made the account), the hosting account is recorded with `set_up_by`, and the
    customer's "service ready" e-mail goes out once, as on a success (the e-mail's row is unique per order).

    The username must not belong to another live account on the same server. Raises ApplicationError for a value
    that is not valid; returns an outcome that did nothing for the wrong state.
    """
    username, server = panel_username_clean(username), server_name_clean(server)
    panel_reference = panel_reference.strip()
    if len(panel_reference) > 255:
        raise ApplicationError(
            "The panel's reference can be at most 255 characters.", code="invalid_reference", field="panel_reference"
        )
    with transaction.atomic():
        subscription, job = _locked(job_id)
        if refused := _mark_done_refused(job=job, subscription=subscription):
            return refused
        _panel_username_free_or_raise(username=username, server=server)
        now = timezone.now()
        result = {
            "done_by_hand": True,
            "username": username,
            "server": server,
            "reference": panel_reference,
            "by": by.email if by else "",
            "note": note.strip(),
            "status_before": job.status,
        }
        ProvisioningJob.objects.filter(pk=job.pk, status__in=FIXABLE).update(
            status=ProvisioningJobStatus.DONE_BY_HAND,
            finished_at=now,
            next_attempt_at=None,
            lease_expires_at=None,
            result=result,
            updated_at=now,
        )
        account = HostingAccount.objects.create(
            subscription=subscription,
            username=username,
            server=server,
            domain=subscription.domain,
            panel_reference=panel_reference,
            set_up_by=by,
        )
        email_notification_create(
            checkout_session=subscription.checkout_session,
            purpose=EmailPurpose.SERVICE_READY,
            to=subscription.customer.email,
        )
        # Decisions queued behind the setup (a suspension, a plan change) go on, now on the recorded account.
        transaction.on_commit(partial(provisioning_job_next_enqueue, subscription_id=subscription.pk))
    note_text = f" Note: {note.strip()}" if note.strip() else ""
    return SetupToolOutcome(
        True,
        f"Job #{job.pk} marked as set up by hand ({job.get_status_display().lower()} "
        f'before): account {account} recorded, the customer\'s "service ready" e-mail '
        f"goes to {subscription.customer.email}.{note_text}",
        changes=[
            f"status: {job.status} → {ProvisioningJobStatus.DONE_BY_HAND}",
            f"hosting account: (none) → {account}",
        ],
    )


def _mark_done_refused(*, job: ProvisioningJob, subscription: Subscription) -> SetupToolOutcome | None:
    """Why this job cannot be marked as set up by hand (not a setup, not failed or waiting, the subscription ended or
    already has an account), or None when it can."""
    if job.action != ProvisioningAction.PROVISION:
        return SetupToolOutcome(
            False,
            f"Job #{job.pk} is a {job.get_action_display().lower()} decision, not a "
            "setup: record what was done in the panel on the account instead.",
        )
    if job.status not in FIXABLE:
        return SetupToolOutcome(False, f"{_state_sentence(job)}: there is no failed setup to mark as done.")
    if subscription.is_ended:
        return SetupToolOutcome(
            False,
            f"The subscription has ended ({subscription.get_status_display().lower()}): there is nothing to set up.",
        )
    existing = HostingAccount.objects.filter(subscription=subscription).first()
    if existing is not None:
        return SetupToolOutcome(False, f"The subscription already has an account, {existing}: nothing recorded.")
    return None


def _panel_username_free_or_raise(*, username: str, server: str) -> None:
    """ApplicationError when another live account on the server has the username."""
    taken = (
        HostingAccount.objects.filter(username=username, server=server)
        .exclude(status=HostingAccountStatus.TERMINATED)
        .select_related("subscription__customer")
        .first()
    )
    if taken is not None:
        raise ApplicationError(
            f"{username} on {server} is already the account of "
            f"{taken.subscription.customer} (subscription #{taken.subscription_id}).",
            code="username_taken",
            field="username",
        )


# --- Run now ------------------------------------------------------------------------------------------------------------


def setup_job_run_now(*, job_id: int, by: User | None, now: datetime | None = None) -> SetupToolOutcome:
    """Make a job waiting for its next attempt due now and send its task (after commit); the worker's claim does the
    rest. The lease rules stay the judge: a job a worker holds is left alone, and a task sent twice is claimed once.

    - Waiting, due later: due now, sent.
    - Waiting and already due (its task lost, or the workers busy): sent again, unless a task went out less than
      PROVISIONING_OUTBOX_STALE_SECONDS ago (the sweeper's own rule), which is also what a second click finds.
    - Running under a lease that expired (its worker died) with attempts left: sent, and the claim takes it over.
    - Queued behind an earlier job of the subscription, failed, finished: nothing, with why.
    """
    now = now or timezone.now()
    recently = now - timedelta(seconds=settings.PROVISIONING_OUTBOX_STALE_SECONDS)
    with transaction.atomic():
        _, job = _locked(job_id)
        if job.status == FAILED:
            return SetupToolOutcome(
                False,
                f"Job #{job.pk} has failed: it has no attempt left to run. Use Retry (or Fix "
                "and run again) for a fresh allowance.",
            )
        if job.status == RUNNING and (job.lease_expires_at is None or job.lease_expires_at >= now):
            return SetupToolOutcome(False, f"{_state_sentence(job)}: not run a second time.")
        if job.status not in (*WAITING, RUNNING):
            return SetupToolOutcome(False, f"{_state_sentence(job)}: nothing to run.")
        if job.attempts >= job.max_attempts:
            return SetupToolOutcome(
                False,
                f"Job #{job.pk} has used its allowance ({job.attempts_in_allowance} of "
                f"{job.allowance}): the sweeper will mark it failed; then use Retry.",
            )
        ahead = provisioning_jobs_ahead_of(job=job).order_by("pk").first()
        if ahead is not None:
            return SetupToolOutcome(
                False,
                f"Job #{job.pk} waits for job #{ahead.pk} ({ahead.get_action_display()}"
                f", {ahead.get_status_display().lower()}) of the same subscription: jobs "
                "of one subscription run in order. Run that one first.",
            )
        if (
            job.enqueued_at
            and job.enqueued_at >= recently
            and (job.next_attempt_at is None or job.next_attempt_at <= now)
        ):
            return SetupToolOutcome(
                False,
                f"Job #{job.pk} was sent to the workers {_when(job.enqueued_at)} and is "
                "due: a worker takes it as soon as one is free. Not sent again.",
            )
        due_before = job.next_attempt_at
        changed = ProvisioningJob.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts).update(
            next_attempt_at=now if job.status in WAITING else job.next_attempt_at, enqueued_at=now, updated_at=now
        )
        if not changed:  # cannot happen under the row lock; kept so that a refactoring cannot double-send
            return SetupToolOutcome(False, f"{_state_sentence(job)}: it changed meanwhile; nothing done.")
        transaction.on_commit(partial(provisioning_job_enqueue, job_id=job.pk))
    if job.status == RUNNING:
        return SetupToolOutcome(
            True,
            f"Job #{job.pk}'s worker stopped (its lease ended {_when(job.lease_expires_at)}):"
            " sent to the workers now, the next one takes it over.",
            changes=["sent to the workers"],
        )
    if due_before and due_before > now:
        return SetupToolOutcome(
            True,
            f"Job #{job.pk} was due {_when(due_before)}: made due now and sent to the workers.",
            changes=[f"next attempt: {_when(due_before)} → {_when(now)}"],
        )
    return SetupToolOutcome(
        True, f"Job #{job.pk} was waiting for a worker: sent to the workers again now.", changes=["sent to the workers"]
    )

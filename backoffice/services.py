"""Writes of the back office: the support actions on orders (a price edit is catalog.services.price_save).

Each support action is safe to run twice: it acts only when the order is in the state the action is for, and says
what it did (the admin records that sentence in its log).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from checkout.models import CheckoutSession, CheckoutSessionStatus
from checkout.services import checkout_session_fulfill, checkout_session_mark_expired, checkout_session_refresh
from checkout.stripe_checkout import stripe_checkout_session_expire, stripe_checkout_session_retrieve
from core.exceptions import ApplicationError
from provisioning.models import EmailNotification, EmailPurpose, EmailStatus, ProvisioningJob
from provisioning.services import email_notification_create, email_notification_reopen
from provisioning.support import setup_job_retry

logger = logging.getLogger(__name__)

# A second "send again" within this window does nothing: the customer's mail may simply not have arrived yet.
RESEND_WINDOW = timedelta(minutes=5)


@dataclass
class ActionOutcome:
    done: bool  # False: nothing to do, or refused; `message` says which and why
    message: str


# --- Support actions --------------------------------------------------------------------------------------------------


def support_provisioning_job_retry(*, job: ProvisioningJob, by: User | None = None) -> ActionOutcome:
    """The order page's Retry: the job page's setup tool (provisioning.support), a fresh allowance of attempts."""
    outcome = setup_job_retry(job_id=job.pk, by=by)
    return ActionOutcome(outcome.done, outcome.message)


def support_set_password_email_resend(*, session: CheckoutSession, now: datetime | None = None) -> ActionOutcome:
    """Send the order's set-password e-mail again, through the same outbox row (one per order and purpose).

    The row goes back to pending and the e-mail task sends it with a fresh link. One conditional UPDATE decides, so
    two clicks (or two staff) at once send it once; within RESEND_WINDOW of the last send nothing happens.
    """
    now = now or timezone.now()
    user = User.objects.filter(email__iexact=session.email).first()
    if user is None:
        return ActionOutcome(False, "No user account exists for this order yet: there is no password to set.")
    if user.has_usable_password():
        return ActionOutcome(False, f'{user.email} has already set a password; they can use "Forgot password".')
    notification = EmailNotification.objects.filter(checkout_session=session, purpose=EmailPurpose.SET_PASSWORD).first()
    if notification is None:
        with transaction.atomic():
            email_notification_create(checkout_session=session, purpose=EmailPurpose.SET_PASSWORD, to=user.email)
        return ActionOutcome(True, f"Set-password e-mail queued for {user.email}.")
    # Sent or failed, and not within RESEND_WINDOW of its last send: the customer's mail may simply be slow.
    eligible = EmailNotification.objects.filter(
        Q(sent_at__isnull=True) | Q(sent_at__lt=now - RESEND_WINDOW),
        status__in=(EmailStatus.SENT, EmailStatus.FAILED),
        updated_at__lt=now - RESEND_WINDOW,
    )
    reopened = email_notification_reopen(
        email_id=notification.pk, eligible=eligible, now=now, to=user.email, last_error=""
    )
    if reopened:
        return ActionOutcome(True, f"Set-password e-mail sent again to {user.email}.")
    notification.refresh_from_db()
    if notification.status in (EmailStatus.PENDING, EmailStatus.SENDING):
        return ActionOutcome(False, "The set-password e-mail is already on its way; not sent again.")
    last = notification.sent_at or notification.updated_at
    minutes = max(1, int((now - last).total_seconds() // 60))
    return ActionOutcome(
        False,
        f"The set-password e-mail went out {minutes} minute(s) ago; not sent again. "
        f"Try again after {(last + RESEND_WINDOW):%H:%M} UTC if it has not arrived.",
    )


def support_checkout_session_expire(*, session: CheckoutSession) -> ActionOutcome:
    """Expire a pending session at Stripe (so the customer can no longer pay it), then here.

    Stripe refuses to expire a session that is not open; then the session is re-read: paid ones are fulfilled, expired
    ones marked expired, so the click still leaves both sides agreeing.
    """
    if session.status != CheckoutSessionStatus.PENDING:
        return ActionOutcome(
            False, f"The session is {session.get_status_display().lower()}, not pending: nothing to expire."
        )
    try:
        stripe_checkout_session_expire(session.stripe_session_id, idempotency_key=f"backoffice-expire-{session.pk}")
    except ApplicationError as error:
        logger.warning("Stripe did not expire %s (%s); re-reading it", session.stripe_session_id, error)
        stripe_session = stripe_checkout_session_retrieve(session.stripe_session_id)
        if stripe_session.get("status") == "complete":
            checkout_session_fulfill(stripe_session=stripe_session)
            session.refresh_from_db()
            return ActionOutcome(
                False,
                "Stripe says this session was paid, so it was not expired; it is now "
                f"{session.get_status_display().lower()}.",
            )
        if stripe_session.get("status") != "expired":
            return ActionOutcome(False, f"Stripe refused to expire the session: {error}")
    checkout_session_mark_expired(stripe_session_id=session.stripe_session_id)
    session.refresh_from_db()
    return ActionOutcome(True, "Session expired at Stripe and here; the customer can no longer pay it.")


def support_checkout_session_reread(*, session: CheckoutSession) -> ActionOutcome:
    """Re-read a pending session from Stripe now (past the success page's rate limit), fulfilling it when it is
    paid and marking it expired when Stripe expired it."""
    if session.status != CheckoutSessionStatus.PENDING:
        return ActionOutcome(
            False, f"The session is already {session.get_status_display().lower()}: nothing to re-read."
        )
    before = session.status
    session = checkout_session_refresh(session=session, force=True)
    session.refresh_from_db()
    if session.status == before:
        return ActionOutcome(False, "Re-read from Stripe: still not paid, nothing changed.")
    return ActionOutcome(True, f"Re-read from Stripe: the session is now {session.get_status_display().lower()}.")

"""Writes of the back office: a price edit that never changes what was already sold, and the support actions.

Each support action is safe to run twice: it acts only when the order is in the state the action is for, and says
what it did (the admin records that sentence in its log).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from backoffice.selectors import money_format
from catalog.models import Price
from checkout.models import CheckoutSession, CheckoutSessionStatus
from checkout.services import checkout_session_fulfill, checkout_session_mark_expired, checkout_session_refresh
from checkout.stripe_checkout import stripe_checkout_session_expire, stripe_checkout_session_retrieve
from core.exceptions import ApplicationError
from provisioning.models import EmailNotification, EmailPurpose, EmailStatus, ProvisioningJob
from provisioning.outbox import email_notification_enqueue
from provisioning.services import email_notification_create
from provisioning.support import setup_job_retry

logger = logging.getLogger(__name__)

# What a checkout session copies from its price: changing one of these on a used price makes a new price row.
PRICE_SOLD_TERMS = ("unit_amount", "trial_days")
# A second "send again" within this window does nothing: the customer's mail may simply not have arrived yet.
RESEND_WINDOW = timedelta(minutes=5)


@dataclass
class ActionOutcome:
    done: bool  # False: nothing to do, or refused; `message` says which and why
    message: str


# --- Catalog ----------------------------------------------------------------------------------------------------------


def price_is_used(*, price: Price) -> bool:
    """True when a checkout session or a subscription refers to the price (two indexed lookups)."""
    from accounts.models import Subscription

    return (CheckoutSession.objects.filter(price_id=price.pk).exists()
            or Subscription.objects.filter(price_id=price.pk).exists())


@dataclass
class PriceSaveOutcome:
    """What a price save did, for the banner and the log: every sentence is read from the rows as saved."""

    on_sale: Price | None  # the row now on sale for this product, cycle and currency (None: none)
    saved: Price  # the row staff's terms went to: the edited row, or the new row that replaced it
    retired: Price | None  # the used row switched off to keep what was sold, when there was one
    amount_before: int | None  # None for a new price

    @property
    def message(self) -> str:
        price = self.saved
        money = partial(money_format, currency=price.currency)
        head = f"{price.product.name} {price.billing_cycle} {price.currency.upper()}: "
        if self.amount_before is None:
            head += f"new price #{price.pk} at {money(price.unit_amount)}."
        elif self.amount_before != price.unit_amount:
            head += f"{money(self.amount_before)} → {money(price.unit_amount)}."
        else:
            head += f"amount {money(price.unit_amount)} unchanged."
        if self.retired is not None:
            return (f"{head} Price #{self.retired.pk} was used by orders: retired and kept as sold. "
                    f"Price #{price.pk} is now on sale at {money(price.unit_amount)}.")
        if self.amount_before is not None and self.amount_before != price.unit_amount:
            head += f" Price #{price.pk} was not used by orders yet: changed in place;"
        else:
            head += f" Price #{price.pk}"
        if price.active:
            return f"{head} it is on sale."
        on_sale = (f" Price #{self.on_sale.pk} is on sale at {money(self.on_sale.unit_amount)}."
                   if self.on_sale else " No price is on sale for this cycle and currency.")
        return f"{head} it is not on sale (retired).{on_sale}"


def price_change_is_large(*, before: int, after: int) -> bool:
    """More than 50 % either way: 7.99 -> 1,000.00 (a typo) or 7.99 -> 0.79."""
    return abs(after - before) * 2 > before


def price_save(*, price: Price, changed_fields: list[str]) -> PriceSaveOutcome:
    """Save a staff edit of a price. When the edit changes what a checkout copies (amount, trial) of a price that
    sessions or subscriptions already used, the old row is switched off and kept as it was, and a new active row
    carries the new terms: the next checkout uses it, and nothing already sold changes.

    Changing the terms of a used price while leaving it off sale is refused (ApplicationError): it could only make
    a new price that is not on sale either, a row nobody asked for. Tick Active to put the new terms on sale.
    """
    amount_before = None
    retired = None
    with transaction.atomic():
        if price.pk:
            old = Price.objects.select_for_update().get(pk=price.pk)
            amount_before = old.unit_amount
            if set(changed_fields) & set(PRICE_SOLD_TERMS) and price_is_used(price=old):
                if not price.active:
                    raise ApplicationError(
                        f"Price #{old.pk} is not on sale and orders used it: its amount and trial stay as sold. "
                        "Edit the price on sale instead, or tick Active to put these terms on sale as a new price.",
                        code="price_retired_and_used", field="unit_amount")
                # The old row first: the "one active price per product, cycle and currency" index never sees two.
                Price.objects.filter(pk=old.pk).update(active=False, updated_at=timezone.now())
                retired = Price.objects.select_related("product").get(pk=old.pk)
                price = Price.objects.create(
                    product_id=old.product_id, billing_cycle=old.billing_cycle, currency=old.currency,
                    unit_amount=price.unit_amount, trial_days=price.trial_days, active=True,
                )
                logger.info("Price %s replaced by %s (%s)", old.pk, price.pk, ", ".join(changed_fields))
            else:
                price.save()
        else:
            price.save()
        saved = Price.objects.select_related("product").get(pk=price.pk)
        on_sale = Price.objects.filter(product_id=saved.product_id, billing_cycle=saved.billing_cycle,
                                       currency=saved.currency, active=True).first()
    return PriceSaveOutcome(on_sale=on_sale, saved=saved, retired=retired, amount_before=amount_before)


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
        return ActionOutcome(False, f"{user.email} has already set a password; they can use \"Forgot password\".")
    notification = EmailNotification.objects.filter(checkout_session=session,
                                                     purpose=EmailPurpose.SET_PASSWORD).first()
    if notification is None:
        with transaction.atomic():
            email_notification_create(checkout_session=session, purpose=EmailPurpose.SET_PASSWORD, to=user.email)
        return ActionOutcome(True, f"Set-password e-mail queued for {user.email}.")
    with transaction.atomic():
        reopened = EmailNotification.objects.filter(
            Q(sent_at__isnull=True) | Q(sent_at__lt=now - RESEND_WINDOW),
            pk=notification.pk, status__in=(EmailStatus.SENT, EmailStatus.FAILED), updated_at__lt=now - RESEND_WINDOW,
        ).update(status=EmailStatus.PENDING, to=user.email, last_error="", updated_at=now)
        if reopened:
            transaction.on_commit(partial(email_notification_enqueue, email_id=notification.pk))
    if reopened:
        return ActionOutcome(True, f"Set-password e-mail sent again to {user.email}.")
    notification.refresh_from_db()
    if notification.status in (EmailStatus.PENDING, EmailStatus.SENDING):
        return ActionOutcome(False, "The set-password e-mail is already on its way; not sent again.")
    last = notification.sent_at or notification.updated_at
    minutes = max(1, int((now - last).total_seconds() // 60))
    return ActionOutcome(False, f"The set-password e-mail went out {minutes} minute(s) ago; not sent again. "
                                f"Try again after {(last + RESEND_WINDOW):%H:%M} UTC if it has not arrived.")


def support_checkout_session_expire(*, session: CheckoutSession) -> ActionOutcome:
    """Expire a pending session at Stripe (so the customer can no longer pay it), then here.

    Stripe refuses to expire a session that is not open; then the session is re-read: paid ones are fulfilled, expired
    ones marked expired, so the click still leaves both sides agreeing.
    """
    if session.status != CheckoutSessionStatus.PENDING:
        return ActionOutcome(False, f"The session is {session.get_status_display().lower()}, not pending: "
                                    "nothing to expire.")
    try:
        stripe_checkout_session_expire(session.stripe_session_id, idempotency_key=f"backoffice-expire-{session.pk}")
    except ApplicationError as error:
        logger.warning("Stripe did not expire %s (%s); re-reading it", session.stripe_session_id, error)
        stripe_session = stripe_checkout_session_retrieve(session.stripe_session_id)
        if stripe_session.get("status") == "complete":
            checkout_session_fulfill(stripe_session=stripe_session)
            session.refresh_from_db()
            return ActionOutcome(False, "Stripe says this session was paid, so it was not expired; it is now "
                                        f"{session.get_status_display().lower()}.")
        if stripe_session.get("status") != "expired":
            return ActionOutcome(False, f"Stripe refused to expire the session: {error}")
    checkout_session_mark_expired(stripe_session_id=session.stripe_session_id)
    session.refresh_from_db()
    return ActionOutcome(True, "Session expired at Stripe and here; the customer can no longer pay it.")


def support_checkout_session_reread(*, session: CheckoutSession) -> ActionOutcome:
    """Re-read a pending session from Stripe now (past the success page's rate limit), fulfilling it when it is
    paid and marking it expired when Stripe expired it."""
    if session.status != CheckoutSessionStatus.PENDING:
        return ActionOutcome(False, f"The session is already {session.get_status_display().lower()}: "
                                    "nothing to re-read.")
    before = session.status
    session = checkout_session_refresh(session=session, force=True)
    session.refresh_from_db()
    if session.status == before:
        return ActionOutcome(False, "Re-read from Stripe: still not paid, nothing changed.")
    return ActionOutcome(True, f"Re-read from Stripe: the session is now {session.get_status_display().lower()}.")

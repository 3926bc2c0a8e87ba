"""Reads of checkout sessions, and what a customer may see of one: the order's state from payment to a ready account."""

from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Customer, Subscription, SubscriptionStatus
from checkout.models import CheckoutSession, CheckoutSessionStatus
from provisioning.models import HostingAccount, ProvisioningAction, ProvisioningJob, ProvisioningJobStatus

PUBLIC_FIELDS = ("id", "stripe_session_id", "email", "product_code", "billing_cycle", "amount", "status")
# What the JSON answer and the success page read of the row itself; the rest comes from annotations.
_ORDER_FIELDS = (*PUBLIC_FIELDS, "currency", "amount_discount", "trial_days", "completed_at")


class Fulfilment:
    """The order's state as the customer sees it, derived from our rows (never stored)."""

    PENDING = "pending"  # waiting for Stripe to confirm the payment
    PAID = "paid"  # paid; the account's set-up has not started yet
    SETTING_UP = "setting_up"  # a worker is creating the hosting account (or will retry)
    READY = "ready"  # the control panel reported the account
    PAYMENT_FAILED = "payment_failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"  # a person has to look: a charge that did not match, or a set-up that failed

    ALL = (PENDING, PAID, SETTING_UP, READY, PAYMENT_FAILED, EXPIRED, NEEDS_REVIEW)
    FINAL = (READY, PAYMENT_FAILED, EXPIRED, NEEDS_REVIEW)


_SESSION_STATUS_FULFILMENT = {
    CheckoutSessionStatus.PENDING: Fulfilment.PENDING,
    CheckoutSessionStatus.EXPIRED: Fulfilment.EXPIRED,
    CheckoutSessionStatus.PAYMENT_FAILED: Fulfilment.PAYMENT_FAILED,
    CheckoutSessionStatus.NEEDS_REVIEW: Fulfilment.NEEDS_REVIEW,
}


def checkout_session_get_by_stripe_id(*, stripe_session_id: str) -> CheckoutSession | None:
    """One query by the unique Stripe id."""
    return next(iter(CheckoutSession.objects.filter(stripe_session_id=stripe_session_id).order_by()[:1]), None)


def checkout_session_get_with_order(*, stripe_session_id: str, full: bool = False) -> CheckoutSession | None:
    """The session with what its order became, in one query: its subscription's status and period end, its
    provisioning job's status and whether the hosting account exists (as `order_*` attributes).

    `full` loads every column (the success page shows the domain, kept in JSON); otherwise only what the JSON
    answer shows. Written as SQL: the success page polls this, and the ORM took five times the query's own time to
    compile its subqueries.
    """
    columns = "s.*" if full else ", ".join(f"s.{name}" for name in _ORDER_COLUMNS)
    return next(iter(CheckoutSession.objects.raw(_WITH_ORDER_SQL.format(columns=columns), [stripe_session_id])), None)


_ORDER_COLUMNS = tuple(CheckoutSession._meta.get_field(name).column for name in _ORDER_FIELDS)
_WITH_ORDER_SQL = f"""
SELECT {{columns}},
       sub.status AS order_subscription_status,
       sub.current_period_end AS order_period_end,
       (SELECT job.status FROM {ProvisioningJob._meta.db_table} job
         WHERE job.subscription_id = sub.id AND job.action = '{ProvisioningAction.PROVISION.value}'
         ORDER BY job.id LIMIT 1) AS order_job_status,
       EXISTS (SELECT 1 FROM {HostingAccount._meta.db_table} account
                WHERE account.subscription_id = sub.id) AS order_account_exists
  FROM {CheckoutSession._meta.db_table} s
  LEFT JOIN {Subscription._meta.db_table} sub ON sub.checkout_session_id = s.id
 WHERE s.stripe_session_id = %s
 LIMIT 1
"""


def checkout_session_fulfilment(*, session: CheckoutSession) -> str:
    """pending → paid → setting_up → ready, or payment_failed / expired / needs_review.

    Needs a session from checkout_session_get_with_order (its `order_*` attributes).
    """
    if session.status != CheckoutSessionStatus.COMPLETED:
        return _SESSION_STATUS_FULFILMENT.get(session.status, Fulfilment.NEEDS_REVIEW)
    if session.order_account_exists:
        return Fulfilment.READY
    job_status = session.order_job_status
    if job_status in (ProvisioningJobStatus.RUNNING, ProvisioningJobStatus.RETRYING):
        return Fulfilment.SETTING_UP
    if job_status in (ProvisioningJobStatus.FAILED, ProvisioningJobStatus.CANCELED):
        return Fulfilment.NEEDS_REVIEW
    # Pending, or succeeded a moment before the account row is read: the customer waits either way.
    return Fulfilment.SETTING_UP if job_status == ProvisioningJobStatus.SUCCEEDED else Fulfilment.PAID


def checkout_session_trial_end(*, session: CheckoutSession) -> datetime | None:
    """Stripe's word once the subscription is mirrored (the end of its trialing period); until then the day it
    will be, counted from the payment; None without a trial or before payment."""
    if not session.trial_days:
        return None
    if session.order_subscription_status == SubscriptionStatus.TRIALING and session.order_period_end:
        return _aware(session.order_period_end)
    if session.completed_at:
        return session.completed_at + timedelta(days=session.trial_days)
    return None


def _aware(moment: datetime | str) -> datetime:
    # A raw query's extra columns skip the backend's converters: SQLite hands back naive UTC (or text).
    if isinstance(moment, str):
        moment = parse_datetime(moment)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def checkout_session_public(*, session: CheckoutSession) -> dict:
    """What the public JSON answer and the success page's script read: the seed's fields and the order's state."""
    trial_end = checkout_session_trial_end(session=session)
    return {
        **{name: getattr(session, name) for name in PUBLIC_FIELDS},
        "id": str(session.id),
        "amount_total": session.amount_due_first,
        "amount_discount": session.amount_discount,
        "currency": session.currency,
        "trial_end": trial_end.isoformat().replace("+00:00", "Z") if trial_end else None,
        "fulfilment": checkout_session_fulfilment(session=session),
    }


def checkout_session_latest_for_fingerprint(*, fingerprint: str) -> CheckoutSession | None:
    return CheckoutSession.objects.filter(request_fingerprint=fingerprint).order_by("-created_at").first()


def checkout_session_latest_for_idempotency_key(*, key: str) -> CheckoutSession | None:
    return CheckoutSession.objects.filter(idempotency_key=key).order_by("-created_at").first()


def checkout_sessions_of_customer(*, customer: Customer, session_ids: list) -> QuerySet:
    """The customer's checkout sessions, newest first: those that made its subscriptions, those at Stripe under its
    Stripe customer, and those placed with its e-mail address (abandoned or failed ones included). Each branch is
    indexed (primary key, stripe_customer_id, lower(email)), so PostgreSQL ORs three index scans."""
    match = Q(email_lower=customer.email.lower())
    if customer.stripe_customer_id:
        match |= Q(stripe_customer_id=customer.stripe_customer_id)
    if session_ids:
        match |= Q(pk__in=session_ids)
    return CheckoutSession.objects.alias(email_lower=Lower("email")).filter(match)

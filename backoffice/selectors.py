"""Reads of the back office: an order's timeline, a subscription's billing page, the dashboard's figures, Stripe
links. (The search is backoffice/search.py.)"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Func, Q, Sum, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate
from django.utils.formats import date_format
from djstripe.models import Event, WebhookEventTrigger

from accounts.models import SUBSCRIPTION_ENDED_STATUSES, Subscription
from billing.models import (
    BillingAction,
    BillingActionKind,
    BillingActionStatus,
    InvoiceStatus,
    RefundRecord,
    SubscriptionInvoice,
)
from billing.selectors import provisioning_failures_heading_for_refund
from catalog.models import Product
from checkout.models import CheckoutSession, CheckoutSessionStatus
from core.money import money_format
from provisioning.models import (
    EmailNotification,
    HostingAccount,
    HostingAccountStatus,
    HostingAccountStatusChange,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.selectors import provisioning_job_attempts_text, provisioning_job_waiting_too_long_q

# --- Money and Stripe links -------------------------------------------------------------------------------------------

_STRIPE_PATHS = {
    "cs_": "checkout/sessions",
    "cus_": "customers",
    "sub_": "subscriptions",
    "evt_": "events",
    "in_": "invoices",
    "pi_": "payments",
    "ch_": "payments",
}


def stripe_dashboard_url(stripe_id: str | None, *, livemode: bool | None = None) -> str | None:
    """The object's page in Stripe's dashboard, in test or live mode (from the id, else STRIPE_LIVE_MODE)."""
    if not stripe_id:
        return None
    path = next((path for prefix, path in _STRIPE_PATHS.items() if stripe_id.startswith(prefix)), None)
    if path is None:
        return None
    if livemode is None:
        livemode = "_live_" in stripe_id or (settings.STRIPE_LIVE_MODE and "_test_" not in stripe_id)
    return f"https://dashboard.stripe.com/{'' if livemode else 'test/'}{path}/{stripe_id}"


def table_row_estimate(model) -> int | None:
    """PostgreSQL's estimate of a table's rows (kept by ANALYZE and autovacuum); None elsewhere or never analyzed."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return row[0] if row and row[0] >= 0 else None


# --- The timeline of an order ------------------------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    at: datetime | None
    kind: str  # session, stripe_event, delivery, account, job, attempt, email, staff, invoice, refund, billing
    title: str
    state: str = "info"  # info, ok, warning, error
    details: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, url)
    object: object = None


@dataclass
class CheckoutSessionTimeline:
    session: CheckoutSession
    entries: list[TimelineEntry]
    subscription: object = None
    customer: object = None
    user: object = None
    jobs: list = field(default_factory=list)
    emails: list = field(default_factory=list)


def _events_for(stripe_session_id: str) -> list[Event]:
    if connection.vendor == "postgresql":
        # KT -> `data #>> '{object,id}'`, the expression of the index backoffice_djstripe_event_object_id.
        events = Event.objects.alias(object_id=KT("data__object__id")).filter(object_id=stripe_session_id)
    else:
        events = Event.objects.filter(data__object__id=stripe_session_id)
    return list(events.order_by("created"))


def _deliveries_for(stripe_session_id: str) -> list[WebhookEventTrigger]:
    if connection.vendor == "postgresql":
        first_session_id = Func(
            F("body"), Value('"(cs_(?:test|live)_[A-Za-z0-9]+)"'), function="substring", output_field=TextField()
        )
        deliveries = WebhookEventTrigger.objects.alias(session_id=first_session_id).filter(session_id=stripe_session_id)
    else:
        deliveries = WebhookEventTrigger.objects.filter(body__contains=f'"{stripe_session_id}"')
    return list(deliveries.defer("headers", "traceback").order_by("created"))


def checkout_session_timeline(*, session: CheckoutSession) -> CheckoutSessionTimeline:
    """Everything that happened to one order, oldest first: the session, Stripe's events and our processing of
    them, the user, customer and subscription it made, provisioning jobs with their attempts, the subscription's
    billing, e-mails, and what staff did in the back office. One builder per source; twelve queries for an order with
    a subscription, five without, whatever the tables' sizes (tests/backoffice/test_timeline_queries.py)."""
    livemode = session.stripe_session_id.startswith("cs_live_") or (
        settings.STRIPE_LIVE_MODE and not session.stripe_session_id.startswith("cs_test_")
    )
    subscription = (
        Subscription.objects.select_related("customer", "product", "price").filter(checkout_session=session).first()
    )
    customer = subscription.customer if subscription else None
    user = _first_member(customer) if customer else None
    jobs = _jobs_with_attempts(subscription) if subscription else []
    emails = list(EmailNotification.objects.filter(checkout_session=session))
    # Entries with the same moment keep this order: the sort below is stable.
    entries = [
        _session_created_entry(session, livemode=livemode),
        *_stripe_entries(session),
        *(_subscription_entries(subscription, user=user, livemode=livemode) if subscription else []),
        *_job_entries(jobs),
        *(subscription_billing_entries(subscription=subscription, livemode=livemode) if subscription else []),
        *_email_entries(emails),
        *_session_outcome_entries(session),
        *_staff_entries(session),
    ]
    entries.sort(key=lambda entry: (entry.at is None, entry.at or session.created_at))
    return CheckoutSessionTimeline(
        session=session,
        entries=entries,
        subscription=subscription,
        customer=customer,
        user=user,
        jobs=jobs,
        emails=emails,
    )


def _session_created_entry(session: CheckoutSession, *, livemode: bool) -> TimelineEntry:
    return TimelineEntry(
        at=session.created_at,
        kind="session",
        title="Checkout session created",
        details=[
            f"{session.email} ordered {session.product_code} ({session.billing_cycle}) at "
            f"{money_format(session.amount, session.currency)}"
            + (
                f", coupon {session.coupon_code} (-{money_format(session.amount_discount, session.currency)})"
                if session.coupon_code
                else ""
            )
            + (f", {session.trial_days}-day trial" if session.trial_days else ""),
            f"Domain: {(session.domain_info or {}).get('value') or '-'}; expires {_when(session.expires_at)}",
        ],
        links=[("Stripe", stripe_dashboard_url(session.stripe_session_id, livemode=livemode))],
    )


def _stripe_entries(session: CheckoutSession) -> list[TimelineEntry]:
    """Stripe's events about the session, each with how its webhook deliveries went, then each delivery that failed
    or names no event (rejected, not processed). Two queries."""
    events = _events_for(session.stripe_session_id)
    deliveries = _deliveries_for(session.stripe_session_id)
    deliveries_by_event: dict[str, list[WebhookEventTrigger]] = {}
    for delivery in deliveries:
        if delivery.event_id:
            deliveries_by_event.setdefault(delivery.event_id, []).append(delivery)
    entries = [_stripe_event_entry(event, received=deliveries_by_event.get(event.id, [])) for event in events]
    for delivery in deliveries:
        if delivery.event_id is None or delivery.exception:
            entries.append(
                TimelineEntry(
                    at=delivery.created,
                    kind="delivery",
                    title=f"Webhook delivery {delivery.json_body.get('type', '')} "
                    + ("failed" if delivery.exception else "not processed" if delivery.valid else "rejected"),
                    state="error",
                    details=[delivery.exception or ("signature invalid" if not delivery.valid else "")],
                )
            )
    return entries


def _stripe_event_entry(event: Event, *, received: list[WebhookEventTrigger]) -> TimelineEntry:
    failed = [d for d in received if d.exception]
    ok = [d for d in received if d.processed and not d.exception]
    noun = "delivery" if len(received) == 1 else "deliveries"
    details = [
        f"{len(received)} webhook {noun}: {len(ok)} processed"
        + (f", {len(failed)} failed ({failed[-1].exception})" if failed else "")
    ]
    if not received:
        details = ["Synced from Stripe (no webhook delivery recorded)"]
    return TimelineEntry(
        at=event.created,
        kind="stripe_event",
        title=f"Stripe event {event.type}",
        state="ok" if ok or not received else "error",
        details=details,
        links=[(event.id, stripe_dashboard_url(event.id, livemode=event.livemode))],
        object=event,
    )


def _first_member(customer):
    """The customer's first user (the one the order made). One query."""
    membership = customer.memberships.select_related("user").order_by("created_at").first()
    return membership.user if membership else None


def _subscription_entries(subscription, *, user, livemode: bool) -> list[TimelineEntry]:
    customer = subscription.customer
    links = (
        ("Stripe customer", stripe_dashboard_url(customer.stripe_customer_id, livemode=livemode)),
        ("Stripe subscription", stripe_dashboard_url(subscription.stripe_subscription_id, livemode=livemode)),
    )
    return [
        TimelineEntry(
            at=subscription.created_at,
            kind="account",
            title="Subscription created",
            state="ok",
            details=[
                f"Customer {customer} ({customer.email}); user {user.email if user else '-'}"
                + ("" if not user or user.has_usable_password() else " (has not set a password yet)"),
                f"{subscription.product.code}/{subscription.billing_cycle} "
                f"{money_format(subscription.amount, subscription.currency)}, status {subscription.status}",
            ],
            links=[(label, url) for label, url in links if url],
            object=subscription,
        )
    ]


def _jobs_with_attempts(subscription) -> list[ProvisioningJob]:
    """The subscription's provisioning jobs in the order they run, with who asked and their attempts. Two queries."""
    return list(
        ProvisioningJob.objects.filter(subscription=subscription)
        .select_related("requested_by")
        .prefetch_related("attempt_log")
        .order_by("pk")
    )


# A job's line is coloured by how it ended; one still waiting or running is a warning.
_JOB_STATES = {"succeeded": "ok", "done_by_hand": "ok", "failed": "error", "canceled": "info"}


def _job_entries(jobs: list[ProvisioningJob]) -> list[TimelineEntry]:
    """Each job, followed by its attempts."""
    entries = []
    for job in jobs:
        why = [f"Why: {job.reason}" + (f" (by {job.requested_by})" if job.requested_by else "")] if job.reason else []
        entries.append(
            TimelineEntry(
                at=job.created_at,
                kind="job",
                title=f"Provisioning job #{job.pk} ({job.action}) recorded",
                state=_JOB_STATES.get(job.status, "warning"),
                details=[
                    f"Now {job.get_status_display().lower()}: {provisioning_job_attempts_text(job=job)}"
                    + (f"; last error: {job.last_error}" if job.last_error else "")
                    + (f"; superseded by job #{job.superseded_by_id}" if job.superseded_by_id else ""),
                    *why,
                ],
                object=job,
            )
        )
        entries.extend(
            TimelineEntry(
                at=attempt.started_at,
                kind="attempt",
                title=f"Job #{job.pk} attempt {attempt.number} "
                + ("succeeded" if attempt.succeeded else "failed" if attempt.finished_at else "started"),
                state="ok" if attempt.succeeded else "error" if attempt.finished_at else "warning",
                details=[attempt.error] if attempt.error else [],
            )
            for attempt in job.attempt_log.all()
        )
    return entries


def _email_entries(emails: list[EmailNotification]) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            at=email.sent_at or email.created_at,
            kind="email",
            title=f'E-mail "{email.get_purpose_display()}" to {email.to}: {email.get_status_display().lower()}',
            state={"sent": "ok", "failed": "error"}.get(email.status, "warning"),
            details=[f"{email.attempts} attempt(s)" + (f"; {email.last_error}" if email.last_error else "")],
            object=email,
        )
        for email in emails
    ]


# How an order ended when it did not end paid: each a line on its timeline, at the session's last change.
_SESSION_ENDED_UNPAID = (
    CheckoutSessionStatus.NEEDS_REVIEW,
    CheckoutSessionStatus.PAYMENT_FAILED,
    CheckoutSessionStatus.EXPIRED,
)


def _session_outcome_entries(session: CheckoutSession) -> list[TimelineEntry]:
    """The session completed, and (or) held for review, failed or expired."""
    entries = []
    if session.completed_at:
        entries.append(
            TimelineEntry(at=session.completed_at, kind="session", title="Checkout session completed", state="ok")
        )
    if session.status in _SESSION_ENDED_UNPAID:
        review_reason = session.metadata.get("review_reason")
        entries.append(
            TimelineEntry(
                at=session.updated_at,
                kind="session",
                title=f"Checkout session {session.get_status_display().lower()}",
                state="error" if session.status != CheckoutSessionStatus.EXPIRED else "warning",
                details=[review_reason] if review_reason else [],
            )
        )
    return entries


def _staff_entries(session: CheckoutSession) -> list[TimelineEntry]:
    """What staff did to the order in the back office (the admin's log). One query (the content type is cached)."""
    session_type = ContentType.objects.get_for_model(CheckoutSession)
    logs = (
        LogEntry.objects.select_related("user")
        .filter(content_type=session_type, object_id=str(session.pk))
        .order_by("action_time")
    )
    return [
        TimelineEntry(
            at=log.action_time,
            kind="staff",
            title=f"Staff: {_without_repeated_label(log.get_change_message())}",
            details=[f"by {log.user}"],
        )
        for log in logs
    ]


def _without_repeated_label(message: str) -> str:
    """ "Re-read from Stripe: Re-read from Stripe: still not paid" -> "Re-read from Stripe: still not paid": the log
    line names the action and the action's own sentence often starts with its name too."""
    label, separator, rest = message.partition(": ")
    while separator and rest.startswith(label + separator):
        rest = rest[len(label + separator) :]
    return f"{label}{separator}{rest}"


def _when(value: datetime | None) -> str:
    """A date and time as every back-office page shows it: the admin's DATETIME_FORMAT (config/formats)."""
    return date_format(value, "DATETIME_FORMAT") if value else "-"


# --- A subscription's billing: invoices, refunds, decisions, the account -------------------------------------------------


def subscription_billing_entries(*, subscription, livemode: bool = False) -> list[TimelineEntry]:
    """The billing half of an order's timeline: each invoice (created, failed, paid, voided), refund, billing
    decision (staff's or a rule's) and change of the hosting account's status. Four queries, one per source."""
    invoices = SubscriptionInvoice.objects.filter(subscription=subscription).order_by("stripe_created", "pk")
    refunds = RefundRecord.objects.filter(subscription=subscription).order_by("stripe_created", "pk")
    actions = (
        BillingAction.objects.filter(subscription=subscription).select_related("actor").order_by("created_at", "pk")
    )
    changes = HostingAccountStatusChange.objects.filter(account__subscription=subscription).order_by("created_at", "pk")
    return [
        *(entry for invoice in invoices for entry in _invoice_entries(invoice, livemode=livemode)),
        *(_refund_entry(refund, livemode=livemode) for refund in refunds),
        *(_billing_action_entry(action, currency=subscription.currency) for action in actions),
        *(_account_change_entry(change) for change in changes),
    ]


def _invoice_entries(invoice: SubscriptionInvoice, *, livemode: bool) -> list[TimelineEntry]:
    """An invoice made, its first failed payment, and its end (paid, voided or uncollectible), as far as it got."""
    name = f"Invoice {invoice.number or invoice.stripe_invoice_id}"
    links = [
        (label, url)
        for label, url in (
            ("Hosted invoice", invoice.hosted_invoice_url or None),
            ("Stripe", stripe_dashboard_url(invoice.stripe_invoice_id, livemode=livemode)),
        )
        if url
    ]
    entries = [
        TimelineEntry(
            at=invoice.stripe_created,
            kind="invoice",
            title=f"{name} created ({invoice.billing_reason or 'invoice'}): "
            f"{money_format(invoice.amount_due, invoice.currency)} due",
            details=[f"Period {_period(invoice.period_start, invoice.period_end)}; now {invoice.status}"],
            links=links,
            object=invoice,
        )
    ]
    if invoice.first_failed_at:
        retry = (
            f"; Stripe tries again {_when(invoice.next_payment_attempt)}"
            if invoice.next_payment_attempt and invoice.status == InvoiceStatus.OPEN
            else ""
        )
        entries.append(
            TimelineEntry(
                at=invoice.first_failed_at,
                kind="invoice",
                title=f"{name}: payment failed",
                state="error",
                details=[f"{invoice.attempt_count} attempt(s) so far{retry}"],
                links=links,
                object=invoice,
            )
        )
    if invoice.status == InvoiceStatus.PAID:
        entries.append(
            TimelineEntry(
                at=invoice.paid_at or invoice.stripe_state_at,
                kind="invoice",
                title=f"{name} paid: {money_format(invoice.amount_paid, invoice.currency)}",
                state="ok",
                links=links,
                object=invoice,
            )
        )
    elif invoice.status in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        entries.append(
            TimelineEntry(
                at=invoice.stripe_state_at,
                kind="invoice",
                title=f"{name} marked {invoice.status}",
                state="warning",
                object=invoice,
            )
        )
    return entries


def _refund_entry(refund: RefundRecord, *, livemode: bool) -> TimelineEntry:
    payment = refund.stripe_payment_intent_id or refund.stripe_charge_id
    details = (
        f"Of payment {payment or '-'}"
        + ("; the payment is now refunded in full" if refund.charge_fully_refunded else ""),
        f"Stripe's reason: {refund.reason}" if refund.reason else "",
    )
    stripe_url = stripe_dashboard_url(payment, livemode=livemode)
    return TimelineEntry(
        at=refund.stripe_created,
        kind="refund",
        title=f"Refund {refund.stripe_refund_id}: {money_format(refund.amount, refund.currency)} ({refund.status})",
        state={"succeeded": "ok", "failed": "error", "canceled": "error"}.get(refund.status, "warning"),
        details=[line for line in details if line],
        links=[("Stripe", stripe_url)] if stripe_url else [],
        object=refund,
    )


def _billing_action_entry(action: BillingAction, *, currency: str) -> TimelineEntry:
    """A billing decision, staff's or a rule's; its amount is in the subscription's currency."""
    return TimelineEntry(
        at=action.created_at,
        kind="billing",
        title=f"{action.get_kind_display()}"
        + (f" {money_format(action.amount, currency)}" if action.amount is not None else "")
        + f": {action.get_status_display().lower()}",
        state={"done": "ok", "failed": "error"}.get(action.status, "warning"),
        details=[
            f"By {action.actor or 'a rule of ours'}: {action.reason}",
            *([f"Error: {action.error}"] if action.error else []),
        ],
        object=action,
    )


def _account_change_entry(change: HostingAccountStatusChange) -> TimelineEntry:
    return TimelineEntry(
        at=change.created_at,
        kind="account",
        title=f"Hosting account {change.from_status} → {change.to_status}",
        state="ok" if change.to_status == HostingAccountStatus.ACTIVE else "warning",
        details=[line for line in (change.reason, f"Job #{change.job_id}" if change.job_id else "") if line],
    )


def _period(start: datetime | None, end: datetime | None) -> str:
    if not start and not end:
        return "-"
    day = partial(date_format, format="DATE_FORMAT")
    return f"{day(start)} – {day(end)}" if start and end else day(start or end)


@dataclass
class SubscriptionBillingOverview:
    """What the subscription page shows: Stripe's state as we mirror it, the next renewal, the account and its
    history, the invoices (each with what is left to refund), refunds, decisions and jobs, newest first."""

    subscription: object
    account: HostingAccount | None
    status_changes: list
    invoices: list
    refunds: list
    actions: list
    jobs: list
    next_renewal_at: datetime | None
    next_renewal_amount: int | None
    ended: bool
    account_terminated: bool


def subscription_billing_overview(*, subscription) -> SubscriptionBillingOverview:
    """Six queries whatever the subscription's age: what is left to refund on each invoice is worked out from the
    refunds and staff's unfinished refunds already loaded, by billing.selectors.invoice_refundable_amount's rule."""
    account = HostingAccount.objects.filter(subscription=subscription).first()
    status_changes = (
        list(HostingAccountStatusChange.objects.filter(account=account).order_by("-created_at", "-pk"))
        if account
        else []
    )
    invoices = list(SubscriptionInvoice.objects.filter(subscription=subscription).order_by("-stripe_created", "-pk"))
    refunds = list(RefundRecord.objects.filter(subscription=subscription).order_by("-stripe_created", "-pk"))
    actions = list(
        BillingAction.objects.filter(subscription=subscription).select_related("actor").order_by("-created_at", "-pk")
    )
    jobs = list(
        ProvisioningJob.objects.filter(subscription=subscription).select_related("requested_by").order_by("-pk")
    )
    refunded_by_intent: dict[str, int] = {}
    for refund in refunds:
        if refund.status in ("succeeded", "pending") and refund.stripe_payment_intent_id:
            refunded_by_intent[refund.stripe_payment_intent_id] = (
                refunded_by_intent.get(refund.stripe_payment_intent_id, 0) + refund.amount
            )
    requested_by_invoice: dict[str, int] = {}
    for action in actions:
        if action.kind == BillingActionKind.REFUND and action.status == BillingActionStatus.REQUESTED and action.amount:
            requested_by_invoice[action.stripe_object_id] = (
                requested_by_invoice.get(action.stripe_object_id, 0) + action.amount
            )
    for invoice in invoices:
        if invoice.status != InvoiceStatus.PAID:
            invoice.refundable = 0
            continue
        invoice.refundable = max(
            0,
            invoice.amount_paid
            - refunded_by_intent.get(invoice.stripe_payment_intent_id, 0)
            - requested_by_invoice.get(invoice.stripe_invoice_id, 0),
        )
    ended = subscription.status in SUBSCRIPTION_ENDED_STATUSES
    renews = not ended and not subscription.cancel_at_period_end and subscription.current_period_end
    return SubscriptionBillingOverview(
        subscription=subscription,
        account=account,
        status_changes=status_changes,
        invoices=invoices,
        refunds=refunds,
        actions=actions,
        jobs=jobs,
        next_renewal_at=subscription.current_period_end if renews else None,
        next_renewal_amount=subscription.amount if renews else None,
        ended=ended,
        account_terminated=bool(account and account.status == HostingAccountStatus.TERMINATED),
    )


def billing_action_for_key(*, idempotency_key: str) -> BillingAction | None:
    """The action a confirmation form already made (its hidden key), if it was sent before."""
    return BillingAction.objects.select_related("actor").filter(idempotency_key=idempotency_key).first()


@dataclass
class FailedSetup:
    job: ProvisioningJob
    refund_at: datetime | None  # None: automatic refunds are off


# Counted up to this many, then shown as "1000+" (as the needs-attention counts): the first page never counts a flood.
FAILED_SETUPS_COUNT_CAP = 1000


def failed_setups_heading_for_refund(*, limit: int = 20) -> tuple[list[FailedSetup], int]:
    """Provision jobs that failed for good and that no one resolved, soonest refund first, each with the time the
    billing sweep refunds it (PROVISIONING_AUTO_REFUND_AFTER_HOURS after it failed); and how many there are, up to
    FAILED_SETUPS_COUNT_CAP + 1 (more than the cap: the page says "1000+")."""
    hours = settings.PROVISIONING_AUTO_REFUND_AFTER_HOURS
    jobs = provisioning_failures_heading_for_refund()
    rows = list(jobs[:limit])
    total = len(rows) if len(rows) < limit else jobs.order_by()[: FAILED_SETUPS_COUNT_CAP + 1].count()
    return [
        FailedSetup(job=job, refund_at=job.finished_at + timedelta(hours=hours) if hours and job.finished_at else None)
        for job in rows
    ], total


# --- The dashboard ----------------------------------------------------------------------------------------------------


@dataclass
class DashboardFigures:
    days: list[date]
    funnel: dict[str, list[int]]  # series name -> one count per day
    revenue: list[dict]  # product_code, product_name, currency, amount, orders; largest first
    jobs_failed: int
    jobs_waiting: int
    since: datetime
    as_of: datetime | None = None  # when the figures were counted (they may be served from the cache)


def dashboard_figures(*, now: datetime, days: int = 30) -> DashboardFigures:
    """The last `days` days at a glance, in three aggregate queries."""
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
    day_list = [first_day + timedelta(days=n) for n in range(days)]
    rows = (
        CheckoutSession.objects.filter(created_at__gte=since)
        .order_by()
        .values(day=TruncDate("created_at"))
        # Not COUNT(id): every column read is in checkout_cs_created_dashboard (index-only scan); created_at is never null.
        .annotate(
            created=Count("*"),
            completed=Count("created_at", filter=Q(status=CheckoutSessionStatus.COMPLETED)),
            expired=Count("created_at", filter=Q(status=CheckoutSessionStatus.EXPIRED)),
            failed=Count(
                "created_at",
                filter=Q(status__in=(CheckoutSessionStatus.PAYMENT_FAILED, CheckoutSessionStatus.NEEDS_REVIEW)),
            ),
        )
    )
    by_day = {row["day"]: row for row in rows}
    funnel = {
        name: [by_day.get(day, {}).get(name, 0) for day in day_list]
        for name in ("created", "completed", "expired", "failed")
    }
    revenue = list(
        CheckoutSession.objects.filter(created_at__gte=since, status=CheckoutSessionStatus.COMPLETED)
        .order_by()
        .values("product_code", "currency")
        .annotate(amount=Sum(F("amount") - F("amount_discount")), orders=Count("*"))
        .order_by("-amount")
    )
    jobs = ProvisioningJob.objects.aggregate(
        failed=Count("pk", filter=Q(status=ProvisioningJobStatus.FAILED)),
        waiting=Count("pk", filter=provisioning_job_waiting_too_long_q(now=now)),
    )
    return DashboardFigures(
        days=day_list,
        funnel=funnel,
        revenue=revenue,
        jobs_failed=jobs["failed"],
        jobs_waiting=jobs["waiting"],
        since=since,
        as_of=now,
    )


DASHBOARD_CACHE_SECONDS = 60


def dashboard_figures_cached(*, now: datetime, days: int = 30) -> DashboardFigures:
    """dashboard_figures, kept DASHBOARD_CACHE_SECONDS in the cache: at a million orders the 30 days hold ~150,000 rows,
    and counting them on every visit to the admin's first page costs far more than the page is worth. The key names the
    window's first day, so midnight starts a new window at once; the page says when the figures were counted."""
    first_day = (now - timedelta(days=days - 1)).date()
    key = f"backoffice:dashboard:{days}:{first_day.isoformat()}"
    figures = cache.get(key)
    if figures is None:
        figures = dashboard_figures(now=now, days=days)
        dashboard_revenue_named(revenue=figures.revenue)
        cache.set(key, figures, DASHBOARD_CACHE_SECONDS)
    return figures


def dashboard_revenue_named(*, revenue: list[dict]) -> None:
    """Give each revenue row its product's name (staff know products by name, as everywhere else in the back office);
    a code no longer in the catalog shows as it is. One query on the small catalog after grouping: a subquery in the
    grouped query ran once per order row (90,000 times at a million orders)."""
    names = dict(Product.objects.filter(code__in={row["product_code"] for row in revenue}).values_list("code", "name"))
    for row in revenue:
        row["product_name"] = names.get(row["product_code"], row["product_code"])

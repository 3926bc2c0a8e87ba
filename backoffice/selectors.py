"""Reads of the back office: an order's timeline, the dashboard's figures, the support search, Stripe links."""

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Count, F, Func, Q, QuerySet, Sum, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Lower, TruncDate
from djstripe.models import Event, WebhookEventTrigger

from checkout.models import CheckoutSession, CheckoutSessionStatus
from provisioning.models import EmailNotification, ProvisioningJob, ProvisioningJobStatus

# --- Money and Stripe links -------------------------------------------------------------------------------------------

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money_format(amount: int | None, currency: str) -> str:
    """Cents as a person reads them, with the currency: (799, "usd") -> "$7.99 USD"; (123456, "chf") -> "1,234.56 CHF"."""
    if amount is None:
        return "-"
    units, cents = divmod(abs(amount), 100)
    number = f"{'-' if amount < 0 else ''}{units:,}.{cents:02d}"
    symbol = CURRENCY_SYMBOLS.get((currency or "").lower())
    return f"{symbol or ''}{number} {(currency or '').upper()}"


_STRIPE_PATHS = {"cs_": "checkout/sessions", "cus_": "customers", "sub_": "subscriptions", "evt_": "events",
                 "in_": "invoices", "pi_": "payments"}


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


# --- Search ------------------------------------------------------------------------------------------------------------

_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)


def checkout_session_search(*, queryset: QuerySet, term: str) -> QuerySet:
    """Support's search box, each kind of term on its own index (never a scan of the table):

    cs_... the Stripe session; cus_... the Stripe customer; sub_... the Stripe subscription; a UUID our session id;
    an address with @ the exact e-mail (any case); anything else: e-mails or domains starting with it.
    """
    term = term.strip()
    if not term:
        return queryset
    if term.startswith("cs_"):
        return queryset.filter(stripe_session_id=term)
    if term.startswith("cus_"):
        return queryset.filter(stripe_customer_id=term)
    if term.startswith("sub_"):
        return queryset.filter(subscription__stripe_subscription_id=term)
    if _UUID.match(term):
        return queryset.filter(pk=uuid.UUID(term))
    lowered = term.lower()
    queryset = queryset.alias(email_lower=Lower("email"))
    if "@" in term:
        return queryset.filter(email_lower=lowered)
    return queryset.alias(domain_lower=Lower(KT("domain_info__value"))).filter(
        Q(email_lower__startswith=lowered) | Q(domain_lower__startswith=lowered)
    )


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
    kind: str  # session, stripe_event, delivery, account, job, attempt, email, staff
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
        first_session_id = Func(F("body"), Value('"(cs_(?:test|live)_[A-Za-z0-9]+)"'), function="substring",
                                output_field=TextField())
        deliveries = WebhookEventTrigger.objects.alias(session_id=first_session_id).filter(
            session_id=stripe_session_id)
    else:
        deliveries = WebhookEventTrigger.objects.filter(body__contains=f'"{stripe_session_id}"')
    return list(deliveries.defer("headers", "traceback").order_by("created"))


def checkout_session_timeline(*, session: CheckoutSession) -> CheckoutSessionTimeline:
    """Everything that happened to one order, oldest first: the session, Stripe's events and our processing of
    them, the user, customer and subscription it made, provisioning jobs with their attempts, e-mails, and what staff
    did in the back office. About ten queries whatever the tables' sizes."""
    livemode = session.stripe_session_id.startswith("cs_live_") or (
        settings.STRIPE_LIVE_MODE and not session.stripe_session_id.startswith("cs_test_"))
    entries = [TimelineEntry(
        at=session.created_at, kind="session", title="Checkout session created",
        details=[f"{session.email} ordered {session.product_code} ({session.billing_cycle}) at "
                 f"{money_format(session.amount, session.currency)}"
                 + (f", coupon {session.coupon_code} (-{money_format(session.amount_discount, session.currency)})"
                    if session.coupon_code else "")
                 + (f", {session.trial_days}-day trial" if session.trial_days else ""),
                 f"Domain: {(session.domain_info or {}).get('value') or '-'}; expires {session.expires_at:%Y-%m-%d %H:%M} UTC"],
        links=[("Stripe", stripe_dashboard_url(session.stripe_session_id, livemode=livemode))],
    )]

    events = _events_for(session.stripe_session_id)
    deliveries = _deliveries_for(session.stripe_session_id)
    deliveries_by_event: dict[str, list[WebhookEventTrigger]] = {}
    for delivery in deliveries:
        if delivery.event_id:
            deliveries_by_event.setdefault(delivery.event_id, []).append(delivery)
    for event in events:
        received = deliveries_by_event.get(event.id, [])
        failed = [d for d in received if d.exception]
        ok = [d for d in received if d.processed and not d.exception]
        noun = "delivery" if len(received) == 1 else "deliveries"
        details = [f"{len(received)} webhook {noun}: {len(ok)} processed"
                   + (f", {len(failed)} failed ({failed[-1].exception})" if failed else "")]
        if not received:
            details = ["Synced from Stripe (no webhook delivery recorded)"]
        entries.append(TimelineEntry(
            at=event.created, kind="stripe_event", title=f"Stripe event {event.type}",
            state="ok" if ok or not received else "error", details=details,
            links=[(event.id, stripe_dashboard_url(event.id, livemode=event.livemode))], object=event,
        ))
    for delivery in deliveries:
        if delivery.event_id is None or delivery.exception:
            entries.append(TimelineEntry(
                at=delivery.created, kind="delivery",
                title=f"Webhook delivery {delivery.json_body.get('type', '')} "
                      + ("failed" if delivery.exception else "not processed" if delivery.valid else "rejected"),
                state="error",
                details=[delivery.exception or ("signature invalid" if not delivery.valid else "")],
            ))

    from accounts.models import Subscription

    subscription = (Subscription.objects.select_related("customer", "product", "price")
                    .filter(checkout_session=session).first())
    customer = user = None
    jobs, emails = [], []
    if subscription:
        customer = subscription.customer
        membership = customer.memberships.select_related("user").order_by("created_at").first()
        user = membership.user if membership else None
        entries.append(TimelineEntry(
            at=subscription.created_at, kind="account", title="Subscription created", state="ok",
            details=[f"Customer {customer} ({customer.email}); user {user.email if user else '-'}"
                     + ("" if not user or user.has_usable_password() else " (has not set a password yet)"),
                     f"{subscription.product.code}/{subscription.billing_cycle} "
                     f"{money_format(subscription.amount, subscription.currency)}, status {subscription.status}"],
            links=[(label, url) for label, url in (
                ("Stripe customer", stripe_dashboard_url(customer.stripe_customer_id, livemode=livemode)),
                ("Stripe subscription", stripe_dashboard_url(subscription.stripe_subscription_id, livemode=livemode)),
            ) if url],
            object=subscription,
        ))
        jobs = list(ProvisioningJob.objects.filter(subscription=subscription).prefetch_related("attempt_log"))
        for job in jobs:
            entries.append(TimelineEntry(
                at=job.created_at, kind="job", title=f"Provisioning job #{job.pk} ({job.action}) recorded",
                state={"succeeded": "ok", "failed": "error"}.get(job.status, "warning"),
                details=[f"Now {job.get_status_display().lower()}: {job.attempts} of {job.max_attempts} attempts"
                         + (f"; last error: {job.last_error}" if job.last_error else "")],
                object=job,
            ))
            for attempt in job.attempt_log.all():
                entries.append(TimelineEntry(
                    at=attempt.started_at, kind="attempt",
                    title=f"Job #{job.pk} attempt {attempt.number} "
                          + ("succeeded" if attempt.succeeded else "failed" if attempt.finished_at else "started"),
                    state="ok" if attempt.succeeded else "error" if attempt.finished_at else "warning",
                    details=[attempt.error] if attempt.error else [],
                ))
    emails = list(EmailNotification.objects.filter(checkout_session=session))
    for email in emails:
        entries.append(TimelineEntry(
            at=email.sent_at or email.created_at, kind="email",
            title=f"E-mail \"{email.get_purpose_display()}\" to {email.to}: {email.get_status_display().lower()}",
            state={"sent": "ok", "failed": "error"}.get(email.status, "warning"),
            details=[f"{email.attempts} attempt(s)" + (f"; {email.last_error}" if email.last_error else "")],
            object=email,
        ))
    if session.completed_at:
        entries.append(TimelineEntry(at=session.completed_at, kind="session", title="Checkout session completed",
                                     state="ok"))
    if session.status in (CheckoutSessionStatus.NEEDS_REVIEW, CheckoutSessionStatus.PAYMENT_FAILED,
                          CheckoutSessionStatus.EXPIRED):
        entries.append(TimelineEntry(
            at=session.updated_at, kind="session", title=f"Checkout session {session.get_status_display().lower()}",
            state="error" if session.status != CheckoutSessionStatus.EXPIRED else "warning",
            details=[session.metadata.get("review_reason", "")] if session.metadata.get("review_reason") else [],
        ))
    session_type = ContentType.objects.get_for_model(CheckoutSession)
    for log in (LogEntry.objects.select_related("user")
                .filter(content_type=session_type, object_id=str(session.pk)).order_by("action_time")):
        entries.append(TimelineEntry(at=log.action_time, kind="staff", title=f"Staff: {log.get_change_message()}",
                                     details=[f"by {log.user}"]))
    entries.sort(key=lambda entry: (entry.at is None, entry.at or session.created_at))
    return CheckoutSessionTimeline(session=session, entries=entries, subscription=subscription, customer=customer,
                                   user=user, jobs=jobs, emails=emails)


# --- The dashboard ----------------------------------------------------------------------------------------------------

# A job waiting longer than this for its first or next attempt is stuck: the sweeper should have sent it long ago.
JOB_WAITING_TOO_LONG = timedelta(minutes=30)


@dataclass
class DashboardFigures:
    days: list[date]
    funnel: dict[str, list[int]]  # series name -> one count per day
    revenue: list[dict]  # product_code, currency, amount, orders; largest first
    jobs_failed: int
    jobs_waiting: int
    since: datetime


def dashboard_figures(*, now: datetime, days: int = 30) -> DashboardFigures:
    """The last `days` days at a glance, in three aggregate queries."""
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
    day_list = [first_day + timedelta(days=n) for n in range(days)]
    rows = (CheckoutSession.objects.filter(created_at__gte=since).order_by()
            .values(day=TruncDate("created_at"))
            .annotate(created=Count("pk"),
                      completed=Count("pk", filter=Q(status=CheckoutSessionStatus.COMPLETED)),
                      expired=Count("pk", filter=Q(status=CheckoutSessionStatus.EXPIRED)),
                      failed=Count("pk", filter=Q(status__in=(CheckoutSessionStatus.PAYMENT_FAILED,
                                                               CheckoutSessionStatus.NEEDS_REVIEW)))))
    by_day = {row["day"]: row for row in rows}
    funnel = {name: [by_day.get(day, {}).get(name, 0) for day in day_list]
              for name in ("created", "completed", "expired", "failed")}
    revenue = list(
        CheckoutSession.objects.filter(created_at__gte=since, status=CheckoutSessionStatus.COMPLETED).order_by()
        .values("product_code", "currency")
        .annotate(amount=Sum(F("amount") - F("amount_discount")), orders=Count("pk"))
        .order_by("-amount")
    )
    stale = now - JOB_WAITING_TOO_LONG
    jobs = ProvisioningJob.objects.aggregate(
        failed=Count("pk", filter=Q(status=ProvisioningJobStatus.FAILED)),
        waiting=Count("pk", filter=job_waiting_too_long_q(now=now, stale_before=stale)),
    )
    return DashboardFigures(days=day_list, funnel=funnel, revenue=revenue, jobs_failed=jobs["failed"],
                            jobs_waiting=jobs["waiting"], since=since)


def job_waiting_too_long_q(*, now: datetime, stale_before: datetime) -> Q:
    """Jobs a person should look at although they have not failed: waiting for an attempt since before
    `stale_before`, or held by a worker whose lease ran out."""
    waiting = Q(status__in=(ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING)) & (
        Q(next_attempt_at__lt=stale_before) | Q(next_attempt_at__isnull=True, created_at__lt=stale_before))
    abandoned = Q(status=ProvisioningJobStatus.RUNNING, lease_expires_at__lt=now)
    return waiting | abandoned

"""What needs a person on an order or a customer: a setup that failed or is overdue, a payment held for review, a
suspended service. One set of rules for the banner on the order and customer pages, the "Needs attention" list
filters and the dashboard's counts, so the three always agree.

Every query starts from a small, indexed set (jobs by status, sessions by status, accounts by status) and is bounded:
a million orders make these no slower than a thousand while the things needing attention stay few.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Customer
from checkout.models import CheckoutSession, CheckoutSessionStatus
from checkout.selectors import checkout_sessions_of_customer
from provisioning.models import (
    HostingAccount,
    HostingAccountStatus,
    ProvisioningAction,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.selectors import provisioning_job_waiting_too_long_by_status, provisioning_job_waiting_too_long_q

SETUP_FAILED = "setup_failed"
SETUP_OVERDUE = "setup_overdue"
PAYMENT_REVIEW = "payment_review"
SUSPENDED = "suspended"

# (kind, label of the filter and the dashboard), most serious first.
KINDS = [
    (SETUP_FAILED, "Setup failed"),
    (SETUP_OVERDUE, "Setup overdue"),
    (PAYMENT_REVIEW, "Payment held for review"),
    (SUSPENDED, "Service suspended"),
]
KIND_LABELS = dict(KINDS)

# The filters read the ids of what needs attention first, newest first, on an index: past this many of one kind, a
# filter lists the newest this many (the dashboard's count says how many there are, up to COUNT_MAX). Bounded so that
# a flood of failures costs a filter no more than this many index entries.
FILTER_IDS_MAX = 500
# The dashboard counts up to this many of each kind, then says "1000+".
COUNT_MAX = 1000
# Items one banner lists at most (a customer with many suspended services gets one line each up to this).
BANNER_ITEMS_MAX = 10


@dataclass(frozen=True)
class AttentionItem:
    level: str  # "error" or "warning": the banner's colour
    kind: str  # one of KINDS
    message: str
    url: str | None = None  # where to act on it (the job's setup tools, the order, the subscription)
    link_text: str = ""


def _provision_jobs() -> QuerySet[ProvisioningJob]:
    return ProvisioningJob.objects.filter(action=ProvisioningAction.PROVISION)


def setup_overdue_q(*, now: datetime) -> Q:
    """Provision jobs waiting too long for an attempt, or held by a worker that stopped answering (staff's rule, as
    the dashboard counts it: provisioning.selectors.provisioning_job_waiting_too_long_q)."""
    return provisioning_job_waiting_too_long_q(now=now)


def _jobs_of_kind(kind: str, *, now: datetime) -> QuerySet[ProvisioningJob]:
    if kind == SETUP_FAILED:
        return _provision_jobs().filter(status=ProvisioningJobStatus.FAILED)
    return _provision_jobs().filter(setup_overdue_q(now=now))


def _when(moment: datetime | None) -> str:
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "-"


def _job_item(job: ProvisioningJob, *, now: datetime, about: str = "") -> AttentionItem:
    url = reverse("admin:provisioning_provisioningjob_change", args=[job.pk]) + "#setup-tools"
    if job.status == ProvisioningJobStatus.FAILED:
        error = f" Last error: {job.last_error}" if job.last_error else ""
        return AttentionItem(
            level="error",
            kind=SETUP_FAILED,
            url=url,
            link_text=f"Setup tools for job #{job.pk}",
            message=f"Paid, but the setup failed{about}: provisioning job #{job.pk} gave up after "
            f"{job.attempts} attempt(s); the customer has no account.{error}",
        )
    if job.status == ProvisioningJobStatus.RUNNING:
        waiting = f"its worker stopped answering (lease ran out at {_when(job.lease_expires_at)})"
    else:
        waiting = f"it has waited since {_when(job.next_attempt_at or job.created_at)} for its next attempt"
    return AttentionItem(
        level="warning",
        kind=SETUP_OVERDUE,
        url=url,
        link_text=f"Job #{job.pk}",
        message=f"Setup overdue{about}: provisioning job #{job.pk} is {job.get_status_display().lower()} and "
        f"{waiting}.",
    )


def _review_item(session: CheckoutSession, *, about: str = "", link: bool = False) -> AttentionItem:
    reason = (session.metadata or {}).get("review_reason")
    return AttentionItem(
        level="error",
        kind=PAYMENT_REVIEW,
        url=reverse("admin:checkout_checkoutsession_change", args=[session.pk]) if link else None,
        link_text="The order" if link else "",
        message=f"Payment held for review{about}: the order was set aside and not set up"
        + (f" ({reason})." if reason else ". Check the payment at Stripe before setting it up or refunding."),
    )


def _suspended_item(account: HostingAccount) -> AttentionItem:
    subscription = account.subscription
    domain = f" ({subscription.domain})" if subscription.domain else ""
    since = f" since {_when(account.status_changed_at)}" if account.status_changed_at else ""
    return AttentionItem(
        level="warning",
        kind=SUSPENDED,
        url=reverse("admin:accounts_subscription_change", args=[subscription.pk]),
        link_text="The subscription",
        message=f"Service suspended{since}: hosting account {account.username}{domain}.",
    )


def session_attention(*, session: CheckoutSession, now: datetime | None = None) -> list[AttentionItem]:
    """The banner of one order: at most two queries (its setup job, its hosting account) for a paid order, none for
    one that never was."""
    now = now or timezone.now()
    items = []
    if session.status == CheckoutSessionStatus.NEEDS_REVIEW:
        items.append(_review_item(session))
    if session.status != CheckoutSessionStatus.COMPLETED:
        return items
    job = (
        _provision_jobs()
        .filter(subscription__checkout_session=session)
        .filter(Q(status=ProvisioningJobStatus.FAILED) | setup_overdue_q(now=now))
        .order_by("pk")
        .first()
    )
    if job is not None:
        items.append(_job_item(job, now=now))
    account = (
        HostingAccount.objects.select_related("subscription")
        .filter(subscription__checkout_session=session, status=HostingAccountStatus.SUSPENDED)
        .first()
    )
    if account is not None:
        items.append(_suspended_item(account))
    return items


def customer_attention(*, customer: Customer, now: datetime | None = None) -> list[AttentionItem]:
    """The banner of one customer: each of its orders and services that needs a person, in three bounded queries."""
    now = now or timezone.now()
    items = []
    for job in (
        _provision_jobs()
        .filter(subscription__customer=customer)
        .filter(Q(status=ProvisioningJobStatus.FAILED) | setup_overdue_q(now=now))
        .select_related("subscription")
        .order_by("-pk")[:BANNER_ITEMS_MAX]
    ):
        domain = job.subscription.domain
        items.append(_job_item(job, now=now, about=f" for {domain}" if domain else ""))
    for session in (
        checkout_sessions_of_customer(customer=customer, session_ids=[])
        .filter(status=CheckoutSessionStatus.NEEDS_REVIEW)
        .order_by("-created_at")[:BANNER_ITEMS_MAX]
    ):
        domain = (session.domain_info or {}).get("value")
        items.append(_review_item(session, about=f" for {domain}" if domain else "", link=True))
    for account in (
        HostingAccount.objects.select_related("subscription")
        .filter(subscription__customer=customer, status=HostingAccountStatus.SUSPENDED)
        .order_by("-pk")[:BANNER_ITEMS_MAX]
    ):
        items.append(_suspended_item(account))
    items.sort(key=lambda item: item.level != "error")
    return items


# --- The lists: which orders and customers need attention, by kind ---------------------------------------------------


def _newest(kind: str, *fields: str, now: datetime) -> list[tuple]:
    """`fields` of the newest FILTER_IDS_MAX jobs (or accounts) of this kind, newest first. One index range per status
    (provisioning.0008: provision jobs by status, newest first; accounts by status), each read newest first and at
    most FILTER_IDS_MAX entries, merged here: ORing the statuses in one query would sort all their rows instead."""
    if kind == SUSPENDED:
        sources = [HostingAccount.objects.filter(status=HostingAccountStatus.SUSPENDED)]
    elif kind == SETUP_FAILED:
        sources = [_provision_jobs().filter(status=ProvisioningJobStatus.FAILED)]
    else:
        # setup_overdue_q split by status: one plain condition per status lets PostgreSQL read each status's index
        # range newest first and stop (the OR of the whole rule is misestimated and sorted whole).
        sources = [_provision_jobs().filter(part) for part in provisioning_job_waiting_too_long_by_status(now=now)]
    rows = []
    for source in sources:
        rows += source.order_by("-created_at").values_list("created_at", *fields)[:FILTER_IDS_MAX]
    rows.sort(key=lambda row: row[0], reverse=True)
    return [row[1:] for row in rows[:FILTER_IDS_MAX]]


def checkout_sessions_needing_attention(
    *, kind: str, queryset: QuerySet | None = None, now: datetime | None = None
) -> QuerySet[CheckoutSession]:
    """The orders with this kind of trouble. The ids come first from the small indexed set (jobs or accounts by
    status), so the list's own order and page stay an index scan on the sessions table."""
    now = now or timezone.now()
    queryset = CheckoutSession.objects.all() if queryset is None else queryset
    if kind == PAYMENT_REVIEW:
        return queryset.filter(status=CheckoutSessionStatus.NEEDS_REVIEW)
    if kind not in KIND_LABELS:
        return queryset
    rows = _newest(kind, "subscription__checkout_session_id", "subscription__checkout_session__created_at", now=now)
    if not rows:
        return queryset.none()
    # The sessions' own date range besides their ids: without it PostgreSQL reads the list's first and last dates
    # (the date drill-down) by walking the whole created_at index in search of these few ids.
    dates = [created for _, created in rows]
    return queryset.filter(pk__in=[pk for pk, _ in rows], created_at__gte=min(dates), created_at__lte=max(dates))


def customers_needing_attention(
    *, kind: str, queryset: QuerySet | None = None, now: datetime | None = None
) -> QuerySet[Customer]:
    """The customers with this kind of trouble on one of their orders or services (see
    checkout_sessions_needing_attention)."""
    now = now or timezone.now()
    queryset = Customer.objects.all() if queryset is None else queryset
    if kind in (SETUP_FAILED, SETUP_OVERDUE, SUSPENDED):
        return queryset.filter(pk__in=[row[0] for row in _newest(kind, "subscription__customer_id", now=now)])
    if kind == PAYMENT_REVIEW:
        # A session set aside has no subscription: its customer is the one with its Stripe customer id or e-mail.
        held = list(
            CheckoutSession.objects.filter(status=CheckoutSessionStatus.NEEDS_REVIEW)
            .order_by("-created_at")
            .values_list("stripe_customer_id", "email")[:FILTER_IDS_MAX]
        )
        stripe_ids = {stripe_id for stripe_id, _ in held if stripe_id}
        emails = {email.lower() for _, email in held}
        return queryset.alias(attention_email=Lower("email")).filter(
            Q(stripe_customer_id__in=stripe_ids) | Q(attention_email__in=emails)
        )
    return queryset


def attention_counts(*, now: datetime | None = None) -> dict[str, int]:
    """How many orders need attention, by kind, each counted up to COUNT_MAX (the dashboard shows "1000+")."""
    now = now or timezone.now()
    return {
        # Unordered: a count has no order, and an ORDER BY would steer the planner to the newest-first index and a
        # filter over every provision job instead of the status ranges (100 ms against 2 at a million jobs).
        SETUP_FAILED: _jobs_of_kind(SETUP_FAILED, now=now).order_by()[: COUNT_MAX + 1].count(),
        SETUP_OVERDUE: _jobs_of_kind(SETUP_OVERDUE, now=now).order_by()[: COUNT_MAX + 1].count(),
        PAYMENT_REVIEW: CheckoutSession.objects.filter(status=CheckoutSessionStatus.NEEDS_REVIEW)
        .order_by()[: COUNT_MAX + 1]
        .count(),
        SUSPENDED: HostingAccount.objects.filter(status=HostingAccountStatus.SUSPENDED)
        .order_by()[: COUNT_MAX + 1]
        .count(),
    }


class _AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return KINDS


class CheckoutSessionAttentionFilter(_AttentionFilter):
    def queryset(self, request, queryset):
        if self.value() in KIND_LABELS:
            return checkout_sessions_needing_attention(kind=self.value(), queryset=queryset)
        return queryset


class CustomerAttentionFilter(_AttentionFilter):
    def queryset(self, request, queryset):
        if self.value() in KIND_LABELS:
            return customers_needing_attention(kind=self.value(), queryset=queryset)
        return queryset


# --- An order's status as the lists show it: a paid order whose setup failed is not "Completed" ---------------------


def checkout_sessions_setup_attach(sessions: list[CheckoutSession]) -> list[CheckoutSession]:
    """Each session of a page with its setup job's status and its hosting account's status (`setup_status`,
    `account_status`), for checkout_session_status_label: two queries for the page's rows, nothing added to the
    list's own query (nor to its count)."""
    ids = [session.pk for session in sessions]
    jobs, accounts = {}, {}
    if ids:
        for session_id, status in (
            _provision_jobs()
            .filter(subscription__checkout_session_id__in=ids)
            .order_by("-pk")
            .values_list("subscription__checkout_session_id", "status")
        ):
            jobs[session_id] = status  # the first provision job, should there ever be more
        accounts = dict(
            HostingAccount.objects.filter(subscription__checkout_session_id__in=ids).values_list(
                "subscription__checkout_session_id", "status"
            )
        )
    for session in sessions:
        session.setup_status, session.account_status = jobs.get(session.pk), accounts.get(session.pk)
    return sessions


def checkout_session_status_label(session: CheckoutSession) -> tuple[str, str]:
    """(label, level) of an order for the lists: a paid order says how its setup went ("Paid — setup failed"),
    so that an order whose customer has no account never reads "Completed". Needs checkout_sessions_setup_attach."""
    if session.status != CheckoutSessionStatus.COMPLETED:
        level = {
            CheckoutSessionStatus.NEEDS_REVIEW: "error",
            CheckoutSessionStatus.PAYMENT_FAILED: "error",
            CheckoutSessionStatus.PENDING: "info",
            CheckoutSessionStatus.EXPIRED: "quiet",
        }.get(session.status, "info")
        label = (
            "Payment held for review"
            if session.status == CheckoutSessionStatus.NEEDS_REVIEW
            else session.get_status_display()
        )
        return label, level
    setup, account = getattr(session, "setup_status", None), getattr(session, "account_status", None)
    if account == HostingAccountStatus.SUSPENDED:
        return "Completed — suspended", "warning"
    if account == HostingAccountStatus.TERMINATED:
        return "Completed — terminated", "quiet"
    if setup == ProvisioningJobStatus.FAILED:
        return "Paid — setup failed", "error"
    if setup == ProvisioningJobStatus.CANCELED and account is None:
        return "Paid — setup canceled", "warning"
    if setup in (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING, ProvisioningJobStatus.RUNNING):
        if setup == ProvisioningJobStatus.RETRYING:
            return "Paid — setup retrying", "warning"
        return "Paid — setting up", "info"
    if setup == ProvisioningJobStatus.DONE_BY_HAND:
        return "Completed (set up by hand)", "ok"
    return "Completed", "ok"

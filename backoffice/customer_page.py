"""The customer page, where support starts (WHMCS's client profile is the model): one selector gathers the customer's
people, services, orders, invoices, refunds, billing actions, e-mails and staff notes, each section the newest few
with a "see all" link, in a fixed number of queries however many orders the customer has.

Also here: which customer an order belongs to (for the order page's "Customer" link and its pinned notes) and the
pinned notes that every order and subscription page of a customer shows.
"""

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import QuerySet, Sum
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.formats import date_format

from accounts.models import Customer, CustomerMembership, Subscription
from backoffice.attention import customer_attention
from backoffice.models import StaffNote
from backoffice.selectors import stripe_dashboard_url
from billing.models import BillingAction, InvoiceStatus, RefundRecord, SubscriptionInvoice
from checkout.models import CheckoutSession
from checkout.selectors import checkout_sessions_of_customer
from core.money import money_format
from provisioning.models import EmailNotification, HostingAccount, HostingAccountStatus

# How many rows each section shows before its "see all" link. A customer with thousands of orders still gets a page
# of the same size: each section reads one row more than it shows, to know whether there are more.
SECTION_ROWS = {
    "services": 20,
    "orders": 10,
    "invoices": 10,
    "refunds": 10,
    "billing_actions": 10,
    "emails": 10,
    "notes": 20,
}
# Pinned notes shown as a banner on each order and subscription page of the customer.
PINNED_BANNER_ROWS = 5


@dataclass
class Person:
    membership: CustomerMembership
    user: object
    role: str
    password_set: bool


@dataclass
class Service:
    subscription: Subscription
    account: HostingAccount | None
    plan: str
    amount: str
    status: str  # a sentence for staff: "Active", "Past due", "Suspended", "Cancelled", "Cancels on ..."
    level: str  # ok, warning, error: the badge's colour
    renews_on: datetime | None


@dataclass
class Order:
    session: CheckoutSession
    plan: str
    amount: str
    domain: str


@dataclass
class Money:
    row: object
    amount: str
    extra: dict = field(default_factory=dict)


@dataclass
class Section:
    rows: list
    more: bool  # there are older rows than these: the "see all" link says where
    see_all_url: str | None = None


@dataclass
class CustomerPage:
    customer: Customer
    people: list[Person]
    services: Section
    orders: Section
    invoices: Section
    refunds: Section
    billing_actions: Section
    emails: Section
    notes: Section
    paid: list[str]  # money paid in total, one entry per currency ("$120.00 USD")
    refunded: list[str]
    stripe_url: str | None = None
    attention: list = field(default_factory=list)  # backoffice.attention's items: the banner at the top

    @property
    def pinned_notes(self) -> list[StaffNote]:
        return [note for note in self.notes.rows if note.pinned][:PINNED_BANNER_ROWS]


def _bounded(queryset, name: str) -> tuple[list, bool]:
    limit = SECTION_ROWS[name]
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def _changelist(model_name: str, **params) -> str:
    return f"{reverse(f'admin:{model_name}_changelist')}?{urlencode(params)}"


def _service(subscription: Subscription) -> Service:
    account = getattr(subscription, "hosting_account", None)
    ended = subscription.is_ended
    renews_on = None
    if account is not None and account.status == HostingAccountStatus.TERMINATED:
        status, level = "Terminated", "error"
    elif account is not None and account.status == HostingAccountStatus.SUSPENDED:
        status, level = "Suspended", "error"
    elif ended:
        when = subscription.ended_at or subscription.canceled_at
        status, level = "Cancelled" + (f" (ended {_day(when)})" if when else ""), "error"
    elif subscription.cancel_at_period_end:
        status = "Cancels " + (
            f"on {_day(subscription.current_period_end)}"
            if subscription.current_period_end
            else "at the end of the period"
        )
        level = "warning"
    elif subscription.status in ("past_due", "unpaid"):
        status, level = subscription.get_status_display(), "error"
        renews_on = subscription.current_period_end
    elif account is None:
        status, level = f"{subscription.get_status_display()}, not set up yet", "warning"
        renews_on = subscription.current_period_end
    else:
        status, level = subscription.get_status_display(), "ok"
        renews_on = subscription.current_period_end
    return Service(
        subscription=subscription,
        account=account,
        plan=f"{subscription.product.name} ({subscription.billing_cycle})",
        amount=money_format(subscription.amount, subscription.currency),
        status=status,
        level=level,
        renews_on=renews_on,
    )


def _day(moment: datetime) -> str:
    return date_format(moment, "DATE_FORMAT")


def _totals(rows) -> list[str]:
    return [money_format(row["total"], row["currency"]) for row in rows if row["total"]]


def customer_page(*, customer: Customer) -> CustomerPage:
    """Everything support reads about one customer, newest first in each section. Fourteen queries whatever the
    number of orders, services or e-mails (asserted in tests/backoffice/test_customer_page.py): one per section and
    per total, one for the sessions of all the customer's subscriptions, and three for the "needs attention" banner
    (backoffice.attention)."""
    # Every subscription's session, not only the newest few services': the orders and e-mails sections look for them.
    session_ids = list(Subscription.objects.filter(customer=customer).values_list("checkout_session_id", flat=True))
    orders = checkout_sessions_of_customer(customer=customer, session_ids=session_ids)
    return CustomerPage(
        customer=customer,
        people=_people(customer),
        services=_services_section(customer),
        orders=_orders_section(customer, orders=orders),
        invoices=_invoices_section(customer),
        refunds=_refunds_section(customer),
        billing_actions=_billing_actions_section(customer),
        emails=_emails_section(customer, orders=orders),
        notes=_notes_section(customer),
        paid=_paid_totals(customer),
        refunded=_refunded_totals(customer),
        stripe_url=stripe_dashboard_url(customer.stripe_customer_id),
        attention=customer_attention(customer=customer),
    )


def _paid_totals(customer: Customer) -> list[str]:
    rows = (
        SubscriptionInvoice.objects.filter(subscription__customer=customer, status=InvoiceStatus.PAID)
        .order_by()
        .values("currency")
        .annotate(total=Sum("amount_paid"))
        .order_by("currency")
    )
    return _totals(rows)


def _refunded_totals(customer: Customer) -> list[str]:
    """Refunds that went through or may still (pending)."""
    rows = (
        RefundRecord.objects.filter(subscription__customer=customer, status__in=("succeeded", "pending"))
        .order_by()
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    return _totals(rows)


def _people(customer: Customer) -> list[Person]:
    return [
        Person(membership=m, user=m.user, role=m.get_role_display(), password_set=m.user.has_usable_password())
        for m in customer.memberships.select_related("user").order_by("created_at", "pk")
    ]


def _services_section(customer: Customer) -> Section:
    subscriptions, more = _bounded(
        Subscription.objects.filter(customer=customer)
        .select_related("product", "hosting_account")
        .order_by("-created_at", "-pk"),
        "services",
    )
    return Section(
        [_service(s) for s in subscriptions],
        more,
        _changelist("accounts_subscription", customer__id__exact=customer.pk),
    )


def _orders_section(customer: Customer, *, orders: QuerySet) -> Section:
    sessions, more = _bounded(orders.select_related("price__product").order_by("-created_at"), "orders")
    rows = [
        Order(
            session=s,
            plan=f"{s.price.product.name} ({s.billing_cycle})"
            if s.price_id
            else f"{s.product_code} ({s.billing_cycle})",
            amount=money_format(s.amount, s.currency),
            domain=(s.domain_info or {}).get("value") or "",
        )
        for s in sessions
    ]
    return Section(rows, more, _changelist("checkout_checkoutsession", q=customer.email))


def _invoices_section(customer: Customer) -> Section:
    invoices, more = _bounded(
        SubscriptionInvoice.objects.filter(subscription__customer=customer)
        .select_related("subscription__product")
        .order_by("-stripe_created", "-pk"),
        "invoices",
    )
    rows = [
        Money(
            row=i,
            amount=money_format(i.amount_due, i.currency),
            extra={"paid": money_format(i.amount_paid, i.currency) if i.amount_paid else ""},
        )
        for i in invoices
    ]
    return Section(rows, more, _changelist("billing_subscriptioninvoice", q=customer.email))


def _refunds_section(customer: Customer) -> Section:
    refunds, more = _bounded(
        RefundRecord.objects.filter(subscription__customer=customer)
        .select_related("subscription__product")
        .order_by("-stripe_created", "-pk"),
        "refunds",
    )
    rows = [Money(row=r, amount=money_format(r.amount, r.currency)) for r in refunds]
    return Section(rows, more, _changelist("billing_refundrecord", q=customer.email))


def _billing_actions_section(customer: Customer) -> Section:
    actions, more = _bounded(
        BillingAction.objects.filter(subscription__customer=customer)
        .select_related("subscription__product", "actor")
        .order_by("-created_at", "-pk"),
        "billing_actions",
    )
    # A decision's amount is in its subscription's currency.
    rows = [
        Money(row=a, amount=money_format(a.amount, a.subscription.currency) if a.amount is not None else "")
        for a in actions
    ]
    return Section(rows, more, _changelist("billing_billingaction", q=customer.email))


def _emails_section(customer: Customer, *, orders: QuerySet) -> Section:
    """The e-mails about the customer's orders (a subquery of them)."""
    emails, more = _bounded(
        EmailNotification.objects.filter(checkout_session__in=orders.values("pk"))
        .defer("context", "last_error")
        .order_by("-created_at", "-pk"),
        "emails",
    )
    # EmailNotification has no index on `to`: the exact-match filter reads only this customer's address.
    return Section(emails, more, _changelist("provisioning_emailnotification", to=customer.email))


def _notes_section(customer: Customer) -> Section:
    notes, more = _bounded(
        StaffNote.objects.filter(customer=customer).order_by("-pinned", "-created_at", "-pk"), "notes"
    )
    return Section(notes, more, _changelist("backoffice_staffnote", customer__id__exact=customer.pk))


# --- Orders and subscriptions point back at their customer ------------------------------------------------------------


def customer_for_order(*, session: CheckoutSession, subscription_customer: Customer | None = None) -> Customer | None:
    """The customer an order belongs to: the one its subscription made, else (a pending, expired or failed order) the
    customer with its Stripe customer id, else the newest customer with its e-mail address. At most two indexed
    queries."""
    if subscription_customer is not None:
        return subscription_customer
    if session.stripe_customer_id:
        customer = Customer.objects.filter(stripe_customer_id=session.stripe_customer_id).first()
        if customer is not None:
            return customer
    return (
        Customer.objects.alias(email_lower=Lower("email"))
        .filter(email_lower=session.email.lower())
        .order_by("-pk")
        .first()
    )


def customer_pinned_notes(*, customer: Customer | None) -> list[StaffNote]:
    """The customer's pinned notes, newest first, for the banner on its order and subscription pages."""
    if customer is None:
        return []
    return list(
        StaffNote.objects.filter(customer=customer, pinned=True).order_by("-created_at", "-pk")[:PINNED_BANNER_ROWS]
    )

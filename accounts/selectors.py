"""Reads of accounts: a returning buyer's Stripe customer, and the client area's view of the services a user may see."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateformat import format as date_format

from accounts.models import Customer, CustomerMembership, CustomerRole, Subscription, SubscriptionStatus, User
from billing.models import InvoiceStatus, SubscriptionInvoice
from catalog.models import Coupon, CouponDuration
from catalog.selectors import coupon_discount_amount
from provisioning.models import HostingAccount, HostingAccountStatus


def customer_stripe_id_for_email(*, email: str) -> str | None:
    """The Stripe customer of a returning buyer (the newest billing account with this e-mail that Stripe knows), so
    one person stays one Stripe customer: their card, their invoices and a test clock follow them. One indexed
    query (the index is on LOWER(email))."""
    return (
        Customer.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower=email.lower(), stripe_customer_id__isnull=False)
        .order_by("-pk")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )


# --- The client area: what a signed-in user may see of the customers they belong to --------------------------------

# Roles that see invoices and may cancel, change the plan or manage the card; `technical` sees services only.
BILLING_ROLES = frozenset({CustomerRole.OWNER, CustomerRole.ADMIN, CustomerRole.BILLING})


def role_sees_billing(role: str) -> bool:
    return role in BILLING_ROLES


@dataclass(frozen=True)
class ClientService:
    """One subscription as its customer reads it on the first page and the service page."""

    subscription: Subscription
    role: str  # the signed-in user's role in the subscription's customer
    account: HostingAccount | None
    status: str  # setting_up, active, past_due, suspended, cancels, ended, terminated
    status_label: str
    next_renewal_at: datetime | None
    next_renewal_amount: int | None

    @property
    def sees_billing(self) -> bool:
        return role_sees_billing(self.role)

    @property
    def running(self) -> bool:
        """Stripe still bills it: it can be cancelled or changed."""
        return bool(self.subscription.stripe_subscription_id) and self.status not in ("ended", "terminated")


def _service_status(subscription: Subscription, account: HostingAccount | None) -> tuple[str, str]:
    if account is not None and account.status == HostingAccountStatus.TERMINATED:
        return "terminated", "Terminated"
    if account is not None and account.status == HostingAccountStatus.SUSPENDED:
        return "suspended", "Suspended"
    if subscription.is_ended:
        ended = subscription.ended_at or subscription.canceled_at
        return "ended", f"Ended on {_day(ended)}" if ended else "Ended"
    if subscription.cancel_at_period_end:
        return "cancels", (
            f"Cancels on {_day(subscription.current_period_end)}"
            if subscription.current_period_end
            else "Cancels at the end of the period"
        )
    if subscription.status in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID):
        return "past_due", "Payment overdue"
    if account is None:
        return "setting_up", "Being set up"
    return "active", "Active"


def _day(moment: datetime) -> str:
    return date_format(timezone.localtime(moment).date(), "j F Y")


def _renewal_amount(subscription: Subscription, coupon: Coupon | None) -> int:
    """What the next renewal charges: the period's price less a coupon that still applies to it (a `forever` one, or
    a `repeating` one within its months). Tax, if Stripe adds any, is not known here."""
    amount = subscription.amount
    if coupon is None or coupon.duration == CouponDuration.ONCE:
        return amount
    if coupon.duration == CouponDuration.REPEATING:
        start, end = subscription.created_at, subscription.current_period_end
        if end is None or (end.year - start.year) * 12 + end.month - start.month >= (coupon.duration_in_months or 0):
            return amount
    return amount - coupon_discount_amount(coupon=coupon, amount=amount)


def _client_service(subscription: Subscription, role: str, coupons: dict[str, Coupon]) -> ClientService:
    account = getattr(subscription, "hosting_account", None)
    status, label = _service_status(subscription, account)
    renews = status in ("active", "past_due", "setting_up", "suspended") and subscription.current_period_end
    coupon = coupons.get((subscription.checkout_session.coupon_code or "").lower())
    return ClientService(
        subscription=subscription,
        role=role,
        account=account,
        status=status,
        status_label=label,
        next_renewal_at=subscription.current_period_end if renews else None,
        next_renewal_amount=_renewal_amount(subscription, coupon) if renews else None,
    )


def _client_subscriptions():
    return Subscription.objects.select_related(
        "customer", "product", "price", "checkout_session", "hosting_account"
    ).order_by("customer__name", "customer_id", "-created_at", "-id")


def _coupons_for(subscriptions) -> dict[str, Coupon]:
    codes = {s.checkout_session.coupon_code.lower() for s in subscriptions if s.checkout_session.coupon_code}
    if not codes:
        return {}
    return {c.code.lower(): c for c in Coupon.objects.annotate(code_lower=Lower("code")).filter(code_lower__in=codes)}


def client_services_for_user(*, user: User) -> list[tuple[Customer, str, list[ClientService]]]:
    """Every customer the user is a member of, with their role and its services (newest first), in three queries."""
    memberships = list(
        CustomerMembership.objects.filter(user=user)
        .select_related("customer")
        .order_by("customer__name", "customer_id")
    )
    roles = {m.customer_id: m.role for m in memberships}
    subscriptions = list(_client_subscriptions().filter(customer_id__in=roles))
    coupons = _coupons_for(subscriptions)
    services: dict[int, list[ClientService]] = {customer_id: [] for customer_id in roles}
    for subscription in subscriptions:
        services[subscription.customer_id].append(
            _client_service(subscription, roles[subscription.customer_id], coupons)
        )
    return [(m.customer, m.role, services[m.customer_id]) for m in memberships]


def client_service_get(*, user: User, subscription_id: int) -> ClientService | None:
    """The service if it belongs to one of the user's customers, else None (the view answers 404: another
    customer's ids are not even confirmed to exist)."""
    subscription = _client_subscriptions().filter(pk=subscription_id, customer__memberships__user=user).first()
    if subscription is None:
        return None
    role = (
        CustomerMembership.objects.filter(user=user, customer_id=subscription.customer_id)
        .values_list("role", flat=True)
        .first()
    )
    return _client_service(subscription, role, _coupons_for([subscription]))


def client_service_invoices(*, subscription: Subscription) -> list[SubscriptionInvoice]:
    """The invoices a customer can read (drafts are Stripe's work in progress), newest first."""
    return list(
        SubscriptionInvoice.objects.filter(subscription=subscription)
        .exclude(status=InvoiceStatus.DRAFT)
        .order_by("-stripe_created", "-id")
    )

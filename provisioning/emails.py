"""The customer e-mails: what each purpose says (templates/emails/<purpose>.txt, .html, _subject.txt) and the data
it is rendered with. Sending, at least once and under one Message-ID, is services.email_notification_send."""

import hashlib
from datetime import UTC, date, datetime
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from catalog.models import BillingCycle, Product
from core.money import money_format
from provisioning.models import EmailNotification, EmailPurpose, HostingAccount


class EmailContextError(ValueError):
    """The caller left out a fact the e-mail must state, or gave one in a shape it cannot be read in. A programming
    error: the e-mail fails (staff see it in the admin) rather than going out with a blank where the amount was."""


def money(amount: int, currency: str) -> str:
    """Minor units as a customer reads them: 799, "usd" -> "$7.99"; 123456, "chf" -> "1,234.56 CHF"."""
    return money_format(amount, currency, code=False)


def customer_date(value: str) -> str:
    """An ISO 8601 date or time as a customer reads it: "2027-01-14" or "2027-01-14T09:30:00Z" -> "14 January 2027".
    A time is shown as the date it falls on in the site's time zone (naive times are taken as UTC)."""
    try:
        # A bare date stays that date: read as midnight UTC it could fall on the day before in the site's zone.
        parsed = date.fromisoformat(value) if len(value) <= 10 else datetime.fromisoformat(value)
    except (TypeError, ValueError) as error:
        raise EmailContextError(f"{value!r} is not an ISO 8601 date") from error
    if isinstance(parsed, datetime):
        aware = parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)
        parsed = timezone.localtime(aware).date()
    return date_format(parsed, "j F Y")


def email_message_build(*, notification: EmailNotification) -> EmailMultiAlternatives:
    """The message, with a plain-text body and an HTML alternative. Raises when the order lacks what the e-mail
    must say (no user to set a password for, no hosting account yet), and EmailContextError when the notification's
    context lacks a fact its purpose states (an amount, a date, the pay link)."""
    context = {
        "site_url": settings.SITE_URL,
        "order": _order_context(notification.checkout_session),
        **PURPOSE_CONTEXT[notification.purpose](notification),
    }
    template = f"emails/{notification.purpose}"
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to],
        headers={
            # Lets the mail log, and support, tell which outbox row a message came from.
            "X-Notification-Id": str(notification.pk),
            # The same on every attempt: should a retry follow a delivery we never heard of, the two copies are one
            # message to the mail servers and clients that drop duplicates by Message-ID.
            "Message-ID": email_message_id(notification),
        },
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return message


def email_message_id(notification: EmailNotification) -> str:
    """One Message-ID per outbox row, whatever the attempt: `<notification-<id>.<deployment>@<sender's domain>>`,
    the deployment being a hash of SITE_URL, so that staging's row 7 is not production's."""
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "localhost"
    deployment = hashlib.sha256(settings.SITE_URL.encode()).hexdigest()[:10]
    return f"<notification-{notification.pk}.{deployment}@{domain}>"


class Order(Protocol):
    """What an order e-mail reads of its order (checkout.CheckoutSession): provisioning takes the order as it is
    given, through EmailNotification.checkout_session, and never imports checkout."""

    pk: object
    product_code: str
    billing_cycle: str
    amount: int
    amount_due_first: int
    amount_discount: int
    currency: str
    coupon_code: str | None
    trial_days: int | None
    domain_info: dict | None
    customer_name: str


def _plan_name(session: Order) -> str:
    product = Product.objects.filter(code=session.product_code).first()
    return product.name if product else session.product_code


def _order_context(session: Order) -> dict:
    cycle = (
        BillingCycle(session.billing_cycle).label
        if session.billing_cycle in BillingCycle.values
        else (session.billing_cycle)
    )
    return {
        "reference": str(session.pk),
        "plan": _plan_name(session),
        "cycle": cycle,
        "price": money(session.amount, session.currency),
        "first_charge": money(session.amount_due_first, session.currency),
        "discount": money(session.amount_discount, session.currency) if session.amount_discount else "",
        "coupon": session.coupon_code or "",
        "trial_days": session.trial_days or 0,
        "domain": (session.domain_info or {}).get("value", ""),
        "customer_name": session.customer_name or "",
    }


def _set_password_context(notification: EmailNotification) -> dict:
    # The token is made now, at sending: it stops working once the password is set (it hashes the password) and
    # after PASSWORD_RESET_TIMEOUT.
    user = User.objects.get(email__iexact=notification.to)
    path = reverse(
        "accounts:password_set",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return {
        "user": user,
        "set_password_url": f"{settings.SITE_URL}{path}",
        "link_valid_days": max(settings.PASSWORD_RESET_TIMEOUT // 86400, 1),
    }


def _service_ready_context(notification: EmailNotification) -> dict:
    account = HostingAccount.objects.get(subscription__checkout_session=notification.checkout_session)
    return {"account": account}


def _payment_failed_context(notification: EmailNotification) -> dict:
    return {"storefront_url": settings.STOREFRONT_URL}


# --- The subscription's life after the first payment --------------------------------------------------------------
# The caller (billing) decides the facts and stores them in notification.context; these functions check that what
# the e-mail must state is there, and put it in the shape a customer reads (dates, money).


class _Facts:
    """One notification's context, read key by key: required keys raise EmailContextError when absent or empty."""

    def __init__(self, notification: EmailNotification):
        self.notification = notification
        self.context = notification.context if isinstance(notification.context, dict) else {}

    def _missing(self, key: str) -> bool:
        return self.context.get(key) in (None, "")

    def _error(self, key: str, problem: str) -> EmailContextError:
        return EmailContextError(
            f"The {self.notification.purpose} e-mail (notification {self.notification.pk}) "
            f"{problem} {key!r} in its context"
        )

    def raw(self, key: str, *, required: bool = True):
        if self._missing(key):
            if required:
                raise self._error(key, "needs")
            return None
        return self.context[key]

    def text(self, key: str, *, required: bool = True) -> str:
        value = self.raw(key, required=required)
        return "" if value is None else str(value)

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self._error(key, "needs true or false as")
        return value

    def amount(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(key, "needs an amount in minor units (an integer) as")
        return value

    def money(self, key: str) -> str:
        return money(self.amount(key), self.text("currency"))

    def date(self, key: str, *, required: bool = True) -> str:
        value = self.raw(key, required=required)
        if value is None:
            return ""
        try:
            return customer_date(value)
        except EmailContextError as error:
            raise self._error(key, "needs an ISO 8601 date as") from error

    def url(self, key: str, *, required: bool = True) -> str:
        # Autoescaping keeps a link from breaking out of its attribute, not a javascript: link from being one.
        value = self.text(key, required=required)
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise self._error(key, "needs an http(s) address as")
        return value


def _hosting_context(notification: EmailNotification) -> dict:
    """The hosting account the e-mail is about (None when none was set up), the domain, and how the e-mail names the
    service: "hosting for shop.example", or "Starter plan" for an order without a domain."""
    session = notification.checkout_session
    account = HostingAccount.objects.filter(subscription__checkout_session=session).first()
    domain = (account.domain if account else "") or (session.domain_info or {}).get("value", "")
    return {
        "account": account,
        "domain": domain,
        "service": f"hosting for {domain}" if domain else f"{_plan_name(session)} plan",
    }


def _renewal_receipt_context(notification: EmailNotification) -> dict:
    facts = _Facts(notification)
    return {
        **_hosting_context(notification),
        "invoice_id": facts.text("invoice_id"),
        "invoice_number": facts.text("number", required=False),
        "amount_paid": facts.money("amount_paid"),
        "period_start": facts.date("period_start"),
        "period_end": facts.date("period_end"),
        "hosted_invoice_url": facts.url("hosted_invoice_url", required=False),
        "invoice_pdf": facts.url("invoice_pdf", required=False),
        # A plan change charged at once (Stripe's billing_reason subscription_update) is receipted the same way.
        "plan_change": notification.context.get("billing_reason") == "subscription_update",
    }


def _renewal_failed_context(notification: EmailNotification) -> dict:
    facts = _Facts(notification)
    return {
        **_hosting_context(notification),
        "invoice_id": facts.text("invoice_id"),
        "invoice_number": facts.text("number", required=False),
        "amount_due": facts.money("amount_due"),
        "hosted_invoice_url": facts.url("hosted_invoice_url"),
        "next_payment_attempt": facts.date("next_payment_attempt", required=False),
        "suspend_on": facts.date("suspend_on", required=False),
    }


def _service_suspended_context(notification: EmailNotification) -> dict:
    facts = _Facts(notification)
    # Staff may suspend with nothing owed (abuse, a request): then the e-mail asks for no payment.
    owed = facts.amount("amount_due") > 0
    return {
        **_hosting_context(notification),
        "invoice_id": facts.text("invoice_id", required=False),
        "amount_due": facts.money("amount_due") if owed else "",
        "hosted_invoice_url": facts.url("hosted_invoice_url", required=False) if owed else "",
        "reason": facts.text("reason"),
    }


def _termination_warning_context(notification: EmailNotification) -> dict:
    facts = _Facts(notification)
    return {
        **_hosting_context(notification),
        "terminate_on": facts.date("terminate_on"),
        "reason": facts.text("reason"),
    }


def _service_terminated_context(notification: EmailNotification) -> dict:
    return {**_hosting_context(notification), "reason": _Facts(notification).text("reason")}


def _cancellation_confirmed_context(notification: EmailNotification) -> dict:
    facts = _Facts(notification)
    return {
        **_hosting_context(notification),
        "at_period_end": facts.flag("at_period_end"),
        "ends_at": facts.date("ends_at"),
        "reason": facts.text("reason", required=False),
    }


def _refund_issued_context(notification: EmailNotification) -> dict:
    facts = _Facts(notification)
    return {
        **_hosting_context(notification),
        "refund_id": facts.text("refund_id"),
        "amount": facts.money("amount"),
        "full": facts.flag("full"),
    }


def _setup_failed_refunded_context(notification: EmailNotification) -> dict:
    return {
        **_hosting_context(notification),
        "amount": _Facts(notification).money("amount"),
        "storefront_url": settings.STOREFRONT_URL,
    }


PURPOSE_CONTEXT = {
    EmailPurpose.SET_PASSWORD: _set_password_context,
    EmailPurpose.ORDER_CONFIRMATION: lambda notification: {},
    EmailPurpose.SERVICE_READY: _service_ready_context,
    EmailPurpose.PAYMENT_FAILED: _payment_failed_context,
    EmailPurpose.RENEWAL_RECEIPT: _renewal_receipt_context,
    EmailPurpose.RENEWAL_FAILED: _renewal_failed_context,
    EmailPurpose.SERVICE_SUSPENDED: _service_suspended_context,
    EmailPurpose.TERMINATION_WARNING: _termination_warning_context,
    EmailPurpose.SERVICE_TERMINATED: _service_terminated_context,
    EmailPurpose.CANCELLATION_CONFIRMED: _cancellation_confirmed_context,
    EmailPurpose.REFUND_ISSUED: _refund_issued_context,
    EmailPurpose.SETUP_FAILED_REFUNDED: _setup_failed_refunded_context,
}

"""The customer e-mails: what each purpose says (templates/emails/<purpose>.txt, .html, _subject.txt) and the data
it is rendered with. Sending, at most once, is services.email_notification_send."""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from catalog.models import BillingCycle, Product
from checkout.models import CheckoutSession
from provisioning.models import EmailNotification, EmailPurpose, HostingAccount

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money(amount: int, currency: str) -> str:
    """Minor units as a customer reads them: 799, "usd" -> "$7.99"; 123456, "chf" -> "1,234.56 CHF"."""
    units, cents = divmod(abs(amount), 100)
    number = f"{'-' if amount < 0 else ''}{units:,}.{cents:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


def email_message_build(*, notification: EmailNotification) -> EmailMultiAlternatives:
    """The message, with a plain-text body and an HTML alternative. Raises when the order lacks what the e-mail
    must say (no user to set a password for, no hosting account yet)."""
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
        # Lets the mail log, and support, tell which outbox row a message came from.
        headers={"X-Notification-Id": str(notification.pk)},
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return message


def _order_context(session: CheckoutSession) -> dict:
    product = Product.objects.filter(code=session.product_code).first()
    cycle = BillingCycle(session.billing_cycle).label if session.billing_cycle in BillingCycle.values else (
        session.billing_cycle)
    return {
        "reference": str(session.pk),
        "plan": product.name if product else session.product_code,
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
    path = reverse("accounts:password_set", kwargs={
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user),
    })
    return {"user": user, "set_password_url": f"{settings.SITE_URL}{path}",
            "link_valid_days": max(settings.PASSWORD_RESET_TIMEOUT // 86400, 1)}


def _service_ready_context(notification: EmailNotification) -> dict:
    account = HostingAccount.objects.get(subscription__checkout_session=notification.checkout_session)
    return {"account": account}


def _payment_failed_context(notification: EmailNotification) -> dict:
    return {"storefront_url": settings.STOREFRONT_URL}


PURPOSE_CONTEXT = {
    EmailPurpose.SET_PASSWORD: _set_password_context,
    EmailPurpose.ORDER_CONFIRMATION: lambda notification: {},
    EmailPurpose.SERVICE_READY: _service_ready_context,
    EmailPurpose.PAYMENT_FAILED: _payment_failed_context,
}

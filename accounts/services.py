"""Writes of accounts: the user who logs in, the customer who pays, the subscription they bought."""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Customer, CustomerMembership, CustomerRole, Subscription, User


def user_get_or_create(*, email: str, full_name: str = "") -> tuple[User, bool]:
    """The user with this e-mail (any case), or a new one without a usable password: they set it from an e-mail."""
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        return user, False
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, full_name=full_name or ""), True
    except IntegrityError:
        # Another order for the same address created the user a moment ago (its transaction has committed).
        return User.objects.get(email__iexact=email), False


def customer_get_or_create_for_user(*, user: User, name: str, stripe_customer_id: str | None) -> Customer:
    """The billing account the user owns, created on their first order; it learns its Stripe id once."""
    customer = Customer.objects.filter(memberships__user=user, memberships__role=CustomerRole.OWNER).first()
    if customer is None:
        customer = Customer.objects.create(name=name or "", email=user.email, stripe_customer_id=stripe_customer_id)
        CustomerMembership.objects.create(customer=customer, user=user, role=CustomerRole.OWNER)
    elif stripe_customer_id and not customer.stripe_customer_id:
        customer.stripe_customer_id = stripe_customer_id
        customer.save(update_fields=["stripe_customer_id", "updated_at"])
    return customer


def subscription_create(
    *,
    customer: Customer,
    checkout_session,
    stripe_subscription_id: str | None,
    stripe_customer_id: str | None,
    status: str,
) -> Subscription:
    price = checkout_session.price
    return Subscription.objects.create(
        customer=customer,
        product_id=price.product_id,
        price=price,
        checkout_session=checkout_session,
        stripe_subscription_id=stripe_subscription_id,
        stripe_customer_id=stripe_customer_id or "",
        status=status,
        billing_cycle=checkout_session.billing_cycle,
        amount=checkout_session.amount,
        currency=checkout_session.currency,
        domain=(checkout_session.domain_info or {}).get("value", ""),
    )


def password_reset_email_send(*, email: str) -> int:
    """A reset link to each active user with this address (none when nobody has it: the requester is told the same
    either way). A user an order made who never chose a password gets one too: this is their way back when the
    set-password link has expired. Returns how many were sent."""
    sent = 0
    for user in User.objects.filter(email__iexact=email, is_active=True):
        path = reverse(
            "accounts:password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        context = {
            "user": user,
            "reset_url": f"{settings.SITE_URL}{path}",
            "site_url": settings.SITE_URL,
            "link_valid_days": max(settings.PASSWORD_RESET_TIMEOUT // 86400, 1),
        }
        subject = " ".join(render_to_string("accounts/emails/password_reset_subject.txt", context).split())
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string("accounts/emails/password_reset.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[user.email],
        )
        message.send()
        sent += 1
    return sent

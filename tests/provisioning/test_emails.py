"""Customer e-mails: created once per order and purpose, sent at least once under one Message-ID, text and HTML, and the set-password
link that really sets a password."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from provisioning.emails import email_message_id, money
from provisioning.models import EmailNotification, EmailPurpose, EmailStatus
from provisioning.services import EMAIL_MAX_ATTEMPTS, email_notification_create, email_notification_send_again
from provisioning.tasks import email_notification_send_task
from tests.accounts.factories import SubscriptionFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import EmailNotificationFactory, HostingAccountFactory

pytestmark = pytest.mark.django_db


def send(notification: EmailNotification) -> EmailNotification:
    email_notification_send_task.delay(notification.pk)
    notification.refresh_from_db()
    return notification


def html_of(message) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


# --- Creating ---------------------------------------------------------------------------------------------------------


def test_one_email_per_order_and_purpose_sent_after_commit(django_capture_on_commit_callbacks):
    session = CheckoutSessionFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        first = email_notification_create(checkout_session=session, purpose="order_confirmation", to=session.email)
        again = email_notification_create(checkout_session=session, purpose="order_confirmation", to=session.email)
        assert mail.outbox == []

    assert first == again and len(callbacks) == 1
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("sent", 1) and first.sent_at and first.enqueued_at
    assert len(mail.outbox) == 1


def test_an_unknown_purpose_is_a_programming_error():
    with pytest.raises(ValueError, match="newsletter"):
        email_notification_create(checkout_session=CheckoutSessionFactory(), purpose="newsletter", to="a@b.example")


# --- At most once -----------------------------------------------------------------------------------------------------


def test_a_second_delivery_of_the_task_sends_nothing():
    notification = send(EmailNotificationFactory())

    assert email_notification_send_task.delay(notification.pk).get() is None

    notification.refresh_from_db()
    assert (notification.status, notification.attempts, len(mail.outbox)) == ("sent", 1, 1)


def test_an_email_handed_over_by_a_worker_that_died_is_sent_again_under_its_message_id():
    gone = timezone.now() - timedelta(minutes=10)
    notification = EmailNotificationFactory(
        status=EmailStatus.SENDING, attempts=1, lease_expires_at=gone, handed_over_at=gone
    )

    assert send(notification).status == "sent"
    assert len(mail.outbox) == 1 and mail.outbox[0].extra_headers["Message-ID"] == email_message_id(notification)


def test_when_the_mail_server_cannot_be_reached_the_email_waits_for_the_sweeper(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2

    notification = send(EmailNotificationFactory())

    assert (notification.status, notification.attempts) == ("pending", 1)
    assert "Connection refused" in notification.last_error


def test_after_the_last_attempt_to_reach_the_mail_server_the_email_fails(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2

    notification = send(EmailNotificationFactory(attempts=EMAIL_MAX_ATTEMPTS - 1))

    assert (notification.status, notification.attempts) == ("failed", EMAIL_MAX_ATTEMPTS)


def test_a_temporary_error_after_the_message_went_in_is_tried_again(smtp_failing_after_data):
    # At least once: the server answered 451 (try later), so the customer does not have it; a lost set-password
    # e-mail would cost more than a second copy under the same Message-ID.
    notification = send(EmailNotificationFactory())

    assert smtp_failing_after_data.messages_received == 1
    assert notification.status == "pending"
    assert "451" in notification.last_error
    assert email_notification_send_task.delay(notification.pk).get() == "pending"
    assert smtp_failing_after_data.messages_received == 2


def test_staff_can_send_a_failed_email_again_but_not_one_being_sent(django_capture_on_commit_callbacks):
    failed = EmailNotificationFactory(status=EmailStatus.FAILED, attempts=1)
    being_sent = EmailNotificationFactory(status=EmailStatus.SENDING, attempts=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert email_notification_send_again(notification=failed) is True
        assert email_notification_send_again(notification=being_sent) is False

    failed.refresh_from_db()
    being_sent.refresh_from_db()
    assert (failed.status, failed.attempts, being_sent.status) == ("sent", 2, "sending")


# --- What each e-mail says --------------------------------------------------------------------------------------------


def test_the_order_confirmation_states_plan_cycle_amount_and_domain():
    session = CheckoutSessionFactory(
        price__product__name="Starter Hosting",
        price__unit_amount=1299,
        domain_info={"mode": "new-or-transfer", "value": "my-shop.example"},
        customer_name="Ada Lovelace",
    )

    send(EmailNotificationFactory(checkout_session=session, purpose=EmailPurpose.ORDER_CONFIRMATION))

    [message] = mail.outbox
    assert message.to == [session.email]
    assert message.subject == "Your order: Starter Hosting (Monthly)"
    for text in (message.body, html_of(message)):
        assert "Ada Lovelace" in text
        assert "Starter Hosting" in text and "Monthly" in text
        assert "$12.99" in text and "my-shop.example" in text and str(session.pk) in text


def test_the_order_confirmation_shows_a_discount_and_a_trial():
    session = CheckoutSessionFactory(price__unit_amount=1000, amount_discount=250, coupon_code="SPRING", trial_days=14)

    send(EmailNotificationFactory(checkout_session=session))

    [message] = mail.outbox
    for text in (message.body, html_of(message)):
        assert "$2.50" in text and "SPRING" in text and "14 days" in text and "$0.00" in text


def test_service_ready_gives_username_server_and_domain_and_no_password():
    subscription = SubscriptionFactory(checkout_session__domain_info={"value": "ready.example"})
    account = HostingAccountFactory(subscription=subscription, username="ready1a2b")

    send(EmailNotificationFactory(checkout_session=subscription.checkout_session, purpose=EmailPurpose.SERVICE_READY))

    [message] = mail.outbox
    assert message.subject == "Your hosting for ready.example is ready"
    for text in (message.body, html_of(message)):
        assert "ready1a2b" in text and account.server in text and "ready.example" in text
        assert "never send passwords" in text
        assert not re.search(r"password\s*:", text, re.IGNORECASE)


def test_service_ready_before_the_account_exists_fails_without_sending():
    subscription = SubscriptionFactory()

    notification = send(
        EmailNotificationFactory(checkout_session=subscription.checkout_session, purpose=EmailPurpose.SERVICE_READY)
    )

    assert notification.status == "failed" and "HostingAccount" in notification.last_error
    assert mail.outbox == []


def test_payment_failed_says_what_happened_and_how_to_try_again(settings):
    settings.STOREFRONT_URL = "https://shop.example"
    session = CheckoutSessionFactory(price__product__name="Business", price__unit_amount=2500)

    send(EmailNotificationFactory(checkout_session=session, purpose=EmailPurpose.PAYMENT_FAILED))

    [message] = mail.outbox
    assert message.subject == "Your payment for Business did not go through"
    for text in (message.body, html_of(message)):
        assert "declined" in text and "No money was taken" in text
        assert "https://shop.example" in text and "$25.00" in text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (799, "usd", "$7.99"),
        (0, "usd", "$0.00"),
        (123456, "eur", "€1,234.56"),
        (5, "chf", "0.05 CHF"),
        (-250, "gbp", "£-2.50"),
    ],
)
def test_money_is_written_from_minor_units(amount, currency, text):
    assert money(amount, currency) == text


# --- Set your password ------------------------------------------------------------------------------------------------


def test_the_set_password_link_sets_the_password_and_the_customer_can_log_in():
    subscription = SubscriptionFactory()
    user = User.objects.get(email=subscription.customer.email)
    assert not user.has_usable_password()

    send(
        EmailNotificationFactory(
            checkout_session=subscription.checkout_session, purpose=EmailPurpose.SET_PASSWORD, to=user.email
        )
    )

    [message] = mail.outbox
    assert message.subject == "Choose your MigraHosting password"
    link = re.search(r"http://testserver(/account/set-password/[^/\s]+/[^/\s]+/)", message.body)[1]
    assert f"http://testserver{link}" in html_of(message)
    browser = Client()
    page = browser.get(link, follow=True)
    assert page.status_code == 200 and b"Choose your password" in page.content
    form_url = page.redirect_chain[-1][0]  # Django moves the token into the session, out of the address bar

    done = browser.post(
        form_url, {"new_password1": "purple-otter-harbour-17", "new_password2": "purple-otter-harbour-17"}, follow=True
    )

    assert done.redirect_chain[-1][0] == reverse("accounts:password_set_done")
    assert b"Your password is set" in done.content
    assert Client().login(email=user.email, password="purple-otter-harbour-17")
    used_again = Client().get(link, follow=True)
    assert b"This link does not work any more" in used_again.content


def test_a_weak_password_is_refused_with_the_reason():
    subscription = SubscriptionFactory()
    user = User.objects.get(email=subscription.customer.email)
    send(
        EmailNotificationFactory(
            checkout_session=subscription.checkout_session, purpose=EmailPurpose.SET_PASSWORD, to=user.email
        )
    )
    link = re.search(r"http://testserver(/account/set-password/\S+/)", mail.outbox[0].body)[1]
    browser = Client()
    form_url = browser.get(link, follow=True).redirect_chain[-1][0]

    page = browser.post(form_url, {"new_password1": "12345678", "new_password2": "12345678"})

    assert page.status_code == 200 and b"too common" in page.content
    user.refresh_from_db()
    assert not user.has_usable_password()


def test_set_password_for_an_address_without_a_user_fails_without_sending():
    notification = send(EmailNotificationFactory(purpose=EmailPurpose.SET_PASSWORD, to="nobody@example.com"))

    assert notification.status == "failed" and "DoesNotExist" in notification.last_error
    assert mail.outbox == []

"""The e-mails of a subscription's life after the first payment: each states the facts billing decided (amounts,
dates, the pay link) in text and HTML alike, and refuses to go out without the facts it must state."""

import re

import pytest
from django.core import mail
from django.db import transaction

from provisioning.emails import EmailContextError, customer_date, email_message_build
from provisioning.models import EmailNotification, EmailPurpose, EmailStatus
from provisioning.services import email_notification_create, email_notification_send
from tests.accounts.factories import SubscriptionFactory
from tests.provisioning.factories import EmailNotificationFactory, HostingAccountFactory

pytestmark = pytest.mark.django_db

# What Stripe's links look like: the query string carries an `&` that HTML must escape.
PAY_LINK = "https://invoice.stripe.com/i/acct_1PqRsT/test_YWNjdF8xUHFSc1Q?s=ap&locale=en"
PDF_LINK = "https://pay.stripe.com/invoice/acct_1PqRsT/test_YWNjdF8xUHFSc1Q/pdf?s=ap&locale=en"

# Realistic context for each purpose, as billing decides it.
CONTEXTS = {
    EmailPurpose.RENEWAL_RECEIPT: {
        "invoice_id": "in_1RenewA",
        "number": "7F3A21C0-0002",
        "amount_paid": 1299,
        "currency": "usd",
        "period_start": "2027-01-14T09:30:00+00:00",
        "period_end": "2027-02-14T09:30:00+00:00",
        "hosted_invoice_url": PAY_LINK,
        "invoice_pdf": PDF_LINK,
    },
    EmailPurpose.RENEWAL_FAILED: {
        "invoice_id": "in_1FailB",
        "number": "7F3A21C0-0003",
        "amount_due": 1299,
        "currency": "usd",
        "hosted_invoice_url": PAY_LINK,
        "next_payment_attempt": "2027-02-17T09:30:00Z",
        "suspend_on": "2027-02-19T09:30:00Z",
    },
    EmailPurpose.SERVICE_SUSPENDED: {
        "invoice_id": "in_1FailB",
        "amount_due": 1299,
        "currency": "usd",
        "hosted_invoice_url": PAY_LINK,
        "reason": "The renewal invoice is still unpaid 5 days after the first failed payment.",
    },
    EmailPurpose.TERMINATION_WARNING: {
        "terminate_on": "2027-03-05",
        "reason": "The subscription was canceled for non-payment.",
    },
    EmailPurpose.SERVICE_TERMINATED: {"reason": "The subscription was canceled for non-payment."},
    EmailPurpose.CANCELLATION_CONFIRMED: {
        "at_period_end": True,
        "ends_at": "2027-02-14T09:30:00Z",
        "reason": "Moving to a dedicated server.",
    },
    EmailPurpose.REFUND_ISSUED: {"refund_id": "re_1RefC", "amount": 1299, "currency": "usd", "full": True},
    EmailPurpose.SETUP_FAILED_REFUNDED: {"amount": 1299, "currency": "usd"},
}


def notification_for(purpose: str, *, with_account: bool = True, **context) -> EmailNotification:
    """A paid Starter Hosting order for shop.example (with its hosting account) and its e-mail for `purpose`, with
    the purpose's realistic context changed by `context` (a value of None drops the key)."""
    subscription = SubscriptionFactory(
        checkout_session__price__product__name="Starter Hosting",
        checkout_session__price__unit_amount=1299,
        checkout_session__domain_info={"mode": "new-or-transfer", "value": "shop.example"},
        checkout_session__customer_name="Ada Lovelace",
    )
    if with_account:
        HostingAccountFactory(subscription=subscription, username="shopex01", server="web07.migrahosting.test")
    facts = {key: value for key, value in {**CONTEXTS[purpose], **context}.items() if value is not None}
    return EmailNotificationFactory(
        checkout_session=subscription.checkout_session,
        purpose=purpose,
        key=facts.get("invoice_id", facts.get("refund_id", "")),
        context=facts,
    )


def build(purpose: str, **kwargs):
    return email_message_build(notification=notification_for(purpose, **kwargs))


def html_of(message) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def both(message) -> tuple[str, str]:
    return message.body, html_of(message)


# --- Every new purpose ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", list(CONTEXTS))
def test_each_billing_email_has_text_and_an_html_page_of_our_own_with_no_external_resources(purpose):
    message = build(purpose)

    html = html_of(message)
    assert message.subject and "\n" not in message.subject
    assert "Ada Lovelace" in message.body and "Ada Lovelace" in html
    assert "Starter Hosting" in message.body and "Starter Hosting" in html
    assert html.startswith("<!doctype html>") and "MigraHosting" in html
    assert not re.search(r"<img|<link|<script|src=|url\(|@import", html, re.IGNORECASE)
    assert "{{" not in message.body + html and "{%" not in message.body + html


@pytest.mark.parametrize(
    ("purpose", "required"),
    [
        (EmailPurpose.RENEWAL_RECEIPT, key)
        for key in ("invoice_id", "amount_paid", "currency", "period_start", "period_end")
    ]
    + [(EmailPurpose.RENEWAL_FAILED, key) for key in ("invoice_id", "amount_due", "currency", "hosted_invoice_url")]
    + [(EmailPurpose.SERVICE_SUSPENDED, key) for key in ("amount_due", "currency", "reason")]
    + [
        (EmailPurpose.TERMINATION_WARNING, "terminate_on"),
        (EmailPurpose.TERMINATION_WARNING, "reason"),
        (EmailPurpose.SERVICE_TERMINATED, "reason"),
        (EmailPurpose.CANCELLATION_CONFIRMED, "at_period_end"),
        (EmailPurpose.CANCELLATION_CONFIRMED, "ends_at"),
    ]
    + [(EmailPurpose.REFUND_ISSUED, key) for key in ("refund_id", "amount", "currency", "full")]
    + [
        (EmailPurpose.SETUP_FAILED_REFUNDED, "amount"),
        (EmailPurpose.SETUP_FAILED_REFUNDED, "currency"),
    ],
)
def test_a_billing_email_without_a_fact_it_must_state_is_not_built(purpose, required):
    notification = notification_for(purpose, **{required: None})

    with pytest.raises(EmailContextError, match=rf"{purpose} e-mail .* needs '{required}'"):
        email_message_build(notification=notification)


@pytest.mark.parametrize(
    ("purpose", "optional"),
    [
        (EmailPurpose.RENEWAL_RECEIPT, "number"),
        (EmailPurpose.RENEWAL_RECEIPT, "hosted_invoice_url"),
        (EmailPurpose.RENEWAL_RECEIPT, "invoice_pdf"),
        (EmailPurpose.RENEWAL_FAILED, "number"),
        (EmailPurpose.RENEWAL_FAILED, "next_payment_attempt"),
        (EmailPurpose.RENEWAL_FAILED, "suspend_on"),
        (EmailPurpose.SERVICE_SUSPENDED, "invoice_id"),
        (EmailPurpose.SERVICE_SUSPENDED, "hosted_invoice_url"),
        (EmailPurpose.CANCELLATION_CONFIRMED, "reason"),
    ],
)
def test_a_billing_email_without_an_optional_fact_is_built_without_a_blank_for_it(purpose, optional):
    message = build(purpose, **{optional: None})

    assert "None" not in message.body and "None" not in html_of(message)
    assert not re.search(r"^[A-Z][\w ]+:\s*$", message.body, re.MULTILINE)  # a label with nothing after it
    assert not re.search(r'">\s*</td>', html_of(message))  # a table cell left empty


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("amount_paid", "12.99", "an amount in minor units \\(an integer\\)"),
        ("amount_paid", 12.99, "an amount in minor units \\(an integer\\)"),
        ("period_end", "next month", "an ISO 8601 date"),
        ("period_end", 1802424600, "an ISO 8601 date"),
        ("hosted_invoice_url", "javascript:alert(1)", "an http\\(s\\) address"),
    ],
)
def test_a_fact_in_a_shape_the_email_cannot_read_is_refused(key, value, problem):
    notification = notification_for(EmailPurpose.RENEWAL_RECEIPT, **{key: value})

    with pytest.raises(EmailContextError, match=rf"needs {problem} as '{key}'"):
        email_message_build(notification=notification)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2027-01-14", "14 January 2027"),
        ("2027-01-14T23:59:59Z", "14 January 2027"),
        ("2027-01-14T00:00:00+00:00", "14 January 2027"),
        ("2027-01-14T01:00:00+02:00", "13 January 2027"),
        ("2027-01-14T09:30:00", "14 January 2027"),
    ],
)
def test_dates_are_written_as_customers_read_them_on_the_day_they_fall_in_utc(value, text):
    assert customer_date(value) == text


# --- Renewal receipt --------------------------------------------------------------------------------------------------


def test_the_renewal_receipt_states_the_amount_the_period_paid_and_the_next_renewal():
    message = build(EmailPurpose.RENEWAL_RECEIPT)

    assert message.subject == "Receipt: your hosting for shop.example is paid until 14 February 2027"
    for text in both(message):
        assert "$12.99" in text and "7F3A21C0-0002" in text
        assert "14 January 2027 to 14 February 2027" in text
        assert re.search(r"Next renewal(?:\s|:|<[^>]+>)*14 February 2027", text)


def test_a_plan_change_charged_at_once_is_receipted_as_a_plan_change_not_a_renewal():
    message = build(EmailPurpose.RENEWAL_RECEIPT, billing_reason="subscription_update")

    for text in both(message):
        assert "for the change of your plan" in text
        assert "to renew" not in text


def test_the_renewal_receipt_links_the_invoice_and_its_pdf_escaped_in_html():
    message = build(EmailPurpose.RENEWAL_RECEIPT)

    assert PAY_LINK in message.body and PDF_LINK in message.body
    html = html_of(message)
    assert f'href="{PAY_LINK.replace("&", "&amp;")}"' in html
    assert f'href="{PDF_LINK.replace("&", "&amp;")}"' in html
    assert PAY_LINK not in html


def test_the_renewal_receipt_names_the_invoice_by_its_id_when_it_has_no_number():
    message = build(EmailPurpose.RENEWAL_RECEIPT, number=None)

    for text in both(message):
        assert "in_1RenewA" in text


# --- Renewal failed ---------------------------------------------------------------------------------------------------


def test_renewal_failed_gives_the_pay_link_first_and_as_a_button():
    message = build(EmailPurpose.RENEWAL_FAILED)

    assert message.subject == "Action needed: pay $12.99 to keep your hosting for shop.example"
    assert message.body.index(PAY_LINK) < message.body.index("Plan:")
    html = html_of(message)
    escaped = PAY_LINK.replace("&", "&amp;")
    assert re.search(rf'<a href="{re.escape(escaped)}"[^>]*>Pay \$12\.99 now</a>', html)
    assert html.index(escaped) < html.index("Order reference")


def test_renewal_failed_says_when_we_try_again_and_when_the_service_is_suspended():
    message = build(EmailPurpose.RENEWAL_FAILED)

    for text in both(message):
        assert "$12.99" in text and "7F3A21C0-0003" in text
        assert "try your saved payment method again on 17 February 2027" in text
        assert re.search(r"still unpaid on (<strong>)?19 February 2027", text)


def test_renewal_failed_without_a_retry_or_a_suspension_date_still_warns_of_suspension():
    message = build(EmailPurpose.RENEWAL_FAILED, next_payment_attempt=None, suspend_on=None)

    for text in both(message):
        assert "try your saved payment method again" not in text
        assert "If the invoice stays unpaid, we will suspend your hosting until it is paid." in text


# --- Suspended, warned, terminated ------------------------------------------------------------------------------------


def test_the_suspension_notice_gives_the_reason_the_amount_and_the_link_to_pay_and_get_it_back():
    message = build(EmailPurpose.SERVICE_SUSPENDED)

    assert message.subject == "Your hosting for shop.example is suspended"
    assert PAY_LINK in message.body and PAY_LINK.replace("&", "&amp;") in html_of(message)
    for text in both(message):
        assert "unpaid 5 days after the first failed payment" in text
        assert "$12.99" in text and "comes back within minutes" in text
        assert "shopex01" in text and "web07.migrahosting.test" in text


def test_a_suspension_with_nothing_owed_asks_for_no_payment():
    message = build(
        EmailPurpose.SERVICE_SUSPENDED,
        amount_due=0,
        invoice_id=None,
        hosted_invoice_url=None,
        reason="Suspended at your request.",
    )

    for text in both(message):
        assert "Suspended at your request." in text
        assert "Pay" not in text and "$0.00" not in text and "due" not in text


def test_the_reason_staff_wrote_is_escaped_in_html():
    message = build(EmailPurpose.SERVICE_SUSPENDED, reason='Abuse report <a href="x">#42</a> & spam')

    assert 'Abuse report <a href="x">#42</a> & spam' in message.body
    assert "Abuse report &lt;a href=&quot;x&quot;&gt;#42&lt;/a&gt; &amp; spam" in html_of(message)


def test_the_termination_warning_gives_the_date_everything_is_deleted():
    message = build(EmailPurpose.TERMINATION_WARNING)

    assert message.subject == "Your hosting for shop.example and its data will be deleted on 5 March 2027"
    for text in both(message):
        assert "5 March 2027" in text and "cannot be undone" in text and "backup" in text
        assert "canceled for non-payment" in text and "shopex01" in text


def test_the_termination_notice_says_the_hosting_and_its_data_are_gone():
    message = build(EmailPurpose.SERVICE_TERMINATED)

    assert message.subject == "Your hosting for shop.example has been closed"
    for text in both(message):
        assert "deleted its files, databases and mailboxes" in text and "canceled for non-payment" in text


def test_the_termination_notice_for_an_order_never_set_up_names_the_ordered_domain():
    message = build(EmailPurpose.SERVICE_TERMINATED, with_account=False)

    assert message.subject == "Your hosting for shop.example has been closed"
    for text in both(message):
        assert "Username" not in text


def test_an_order_without_a_domain_is_named_by_its_plan():
    notification = notification_for(EmailPurpose.SERVICE_SUSPENDED, with_account=False)
    notification.checkout_session.domain_info = {}
    notification.checkout_session.save(update_fields=["domain_info"])

    message = email_message_build(notification=notification)

    assert message.subject == "Your Starter Hosting plan is suspended"
    for text in both(message):
        assert "suspended your" in text and "Starter Hosting plan" in text and "shop.example" not in text


# --- Cancellation -----------------------------------------------------------------------------------------------------


def test_a_cancellation_at_period_end_says_the_hosting_runs_until_then_and_does_not_renew():
    message = build(EmailPurpose.CANCELLATION_CONFIRMED)

    assert message.subject == "Your Starter Hosting subscription is canceled: hosting runs until 14 February 2027"
    for text in both(message):
        assert re.search(r"keeps running until (<strong>)?14 February 2027", text)
        assert "will not renew" in text and "Moving to a dedicated server." in text


def test_an_immediate_cancellation_says_the_hosting_stops_on_that_date():
    message = build(
        EmailPurpose.CANCELLATION_CONFIRMED, at_period_end=False, ends_at="2027-01-20T11:00:00Z", reason=None
    )

    assert message.subject == "Your Starter Hosting subscription is canceled"
    for text in both(message):
        assert re.search(r"your hosting stops on (<strong>)?20 January 2027", text)
        assert "will not renew" not in text and "Reason" not in text


def test_a_cancellation_flag_that_is_not_true_or_false_is_refused():
    notification = notification_for(EmailPurpose.CANCELLATION_CONFIRMED, at_period_end="yes")

    with pytest.raises(EmailContextError, match="needs true or false as 'at_period_end'"):
        email_message_build(notification=notification)


# --- Refunds ----------------------------------------------------------------------------------------------------------


def test_a_full_refund_says_the_subscription_ended_and_the_hosting_will_be_closed():
    message = build(EmailPurpose.REFUND_ISSUED)

    assert message.subject == "Full refund of $12.99 for Starter Hosting"
    for text in both(message):
        assert "$12.99" in text and "re_1RefC" in text and "5 to 10 business days" in text
        assert "subscription has ended" in text and "will be closed" in text


def test_a_partial_refund_says_the_hosting_carries_on():
    message = build(EmailPurpose.REFUND_ISSUED, amount=500, full=False)

    assert message.subject == "Refund of $5.00 for Starter Hosting"
    for text in both(message):
        assert "$5.00" in text and "partial" in text and "carry on as before" in text
        assert "will be closed" not in text


def test_the_setup_failed_apology_says_sorry_refunded_in_full_and_canceled():
    message = build(EmailPurpose.SETUP_FAILED_REFUNDED, with_account=False, amount=1099, currency="eur")

    assert message.subject == "Sorry: we could not set up your hosting for shop.example and have refunded €10.99"
    for text in both(message):
        assert "We are sorry" in text and "refunded the full" in text and "€10.99" in text
        assert "subscription is canceled" in text and "not be charged again" in text


# --- Sending ----------------------------------------------------------------------------------------------------------


def test_a_renewal_failed_email_created_by_billing_is_sent_once_with_the_pay_link(
    settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    subscription = SubscriptionFactory()
    context = CONTEXTS[EmailPurpose.RENEWAL_FAILED]

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        notification = email_notification_create(
            checkout_session=subscription.checkout_session,
            purpose=EmailPurpose.RENEWAL_FAILED,
            to=subscription.checkout_session.email,
            key=context["invoice_id"],
            context=context,
        )
    again = email_notification_send(email_id=notification.pk)

    notification.refresh_from_db()
    assert again is None
    assert (notification.status, notification.attempts) == (EmailStatus.SENT, 1)
    [message] = mail.outbox
    assert message.to == [subscription.checkout_session.email]
    assert message.extra_headers["X-Notification-Id"] == str(notification.pk)
    assert PAY_LINK in message.body and PAY_LINK.replace("&", "&amp;") in html_of(message)


def test_a_billing_email_missing_a_required_fact_fails_without_sending():
    notification = notification_for(EmailPurpose.RENEWAL_FAILED, hosted_invoice_url=None)

    email_notification_send(email_id=notification.pk)

    notification.refresh_from_db()
    assert notification.status == EmailStatus.FAILED
    assert "EmailContextError" in notification.last_error and "hosted_invoice_url" in notification.last_error
    assert mail.outbox == []

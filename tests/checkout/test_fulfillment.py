"""checkout_session_fulfill: a paid session becomes user, customer, subscription, job and e-mails, exactly once."""

import pytest
from django.core import mail

from accounts.models import Customer, CustomerMembership, Subscription, User
from catalog.models import Coupon
from checkout.models import CheckoutSessionStatus
from checkout.services import (
    checkout_session_fulfill,
    checkout_session_mark_expired,
    checkout_session_payment_failed,
)
from provisioning.models import EmailNotification, ProvisioningJob
from tests.catalog.factories import CouponFactory
from tests.checkout.factories import CheckoutSessionFactory, paid_stripe_session
from tests.concurrency import run_at_once
from tests.conftest import database_is_postgres

pytestmark = pytest.mark.django_db


def fulfill(session, **overrides):
    return checkout_session_fulfill(stripe_session=paid_stripe_session(session, **overrides))


def test_a_paid_session_makes_user_customer_subscription_job_and_emails(django_capture_on_commit_callbacks):
    session = CheckoutSessionFactory(customer_name="Ada Lovelace", email="ada@example.com")

    with django_capture_on_commit_callbacks() as callbacks:
        result = fulfill(session)

    session.refresh_from_db()
    assert result == session
    assert session.status == CheckoutSessionStatus.COMPLETED and session.completed_at is not None
    user = User.objects.get()
    assert (user.email, user.full_name, user.has_usable_password()) == ("ada@example.com", "Ada Lovelace", False)
    customer = Customer.objects.get()
    assert customer.stripe_customer_id == f"cus_{session.pk.hex[:14]}"
    assert CustomerMembership.objects.get().role == "owner"
    subscription = Subscription.objects.get()
    assert (subscription.customer, subscription.checkout_session, subscription.price) == (
        customer,
        session,
        session.price,
    )
    assert subscription.stripe_subscription_id == f"sub_{session.pk.hex[:14]}"
    assert (subscription.domain, subscription.amount, subscription.status) == ("example.com", session.amount, "active")
    assert ProvisioningJob.objects.get().subscription == subscription
    assert set(EmailNotification.objects.values_list("purpose", flat=True)) == {"set_password", "order_confirmation"}
    assert callbacks, "work is enqueued only once the transaction commits"


def test_fulfilling_again_changes_nothing():
    session = CheckoutSessionFactory()
    fulfill(session)

    again = fulfill(session)

    assert again.status == CheckoutSessionStatus.COMPLETED
    assert (
        User.objects.count(),
        Customer.objects.count(),
        Subscription.objects.count(),
        ProvisioningJob.objects.count(),
        EmailNotification.objects.count(),
    ) == (1, 1, 1, 1, 2)


def test_an_unpaid_session_waits():
    session = CheckoutSessionFactory()

    fulfill(session, payment_status="unpaid")

    session.refresh_from_db()
    assert session.status == CheckoutSessionStatus.PENDING
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [{"amount_total": 1}, {"currency": "eur"}, {"client_reference_id": "00000000-0000-0000-0000-000000000000"}],
)
def test_a_charge_that_does_not_match_our_record_is_set_aside_for_review(overrides):
    session = CheckoutSessionFactory()

    result = fulfill(session, **overrides)

    session.refresh_from_db()
    assert result.status == session.status == CheckoutSessionStatus.NEEDS_REVIEW
    assert "review_reason" in session.metadata
    assert not Subscription.objects.exists() and not ProvisioningJob.objects.exists()


def test_staff_are_told_about_a_session_set_aside(django_capture_on_commit_callbacks, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    session = CheckoutSessionFactory()

    with django_capture_on_commit_callbacks(execute=True):
        fulfill(session, amount_total=session.amount + 500)

    [alert] = mail.outbox
    assert session.stripe_session_id in alert.subject and alert.to == ["ops@example.com"]


def test_a_trial_charges_nothing_today():
    session = CheckoutSessionFactory(trial_days=14)

    fulfill(session, amount_total=0, payment_status="no_payment_required")

    assert Subscription.objects.get().status == "trialing"


def test_a_returning_customer_keeps_one_account_and_gets_no_second_password_mail():
    first = CheckoutSessionFactory(email="bob@example.com")
    fulfill(first)
    user = User.objects.get()
    user.set_password("a-good-long-password")
    user.save()
    second = CheckoutSessionFactory(email="BOB@example.com")

    fulfill(second)

    assert User.objects.count() == 1 and Customer.objects.count() == 1
    assert Subscription.objects.count() == 2
    assert list(EmailNotification.objects.filter(checkout_session=second).values_list("purpose", flat=True)) == [
        "order_confirmation"
    ]


def test_a_session_we_never_made_is_ignored():
    assert checkout_session_fulfill(stripe_session={"id": "cs_test_foreign", "payment_status": "paid"}) is None
    assert not User.objects.exists()


def test_a_coupon_is_redeemed_once_per_order_and_never_past_its_limit():
    CouponFactory(code="LIMITED", max_redemptions=1)
    first = CheckoutSessionFactory(coupon_code="LIMITED")
    second = CheckoutSessionFactory(coupon_code="LIMITED")

    fulfill(first)
    fulfill(first)
    fulfill(second)

    assert Coupon.objects.get(code="LIMITED").times_redeemed == 1


def test_fulfilment_makes_at_most_25_queries(django_assert_max_num_queries):
    session = CheckoutSessionFactory(coupon_code=CouponFactory().code)

    with django_assert_max_num_queries(25):
        fulfill(session)


def test_a_failed_delayed_payment_marks_the_session_and_tells_the_customer_once():
    session = CheckoutSessionFactory()

    checkout_session_payment_failed(stripe_session=paid_stripe_session(session, payment_status="unpaid"))
    checkout_session_payment_failed(stripe_session=paid_stripe_session(session, payment_status="unpaid"))

    session.refresh_from_db()
    assert session.status == CheckoutSessionStatus.PAYMENT_FAILED
    assert list(EmailNotification.objects.values_list("purpose", flat=True)) == ["payment_failed"]
    assert not Subscription.objects.exists()


def test_expiry_marks_a_pending_session_but_never_a_completed_one():
    pending, completed = CheckoutSessionFactory(), CheckoutSessionFactory()
    fulfill(completed)

    checkout_session_mark_expired(stripe_session_id=pending.stripe_session_id)
    checkout_session_mark_expired(stripe_session_id=completed.stripe_session_id)

    pending.refresh_from_db()
    completed.refresh_from_db()
    assert (pending.status, completed.status) == ("expired", "completed")


@pytest.mark.django_db(transaction=True)
def test_concurrent_fulfilments_of_one_session_make_one_of_everything():
    if not database_is_postgres():
        pytest.skip("row locks need PostgreSQL; SQLite has none")
    session = CheckoutSessionFactory()
    _, errors = run_at_once(lambda: fulfill(session), 10)

    assert errors == []
    assert (
        User.objects.count(),
        Customer.objects.count(),
        Subscription.objects.count(),
        ProvisioningJob.objects.count(),
    ) == (1, 1, 1, 1)
    # Tasks run in-process on commit here, so the job has also run and announced the service: once each.
    assert sorted(EmailNotification.objects.values_list("purpose", flat=True)) == [
        "order_confirmation",
        "service_ready",
        "set_password",
    ]

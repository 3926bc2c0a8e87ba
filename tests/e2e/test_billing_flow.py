"""A subscription's life after the first payment, through real processes: the sandbox renews, declines, retries,
cancels and refunds on its clock or on a Stripe test clock and delivers signed webhooks; gunicorn runs dj-stripe and
billing's receivers; a Celery worker runs the jobs and sends e-mail; Celery beat, a process of its own, runs the
billing sweep every second. Every test counts what was made: one receipt per invoice, one job per decision, one
backend call per job, one message per e-mail."""

import re
import time
from collections import Counter

import pytest
import requests
from djstripe.models import WebhookEndpoint

from accounts.models import Subscription
from billing.models import SubscriptionInvoice
from provisioning.models import (
    EmailNotification,
    HostingAccount,
    HostingAccountStatusChange,
    ProvisioningAttempt,
    ProvisioningJob,
)
from tests.e2e.conftest import needs_real_services, signed, wait_for

pytestmark = [needs_real_services, pytest.mark.postgres, pytest.mark.redis]

# Beat apart from the worker, as deployed, with the billing sweep every second (suspensions due without an event,
# warnings and terminations read from the database).
STACK = {"env": {"BILLING_SWEEP_INTERVAL_SECONDS": "1"}, "beat_process": True}

DAY = 24 * 3600
FIRST_MAILS = {"set_password": 1, "order_confirmation": 1, "service_ready": 1}


# --- Reading our side --------------------------------------------------------------------------------------------------


def emails(subscription: Subscription | None = None, *, sent: bool = True) -> Counter:
    """E-mails by purpose (of one subscription's order, or all): those sent, or (sent=False) every one decided,
    whatever became of it."""
    notifications = EmailNotification.objects.filter(status="sent") if sent else EmailNotification.objects.all()
    if subscription is not None:
        notifications = notifications.filter(checkout_session_id=subscription.checkout_session_id)
    return Counter(notifications.values_list("purpose", flat=True))


def jobs(subscription: Subscription) -> list[tuple[str, str]]:
    """(action, status) of the subscription's provisioning jobs, in the order they were decided."""
    return list(
        ProvisioningJob.objects.filter(subscription=subscription).order_by("pk").values_list("action", "status")
    )


def backend_calls(subscription: Subscription) -> Counter:
    """Calls made to the (simulated) control panel, by action: one attempt row per call."""
    return Counter(
        ProvisioningAttempt.objects.filter(job__subscription=subscription).values_list("job__action", flat=True)
    )


def account_status(subscription: Subscription) -> str:
    return HostingAccount.objects.get(subscription=subscription).status


def status_history(subscription: Subscription) -> list[tuple[str, str]]:
    return list(
        HostingAccountStatusChange.objects.filter(account__subscription=subscription)
        .order_by("pk")
        .values_list("from_status", "to_status")
    )


def renewal_invoices(subscription: Subscription) -> list[tuple[str, int]]:
    return list(
        SubscriptionInvoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle")
        .order_by("stripe_created")
        .values_list("status", "amount_paid")
    )


def quiet() -> bool:
    """No job waiting or running, no e-mail waiting or being sent."""
    return not (
        ProvisioningJob.objects.filter(status__in=("pending", "running", "retrying")).exists()
        or EmailNotification.objects.filter(status__in=("pending", "sending")).exists()
    )


def settle(e2e, timeout: float = 60) -> None:
    e2e.wait_deliveries_idle(timeout)
    wait_for(quiet, timeout=timeout, interval=0.2, what="jobs and e-mails to finish")


def mail_to(e2e, address: str) -> list[str]:
    return [message for message in e2e.sent_mail() if f"To: {address}" in message]


def assert_each_sent_once(e2e, subscription: Subscription) -> None:
    """Every e-mail sent left exactly one message in the file backend."""
    assert len(mail_to(e2e, subscription.customer.email)) == sum(emails(subscription).values())


# --- Acting as the customer and as Stripe --------------------------------------------------------------------------


def buy_provisioned(e2e, email: str) -> Subscription:
    session_id = e2e.buy(email)
    e2e.complete(session_id)
    wait_for(
        lambda: (
            HostingAccount.objects.filter(subscription__checkout_session__stripe_session_id=session_id).exists()
            and EmailNotification.objects.filter(checkout_session__stripe_session_id=session_id, status="sent").count()
            == 3
        ),
        timeout=60,
        interval=0.2,
        what="provisioning and the three first e-mails",
    )
    settle(e2e)
    return Subscription.objects.get(checkout_session__stripe_session_id=session_id)


def returning_buyer_on_a_test_clock(e2e, email: str) -> str:
    """A Stripe test clock at today's time and a customer living on it; our records know that customer for the
    e-mail, so create-session passes `customer=` and the subscription lives on the clock. The clock's id."""
    from accounts.services import customer_get_or_create_for_user, user_get_or_create

    clock = e2e.stripe.v1.test_helpers.test_clocks.create(params={"frozen_time": int(time.time())})
    customer = e2e.stripe.v1.customers.create(params={"email": email, "name": "On A Clock", "test_clock": clock.id})
    user, _ = user_get_or_create(email=email, full_name="On A Clock")
    customer_get_or_create_for_user(user=user, name="On A Clock", stripe_customer_id=customer.id)
    return clock.id


def card_starts_failing(e2e, subscription: Subscription) -> None:
    """The customer's card on file now declines every charge. A subscription made by Checkout charges its own
    default payment method, which beats the customer's invoice default, so both are changed."""
    card = e2e.stripe.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": subscription.stripe_customer_id}
    )
    e2e.stripe.v1.customers.update(
        subscription.stripe_customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    e2e.stripe.v1.subscriptions.update(subscription.stripe_subscription_id, params={"default_payment_method": card.id})


def period_end(e2e, subscription: Subscription) -> int:
    stripe_subscription = e2e.stripe.v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    return stripe_subscription["items"]["data"][0]["current_period_end"]


def sandbox_now(e2e) -> int:
    return e2e.control("GET", "clock")["now"]


def advance_sandbox_to(e2e, moment: int) -> None:
    e2e.control("POST", "clock/advance", {"seconds": max(0, moment - sandbox_now(e2e))})


def advance_test_clock_to(e2e, clock_id: str, moment: int) -> None:
    e2e.stripe.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": moment})
    wait_for(
        lambda: e2e.stripe.v1.test_helpers.test_clocks.retrieve(clock_id).status == "ready",
        timeout=30,
        what="the test clock to be ready",
    )


def open_renewal_invoice(e2e, subscription: Subscription) -> dict:
    stripe_subscription = e2e.stripe.v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    invoice = e2e.stripe.v1.invoices.retrieve(stripe_subscription.latest_invoice)
    assert (invoice.status, invoice.billing_reason) == ("open", "subscription_cycle")
    return invoice


def pay_link_in_mail(e2e, subscription: Subscription) -> str:
    """The hosted invoice link the renewal-failed e-mail gave the customer."""
    [message] = [
        m
        for m in mail_to(e2e, subscription.customer.email)
        if "/i/in_" in m and "Action needed" in m.split("\n\n", 1)[0]
    ]
    return re.search(r"(http://\S+/i/in_\w+)", message)[1]


# --- Renewals ----------------------------------------------------------------------------------------------------------


def test_a_monthly_plan_renews_three_times_with_one_receipt_each(e2e):
    subscription = buy_provisioned(e2e, "monthly@example.com")
    ends = []

    for renewal in range(1, 4):
        end = period_end(e2e, subscription)
        advance_sandbox_to(e2e, end + 3600)
        wait_for(
            lambda renewal=renewal: emails(subscription)["renewal_receipt"] == renewal,
            timeout=60,
            interval=0.2,
            what=f"receipt {renewal}",
        )
        settle(e2e)
        subscription.refresh_from_db()
        assert int(subscription.current_period_start.timestamp()) == end
        assert int(subscription.current_period_end.timestamp()) == period_end(e2e, subscription) > end
        ends.append(end)

    assert len(set(ends)) == 3
    assert subscription.status == "active"
    assert renewal_invoices(subscription) == [("paid", subscription.amount)] * 3
    assert SubscriptionInvoice.objects.filter(subscription=subscription).count() == 4  # the first one and three
    assert emails(subscription) == {**FIRST_MAILS, "renewal_receipt": 3}
    assert len(mail_to(e2e, "monthly@example.com")) == 6
    assert jobs(subscription) == [("provision", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1}
    assert account_status(subscription) == "active"
    assert all(d["status"] == 200 for d in e2e.deliveries())


def test_a_failing_card_is_suspended_after_five_days_and_unsuspended_once_the_invoice_is_paid(e2e):
    subscription = buy_provisioned(e2e, "failing@example.com")
    card_starts_failing(e2e, subscription)
    end = period_end(e2e, subscription)

    # The renewal fails at the period end and is retried 3 and 5 days later: the retry on day 5 still fails.
    advance_sandbox_to(e2e, end + 5 * DAY + 3600)
    wait_for(lambda: account_status(subscription) == "suspended", timeout=60, interval=0.2, what="the suspension")
    settle(e2e)
    subscription.refresh_from_db()
    assert subscription.status == "past_due"
    assert jobs(subscription) == [("provision", "succeeded"), ("suspend", "succeeded")]
    assert emails(subscription, sent=False) == {**FIRST_MAILS, "renewal_failed": 1, "service_suspended": 1}

    invoice = open_renewal_invoice(e2e, subscription)
    e2e.stripe.raw_request("post", f"/v1/invoices/{invoice.id}/pay", payment_method="pm_card_visa")

    wait_for(lambda: account_status(subscription) == "active", timeout=60, interval=0.2, what="the unsuspension")
    settle(e2e)
    # Days later, nothing more happens: the paid invoice is not retried, the account stays up.
    advance_sandbox_to(e2e, end + 8 * DAY)
    settle(e2e)
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert jobs(subscription) == [("provision", "succeeded"), ("suspend", "succeeded"), ("unsuspend", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1, "suspend": 1, "unsuspend": 1}
    assert status_history(subscription) == [("active", "suspended"), ("suspended", "active")]
    assert renewal_invoices(subscription) == [("paid", subscription.amount)]
    assert emails(subscription, sent=False) == {
        **FIRST_MAILS,
        "renewal_failed": 1,
        "service_suspended": 1,
        "renewal_receipt": 1,
    }
    assert_each_sent_once(e2e, subscription)


def test_the_suspension_notice_is_sent(e2e):
    subscription = buy_provisioned(e2e, "notice@example.com")
    card_starts_failing(e2e, subscription)

    advance_sandbox_to(e2e, period_end(e2e, subscription) + 5 * DAY + 3600)

    wait_for(lambda: account_status(subscription) == "suspended", timeout=60, interval=0.2, what="the suspension")
    settle(e2e)
    assert emails(subscription) == {**FIRST_MAILS, "renewal_failed": 1, "service_suspended": 1}
    [notice] = [m for m in mail_to(e2e, "notice@example.com") if "is suspended" in m.split("\n\n", 1)[0]]
    assert "/i/in_" in notice  # how to pay, to get the service back


def test_on_a_test_clock_a_failing_card_is_suspended_and_paying_on_the_hosted_page_unsuspends(e2e):
    clock = returning_buyer_on_a_test_clock(e2e, "clocked@example.com")
    subscription = buy_provisioned(e2e, "clocked@example.com")
    assert subscription.stripe_test_clock_id == clock
    card_starts_failing(e2e, subscription)
    end = period_end(e2e, subscription)

    advance_test_clock_to(e2e, clock, end + 3 * DAY + 3600)  # failed at the end and on day 3: not yet
    settle(e2e)
    assert account_status(subscription) == "active"
    assert emails(subscription)["renewal_failed"] == 1
    advance_test_clock_to(e2e, clock, end + 5 * DAY + 3600)
    wait_for(lambda: account_status(subscription) == "suspended", timeout=60, interval=0.2, what="the suspension")
    settle(e2e)

    link = pay_link_in_mail(e2e, subscription)
    paid = requests.post(f"{link}/pay", data={"payment_method": "pm_card_visa"}, timeout=30)

    assert paid.status_code == 200 and "Paid." in paid.text
    wait_for(lambda: account_status(subscription) == "active", timeout=60, interval=0.2, what="the unsuspension")
    settle(e2e)
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert jobs(subscription) == [("provision", "succeeded"), ("suspend", "succeeded"), ("unsuspend", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1, "suspend": 1, "unsuspend": 1}
    assert emails(subscription, sent=False) == {
        **FIRST_MAILS,
        "renewal_failed": 1,
        "service_suspended": 1,
        "renewal_receipt": 1,
    }
    assert_each_sent_once(e2e, subscription)


def test_a_renewal_never_paid_ends_canceled_and_the_account_terminated_fourteen_days_later(e2e):
    clock = returning_buyer_on_a_test_clock(e2e, "neverpays@example.com")
    subscription = buy_provisioned(e2e, "neverpays@example.com")
    card_starts_failing(e2e, subscription)
    end = period_end(e2e, subscription)

    advance_test_clock_to(e2e, clock, end + 5 * DAY + 3600)
    wait_for(lambda: account_status(subscription) == "suspended", timeout=60, interval=0.2, what="the suspension")
    # The retry on day 7 fails too and, the last one, cancels the subscription (Stripe's default setting).
    advance_test_clock_to(e2e, clock, end + 7 * DAY + 3600)
    wait_for(
        lambda: Subscription.objects.filter(pk=subscription.pk, status="canceled").exists(),
        timeout=60,
        interval=0.2,
        what="the cancellation",
    )
    settle(e2e)
    subscription.refresh_from_db()
    assert int(subscription.ended_at.timestamp()) == end + 7 * DAY
    assert account_status(subscription) == "suspended"
    # Twelve days after the end: the warning, no termination yet (from the beat sweep: no event comes now but the
    # clock's own).
    advance_test_clock_to(e2e, clock, end + 19 * DAY + 3600)
    wait_for(
        lambda: emails(subscription)["termination_warning"] == 1,
        timeout=30,
        interval=0.2,
        what="the termination warning",
    )
    assert account_status(subscription) == "suspended"
    advance_test_clock_to(e2e, clock, end + 21 * DAY + 3600)

    wait_for(lambda: account_status(subscription) == "terminated", timeout=30, interval=0.2, what="the termination")
    settle(e2e)
    e2e.wait_for_sweeps()  # a few more sweeps: they change nothing
    assert jobs(subscription) == [("provision", "succeeded"), ("suspend", "succeeded"), ("terminate", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1, "suspend": 1, "terminate": 1}
    assert status_history(subscription) == [("active", "suspended"), ("suspended", "terminated")]
    assert renewal_invoices(subscription) == [("open", 0)]
    assert emails(subscription, sent=False) == {
        **FIRST_MAILS,
        "renewal_failed": 1,
        "service_suspended": 1,
        "termination_warning": 1,
        "service_terminated": 1,
    }
    assert_each_sent_once(e2e, subscription)


def test_an_unpaid_renewal_seen_only_after_the_cancellation_still_suspends_until_termination(e2e):
    clock = returning_buyer_on_a_test_clock(e2e, "jump@example.com")
    subscription = buy_provisioned(e2e, "jump@example.com")
    card_starts_failing(e2e, subscription)
    end = period_end(e2e, subscription)

    # One jump: the failures on days 0, 3 and 5 and the cancellation on day 7 are all processed after the end, and
    # dj-stripe's re-read shows every one of them a canceled subscription.
    advance_test_clock_to(e2e, clock, end + 7 * DAY + 3600)

    wait_for(
        lambda: Subscription.objects.filter(pk=subscription.pk, status="canceled").exists(),
        timeout=60,
        interval=0.2,
        what="the cancellation",
    )
    settle(e2e)
    e2e.wait_for_sweeps()  # a few sweeps
    assert account_status(subscription) == "suspended"


def test_cancel_at_period_end_ends_at_the_period_end_and_terminates_after_the_grace_days(e2e):
    clock = returning_buyer_on_a_test_clock(e2e, "leaving@example.com")
    subscription = buy_provisioned(e2e, "leaving@example.com")
    end = period_end(e2e, subscription)

    e2e.stripe.v1.subscriptions.update(subscription.stripe_subscription_id, params={"cancel_at_period_end": True})
    wait_for(
        lambda: emails(subscription)["cancellation_confirmed"] == 1,
        timeout=30,
        interval=0.2,
        what="the cancellation e-mail",
    )
    advance_test_clock_to(e2e, clock, end + 3600)
    wait_for(
        lambda: Subscription.objects.filter(pk=subscription.pk, status="canceled").exists(),
        timeout=60,
        interval=0.2,
        what="the end of the subscription",
    )
    settle(e2e)
    assert account_status(subscription) == "active"  # paid up to the end: no suspension
    advance_test_clock_to(e2e, clock, end + 15 * DAY)

    wait_for(lambda: account_status(subscription) == "terminated", timeout=30, interval=0.2, what="the termination")
    settle(e2e)
    subscription.refresh_from_db()
    assert int(subscription.ended_at.timestamp()) == end
    assert renewal_invoices(subscription) == []  # no invoice after the end
    assert jobs(subscription) == [("provision", "succeeded"), ("terminate", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1, "terminate": 1}
    decided = emails(subscription, sent=False)
    assert decided["service_terminated"] == 1 and decided["cancellation_confirmed"] >= 1
    assert_each_sent_once(e2e, subscription)


def test_cancel_at_period_end_sends_one_cancellation_email(e2e):
    clock = returning_buyer_on_a_test_clock(e2e, "once@example.com")
    subscription = buy_provisioned(e2e, "once@example.com")
    end = period_end(e2e, subscription)
    e2e.stripe.v1.subscriptions.update(subscription.stripe_subscription_id, params={"cancel_at_period_end": True})
    wait_for(
        lambda: emails(subscription, sent=False)["cancellation_confirmed"] == 1,
        timeout=30,
        interval=0.2,
        what="the cancellation e-mail",
    )

    advance_test_clock_to(e2e, clock, end + 3600)

    wait_for(
        lambda: Subscription.objects.filter(pk=subscription.pk, status="canceled").exists(),
        timeout=60,
        interval=0.2,
        what="the end of the subscription",
    )
    settle(e2e)
    assert emails(subscription, sent=False)["cancellation_confirmed"] == 1


def test_a_full_refund_of_the_latest_payment_cancels_and_terminates_at_once(e2e):
    subscription = buy_provisioned(e2e, "refund@example.com")
    [charge] = e2e.stripe.v1.charges.list(params={"customer": subscription.stripe_customer_id}).data

    # As from Stripe's dashboard: the whole of the only payment.
    e2e.stripe.v1.refunds.create(params={"payment_intent": charge.payment_intent, "reason": "requested_by_customer"})

    wait_for(lambda: account_status(subscription) == "terminated", timeout=60, interval=0.2, what="the termination")
    wait_for(
        lambda: Subscription.objects.filter(pk=subscription.pk, status="canceled").exists(),
        timeout=60,
        interval=0.2,
        what="the cancellation at Stripe",
    )
    settle(e2e)
    e2e.wait_for_sweeps()  # a few more sweeps: they change nothing
    assert e2e.stripe.v1.subscriptions.retrieve(subscription.stripe_subscription_id).status == "canceled"
    assert jobs(subscription) == [("provision", "succeeded"), ("terminate", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1, "terminate": 1}
    assert subscription.refunds.count() == 1
    assert subscription.billing_actions.filter(kind="cancel_now", status="done").count() == 1
    decided = emails(subscription, sent=False)
    assert decided["refund_issued"] == 1 and decided["service_terminated"] == 1
    assert not decided["renewal_receipt"] and not decided["service_suspended"]
    assert_each_sent_once(e2e, subscription)


# --- Duplicated and reordered events -----------------------------------------------------------------------------------


def all_events(e2e) -> list[dict]:
    """Stripe's events as sent (raw JSON: stripe-python's objects turn some numbers into Decimals), oldest first.
    Like Stripe's, the list covers the last 30 days of the (sandbox's) clock."""
    from tests.e2e.conftest import STRIPE_KEY

    events, after = [], None
    while True:
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        page = requests.get(
            f"{e2e.sandbox}/v1/events", params=params, timeout=30, headers={"Authorization": f"Bearer {STRIPE_KEY}"}
        ).json()
        events += page["data"]
        if not page["has_more"]:
            return events[::-1]
        after = page["data"][-1]["id"]


def snapshot(subscription: Subscription) -> tuple:
    subscription.refresh_from_db()
    return (
        subscription.status,
        subscription.current_period_start,
        subscription.current_period_end,
        jobs(subscription),
        backend_calls(subscription),
        emails(subscription),
        renewal_invoices(subscription),
        status_history(subscription),
    )


def test_every_event_redelivered_changes_nothing(e2e):
    subscription = buy_provisioned(e2e, "twice@example.com")
    card_starts_failing(e2e, subscription)
    end = period_end(e2e, subscription)
    advance_sandbox_to(e2e, end + 5 * DAY + 3600)
    wait_for(lambda: account_status(subscription) == "suspended", timeout=60, interval=0.2, what="the suspension")
    e2e.stripe.raw_request(
        "post", f"/v1/invoices/{open_renewal_invoice(e2e, subscription).id}/pay", payment_method="pm_card_visa"
    )
    wait_for(lambda: account_status(subscription) == "active", timeout=60, interval=0.2, what="the unsuspension")
    settle(e2e)
    before, mail_before, delivered = snapshot(subscription), len(e2e.sent_mail()), len(e2e.deliveries())

    delivered_events = dict.fromkeys(d["event"] for d in e2e.deliveries())  # every one since the purchase
    sent_again = sum(
        len(e2e.control("POST", "webhooks/redeliver", {"event": event})["endpoints"]) for event in delivered_events
    )
    settle(e2e)
    e2e.wait_for_sweeps()  # a few more sweeps

    redeliveries = e2e.deliveries()[delivered:]
    assert sent_again == len(delivered_events) > 6 and len(redeliveries) == sent_again
    assert all(d["status"] == 200 for d in redeliveries)
    assert snapshot(subscription) == before
    assert len(e2e.sent_mail()) == mail_before
    assert before[3] == [("provision", "succeeded"), ("suspend", "succeeded"), ("unsuspend", "succeeded")]


def test_a_renewal_storys_events_in_reverse_order_never_suspend_a_paid_account(e2e):
    subscription = buy_provisioned(e2e, "reversed@example.com")
    card_starts_failing(e2e, subscription)
    end = period_end(e2e, subscription)
    known = {event["id"] for event in all_events(e2e)}
    e2e.control("POST", "deliveries/pause", {})
    # Failed at the end, on day 3 and on day 5, then paid: none of it delivered yet.
    advance_sandbox_to(e2e, end + 5 * DAY + 3600)
    e2e.stripe.raw_request(
        "post", f"/v1/invoices/{open_renewal_invoice(e2e, subscription).id}/pay", payment_method="pm_card_visa"
    )
    story = [event for event in all_events(e2e) if event["id"] not in known]
    assert {"invoice.payment_failed", "invoice.paid", "customer.subscription.updated"} <= {e["type"] for e in story}
    endpoint = WebhookEndpoint.objects.get()

    # Newest first, as a slow network might: then Stripe's own deliveries, in order, arrive as duplicates.
    for event in reversed(story):
        body, header = signed(event, endpoint.secret)
        response = requests.post(
            endpoint.url,
            data=body,
            timeout=60,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, (event["type"], response.text)
    e2e.control("POST", "deliveries/resume", {})
    settle(e2e)
    e2e.wait_for_sweeps()  # a few sweeps

    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert int(subscription.current_period_start.timestamp()) == end
    assert account_status(subscription) == "active"
    assert jobs(subscription) == [("provision", "succeeded")]
    assert backend_calls(subscription) == {"provision": 1}
    assert renewal_invoices(subscription) == [("paid", subscription.amount)]
    decided = emails(subscription, sent=False)
    assert decided["renewal_receipt"] == 1 and decided["service_suspended"] == 0 and decided["renewal_failed"] <= 1
    assert_each_sent_once(e2e, subscription)


# --- Redis down ----------------------------------------------------------------------------------------------------


def test_redis_down_during_a_renewal_storm_loses_no_decision_and_doubles_none(e2e):
    subscriptions = [buy_provisioned(e2e, f"storm{n}@example.com") for n in range(8)]
    for failing in subscriptions[:3]:
        card_starts_failing(e2e, failing)
    end = max(period_end(e2e, s) for s in subscriptions)
    e2e.redis.stop()

    advance_sandbox_to(e2e, end + 3600)
    e2e.wait_deliveries_idle(60)

    assert {d["status"] for d in e2e.deliveries()} == {200}  # webhooks are answered without the broker
    assert SubscriptionInvoice.objects.filter(billing_reason="subscription_cycle").count() == 8
    assert (
        EmailNotification.objects.filter(purpose__in=("renewal_receipt", "renewal_failed"), status="pending").count()
        == 8
    )  # decided, waiting in the outbox

    e2e.redis.start()

    def sent_without_a_restart() -> bool:
        # Nobody restarts anything: the worker and beat ride out the outage (config.celery.RecoveringConsumer keeps
        # celery 5.7 / kombu 5.7 from exiting in restore_unacked; tests/e2e/test_worker_recovery.py).
        for name in ("worker", "beat"):
            assert e2e.alive(name), f"{name} exited during the Redis outage"
        return emails()["renewal_receipt"] == 5 and emails()["renewal_failed"] == 3

    wait_for(
        sent_without_a_restart,
        timeout=90,
        interval=0.5,
        what="the outbox to send the renewal e-mails once Redis is back",
    )
    settle(e2e)
    assert e2e.alive("worker") and e2e.alive("beat")
    for subscription in subscriptions[:3]:
        subscription.refresh_from_db()
        assert subscription.status == "past_due"
        assert emails(subscription) == {**FIRST_MAILS, "renewal_failed": 1}
    for subscription in subscriptions[3:]:
        subscription.refresh_from_db()
        assert subscription.status == "active"
        assert emails(subscription) == {**FIRST_MAILS, "renewal_receipt": 1}
    assert ProvisioningJob.objects.exclude(action="provision").count() == 0
    assert len(e2e.sent_mail()) == 8 * 3 + 8

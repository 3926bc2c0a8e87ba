"""From a paid Stripe checkout to a provisioned, e-mailed customer, through real processes: the sandbox pays and
delivers signed webhooks, gunicorn runs dj-stripe and our services, a Celery worker provisions and sends e-mail."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

from accounts.models import Customer, Subscription, User
from checkout.models import CheckoutSession
from provisioning.models import EmailNotification, HostingAccount, ProvisioningJob
from tests.e2e.conftest import needs_real_services, signed, wait_for

pytestmark = [needs_real_services, pytest.mark.postgres, pytest.mark.redis]


def provisioned(session_id: str) -> bool:
    session = CheckoutSession.objects.filter(stripe_session_id=session_id).first()
    return bool(
        session
        and HostingAccount.objects.filter(subscription__checkout_session=session).exists()
        and EmailNotification.objects.filter(checkout_session=session, status="sent").count() == 3
    )


def counts() -> tuple[int, ...]:
    return (
        User.objects.count(),
        Customer.objects.count(),
        Subscription.objects.count(),
        ProvisioningJob.objects.count(),
        HostingAccount.objects.count(),
    )


def emails_by_purpose() -> dict[str, int]:
    result: dict[str, int] = {}
    for purpose in EmailNotification.objects.values_list("purpose", flat=True):
        result[purpose] = result.get(purpose, 0) + 1
    return result


def test_a_paid_checkout_ends_provisioned_with_its_three_emails(e2e):
    session_id = e2e.buy("ada@example.com")

    e2e.complete(session_id)

    wait_for(lambda: provisioned(session_id), timeout=60, what="provisioning and e-mails")
    session = CheckoutSession.objects.get(stripe_session_id=session_id)
    stripe_session = e2e.stripe.v1.checkout.sessions.retrieve(session_id)
    assert session.status == "completed" and session.completed_at
    subscription = Subscription.objects.get()
    assert subscription.stripe_subscription_id == stripe_session.subscription
    assert subscription.customer.stripe_customer_id == stripe_session.customer
    assert User.objects.get().email == "ada@example.com"
    assert HostingAccount.objects.get().domain == "ada.example.com"
    assert ProvisioningJob.objects.get().status == "succeeded"
    assert emails_by_purpose() == {"set_password": 1, "order_confirmation": 1, "service_ready": 1}
    mail = e2e.sent_mail()
    assert len(mail) == 3 and all("To: ada@example.com" in message for message in mail)
    assert all(d["status"] == 200 for d in e2e.deliveries())


def test_a_delayed_payment_that_succeeds_is_fulfilled_only_then(e2e):
    session_id = e2e.buy("delayed@example.com")

    e2e.complete(session_id, payment_status="unpaid")
    e2e.wait_deliveries_idle()
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "pending"
    assert not Subscription.objects.exists()

    e2e.async_payment(session_id, "succeeded")

    wait_for(lambda: provisioned(session_id), timeout=60, what="provisioning after the delayed payment")
    assert counts() == (1, 1, 1, 1, 1)


def test_a_delayed_payment_that_fails_tells_the_customer_and_provisions_nothing(e2e):
    session_id = e2e.buy("declined@example.com")

    e2e.complete(session_id, payment_status="unpaid")
    e2e.async_payment(session_id, "failed")

    wait_for(
        lambda: EmailNotification.objects.filter(purpose="payment_failed", status="sent").exists(),
        timeout=60,
        what="the payment-failed e-mail",
    )
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "payment_failed"
    assert counts() == (0, 0, 0, 0, 0)
    assert "declined@example.com" in e2e.sent_mail()[0]


def test_an_expired_session_is_marked_expired(e2e):
    session_id = e2e.buy("late@example.com")

    e2e.control("POST", "clock/advance", {"seconds": 25 * 3600})

    wait_for(
        lambda: CheckoutSession.objects.filter(stripe_session_id=session_id, status="expired").exists(),
        timeout=30,
        what="the expiry webhook",
    )
    assert counts() == (0, 0, 0, 0, 0)


def completed_event(e2e, session_id: str) -> dict:
    events = e2e.stripe.v1.events.list({"type": "checkout.session.completed"}).data
    [event] = [e for e in events if e.data.object.id == session_id]
    return event.to_dict()


def post_webhook(endpoint: WebhookEndpoint, payload: dict, **signature) -> requests.Response:
    """Deliver as Stripe would; the endpoint is read by the caller, as threads must not open database connections
    that outlive the test."""
    body, header = signed(payload, endpoint.secret, **signature)
    return requests.post(
        endpoint.url, data=body, timeout=60, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def test_200_concurrent_deliveries_of_one_event_fulfil_once_and_all_get_2xx(e2e):
    session_id = e2e.buy("crowd@example.com")
    e2e.control("POST", "deliveries/pause", {})
    e2e.complete(session_id)
    event = completed_event(e2e, session_id)
    endpoint = WebhookEndpoint.objects.get()

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda _: post_webhook(endpoint, event).status_code, range(200)))
    e2e.control("POST", "deliveries/resume", {})

    assert statuses == [200] * 200
    wait_for(lambda: provisioned(session_id), timeout=60, what="provisioning")
    e2e.wait_deliveries_idle()
    assert counts() == (1, 1, 1, 1, 1)
    assert emails_by_purpose() == {"set_password": 1, "order_confirmation": 1, "service_ready": 1}
    assert len(e2e.sent_mail()) == 3


def test_webhooks_and_the_success_page_racing_for_one_session_fulfil_once(e2e):
    session_id = e2e.buy("racer@example.com")
    e2e.control("POST", "deliveries/pause", {})
    e2e.complete(session_id, payment_status="unpaid")
    e2e.async_payment(session_id, "succeeded")
    events = e2e.stripe.v1.events.list({"limit": 100}).data
    checkout_events = [e.to_dict() for e in events if e.type.startswith("checkout.session.")]
    endpoint = WebhookEndpoint.objects.get()
    start = threading.Barrier(3)

    def success_page():
        start.wait()
        return [requests.get(f"{e2e.api}/api/checkout/session/{session_id}", timeout=60).status_code for _ in range(10)]

    def deliveries():
        start.wait()
        e2e.control("POST", "deliveries/resume", {})
        return [post_webhook(endpoint, event).status_code for event in checkout_events for _ in range(3)]

    with ThreadPoolExecutor(max_workers=3) as pool:
        page, posted, redelivered = (
            pool.submit(success_page),
            pool.submit(deliveries),
            pool.submit(
                lambda: (start.wait(), [post_webhook(endpoint, e).status_code for e in reversed(checkout_events)])[1]
            ),
        )
        statuses = page.result() + posted.result() + redelivered.result()

    assert set(statuses) == {200}
    wait_for(lambda: provisioned(session_id), timeout=60, what="provisioning")
    e2e.wait_deliveries_idle()
    assert counts() == (1, 1, 1, 1, 1)
    assert emails_by_purpose() == {"set_password": 1, "order_confirmation": 1, "service_ready": 1}


@pytest.mark.parametrize("tamper", ["forged", "stale", "one_byte", "unsigned"])
def test_a_forged_stale_or_altered_delivery_is_refused_and_writes_nothing(e2e, tamper):
    session_id = e2e.buy("target@example.com")
    e2e.control("POST", "deliveries/pause", {})
    e2e.complete(session_id)
    event = completed_event(e2e, session_id)
    endpoint = WebhookEndpoint.objects.get()
    body, header = signed(event, endpoint.secret)
    if tamper == "forged":
        body, header = signed(event, "whsec_not_the_secret")
    elif tamper == "stale":
        import time

        body, header = signed(event, endpoint.secret, timestamp=int(time.time()) - 301)
    elif tamper == "one_byte":
        body = body.replace(b'"paid"', b'"pai!"', 1)
    headers = {"Content-Type": "application/json"}
    if tamper != "unsigned":
        headers["Stripe-Signature"] = header

    response = requests.post(endpoint.url, data=body, headers=headers, timeout=30)

    assert response.status_code == 400
    assert not WebhookEventTrigger.objects.exists()
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "pending"
    assert counts() == (0, 0, 0, 0, 0)


def test_with_redis_down_the_webhook_still_answers_and_the_job_runs_once_redis_is_back(e2e):
    session_id = e2e.buy("outage@example.com")
    e2e.redis.stop()

    e2e.complete(session_id)
    e2e.wait_deliveries_idle()

    assert [d["status"] for d in e2e.deliveries(type="checkout.session.completed")] == [200]
    session = CheckoutSession.objects.get(stripe_session_id=session_id)
    assert session.status == "completed"
    assert ProvisioningJob.objects.get().status == "pending"  # recorded in the outbox, waiting for the broker

    e2e.redis.start()

    wait_for(lambda: provisioned(session_id), timeout=60, interval=0.5, what="the job after Redis came back")
    job = ProvisioningJob.objects.get()
    assert (job.status, job.attempts, HostingAccount.objects.count()) == ("succeeded", 1, 1)
    assert emails_by_purpose() == {"set_password": 1, "order_confirmation": 1, "service_ready": 1}


def test_stripe_down_while_dj_stripe_processes_fails_the_delivery_and_the_retry_fulfils(e2e):
    from djstripe.models import Event

    session_id = e2e.buy("flaky@example.com")
    # dj-stripe re-reads the session from Stripe while processing checkout.session.completed, and stripe-python
    # tries each read three times: six failures make the first two deliveries fail and the third go through.
    e2e.control(
        "POST",
        "faults",
        {"path_prefix": f"/v1/checkout/sessions/{session_id}", "method": "GET", "status": 503, "count": 6},
    )

    e2e.complete(session_id)

    wait_for(
        lambda: len([d for d in e2e.deliveries(type="checkout.session.completed") if d["status"] == 500]) >= 2,
        timeout=30,
        what="two failed deliveries",
    )
    event_id = e2e.deliveries(type="checkout.session.completed")[0]["event"]
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "pending"
    assert counts() == (0, 0, 0, 0, 0)
    assert not Event.objects.filter(id=event_id).exists()
    assert WebhookEventTrigger.objects.exclude(exception="").exists()  # the failure is on record for support

    wait_for(lambda: provisioned(session_id), timeout=60, what="fulfilment on Stripe's retry")
    assert counts() == (1, 1, 1, 1, 1)
    assert [d["status"] for d in e2e.deliveries(type="checkout.session.completed")][-1] == 200


def test_a_chunked_request_body_reaches_the_api_through_gunicorn(e2e):
    # A client that streams its body (Transfer-Encoding: chunked, no Content-Length), as requests does for an iterator.
    body = (
        b'{"planId": "starter", "billingCycle": "monthly", ',
        b'"customer": {"name": "Chunked", "email": "chunked@example.com"}}',
    )

    response = requests.post(
        f"{e2e.api}/api/checkout/create-session",
        data=iter(body),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200, response.text
    assert CheckoutSession.objects.get(stripe_session_id=response.json()["sessionId"]).email == "chunked@example.com"


def test_a_chunked_body_over_the_limit_is_a_413_before_django_reads_it(e2e):
    def stream():
        yield b'{"padding": "'
        for _ in range(300):
            yield b"x" * 10_000  # 3 MB, over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
        yield b'"}'

    response = requests.post(
        f"{e2e.api}/api/checkout/create-session",
        data=stream(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert not CheckoutSession.objects.exists()

"""/metrics: who may read it, and that each figure moves when the thing it counts happens."""

import json
import time
import uuid
from datetime import timedelta

import pytest
import stripe
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from djstripe.models import WebhookEndpoint
from rest_framework.test import APIClient

from checkout.models import CheckoutSession
from core.observability.metrics import stripe_endpoint
from provisioning.models import EmailNotification, ProvisioningJob
from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_observability"


# --- Who may read it ---------------------------------------------------------------------------------------------------


def test_metrics_are_refused_to_a_public_address():
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.4.0.7", "172.20.0.3", "192.168.1.20", "::1"])
def test_metrics_are_served_to_a_private_address(address):
    response = Client(REMOTE_ADDR=address).get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "checkout_funnel_total" in response.content.decode()


def test_behind_the_proxy_the_client_address_it_wrote_decides_not_the_proxys_own(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    behind_nginx = Client(REMOTE_ADDR="172.18.0.5")  # nginx, on the compose network

    assert behind_nginx.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    # A client that puts a private address in front of the header gets nowhere: nginx's entry is the last one
    assert behind_nginx.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.1, 203.0.113.9").status_code == 403
    assert behind_nginx.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.9").status_code == 200


def test_a_bearer_token_opens_metrics_to_any_address(settings):
    settings.METRICS_BEARER_TOKEN = "s3cret-scrape-token"
    outside = Client(REMOTE_ADDR="203.0.113.9")

    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert outside.get("/metrics").status_code == 403


def test_without_a_token_configured_an_empty_bearer_opens_nothing(settings):
    settings.METRICS_BEARER_TOKEN = ""

    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


# --- HTTP requests -----------------------------------------------------------------------------------------------------


def test_requests_are_counted_by_view_method_and_status_with_their_latency(client, metrics):
    responses = "django_http_responses_total_by_status_view_method_total"
    latency = "django_http_requests_latency_seconds_by_view_method_count"
    before = metrics.value(responses, view="health", method="GET", status="200")
    timed_before = metrics.value(latency, view="health", method="GET")

    client.get("/api/health/")
    client.get("/api/health/")

    assert metrics.value(responses, view="health", method="GET", status="200") == before + 2
    assert metrics.value(latency, view="health", method="GET") == timed_before + 2


# --- The checkout funnel, webhooks, Stripe calls ----------------------------------------------------------------------


@pytest.fixture
def shop(stripe_sandbox):
    call_command("catalog_load", verbosity=0)
    endpoint = WebhookEndpoint.objects.create(
        id="we_test_metrics",
        url="https://shop.test/api/webhooks/stripe/x/",
        enabled_events=["*"],
        status="enabled",
        secret=SECRET,
        livemode=False,
        djstripe_uuid=uuid.uuid4(),
    )

    class Shop:
        api = APIClient()
        sandbox = stripe_sandbox
        stripe = stripe.StripeClient(
            "sk_test_testsuite000000000000000000000", base_addresses={"api": stripe_sandbox.url}
        )

        def create(self, email="funnel@example.com"):
            response = self.api.post(
                "/api/checkout/create-session",
                {"planId": "starter", "billingCycle": "monthly", "customer": {"name": "Fun Nel", "email": email}},
                format="json",
            )
            return response

        def event(self, type_: str) -> bytes:
            [event] = self.stripe.v1.events.list({"type": type_}).data
            return json.dumps(event.to_dict()).encode()

        def deliver(self, body: bytes, secret: str = SECRET):
            timestamp = int(time.time())
            signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body.decode()}", secret)
            return self.api.post(
                f"/api/webhooks/stripe/{endpoint.djstripe_uuid}/",
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}",
            )

    return Shop()


def test_creating_a_checkout_counts_a_created_session_and_the_stripe_call(
    shop, metrics, django_capture_on_commit_callbacks
):
    created = metrics.value("checkout_funnel_total", stage="created")
    calls = metrics.value("stripe_api_requests_total", method="POST", endpoint="/v1/checkout/sessions", outcome="ok")
    timed = metrics.value("stripe_api_request_duration_seconds_count", method="POST", endpoint="/v1/checkout/sessions")

    with django_capture_on_commit_callbacks(execute=True):
        assert shop.create().status_code == 200

    assert metrics.value("checkout_funnel_total", stage="created") == created + 1
    assert (
        metrics.value("stripe_api_requests_total", method="POST", endpoint="/v1/checkout/sessions", outcome="ok")
        == calls + 1
    )
    assert (
        metrics.value("stripe_api_request_duration_seconds_count", method="POST", endpoint="/v1/checkout/sessions")
        == timed + 1
    )


def test_a_stripe_error_is_counted_as_one(shop, metrics):
    errors = metrics.value(
        "stripe_api_requests_total", method="POST", endpoint="/v1/checkout/sessions", outcome="server_error"
    )
    shop.sandbox.inject_fault(path_prefix="/v1/checkout/sessions", method="POST", status=500, count=1)

    assert shop.create().status_code >= 500

    assert (
        metrics.value(
            "stripe_api_requests_total", method="POST", endpoint="/v1/checkout/sessions", outcome="server_error"
        )
        == errors + 1
    )


def test_a_paid_order_counts_paid_fulfilled_and_a_processed_webhook_and_its_repeat_a_duplicate(
    shop, metrics, django_capture_on_commit_callbacks
):
    before = {stage: metrics.value("checkout_funnel_total", stage=stage) for stage in ("paid", "fulfilled")}
    processed = metrics.value("stripe_webhook_deliveries_total", outcome="processed")
    duplicate = metrics.value("stripe_webhook_deliveries_total", outcome="duplicate")
    timed = metrics.value("stripe_webhook_duration_seconds_count", outcome="processed")
    # dj-stripe's re-read of the session goes through stripe-python's module-level client: timed too
    rereads = metrics.value(
        "stripe_api_requests_total", method="GET", endpoint="/v1/checkout/sessions/{id}", outcome="ok"
    )
    session_id = shop.create().json()["sessionId"]
    shop.stripe.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete", payment_status="paid")
    body = shop.event("checkout.session.completed")

    with django_capture_on_commit_callbacks(execute=True):  # the counts are taken once the fulfilment commits
        assert shop.deliver(body).status_code == 200
        assert shop.deliver(body).status_code == 200  # Stripe delivers it again

    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "completed"
    assert metrics.value("checkout_funnel_total", stage="paid") == before["paid"] + 1
    assert metrics.value("checkout_funnel_total", stage="fulfilled") == before["fulfilled"] + 1
    assert metrics.value("stripe_webhook_deliveries_total", outcome="processed") == processed + 1
    assert metrics.value("stripe_webhook_deliveries_total", outcome="duplicate") == duplicate + 1
    assert metrics.value("stripe_webhook_duration_seconds_count", outcome="processed") == timed + 1
    assert (
        metrics.value("stripe_api_requests_total", method="GET", endpoint="/v1/checkout/sessions/{id}", outcome="ok")
        > rereads
    )


def test_an_expired_session_is_counted(shop, metrics, django_capture_on_commit_callbacks):
    expired = metrics.value("checkout_funnel_total", stage="expired")
    session_id = shop.create().json()["sessionId"]
    shop.stripe.v1.checkout.sessions.expire(session_id)

    with django_capture_on_commit_callbacks(execute=True):
        assert shop.deliver(shop.event("checkout.session.expired")).status_code == 200

    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "expired"
    assert metrics.value("checkout_funnel_total", stage="expired") == expired + 1


def test_a_bad_signature_is_counted_and_changes_nothing_else(shop, metrics):
    bad = metrics.value("stripe_webhook_deliveries_total", outcome="bad_signature")
    processed = metrics.value("stripe_webhook_deliveries_total", outcome="processed")
    session_id = shop.create().json()["sessionId"]
    shop.stripe.v1.checkout.sessions.expire(session_id)

    assert shop.deliver(shop.event("checkout.session.expired"), secret="whsec_forged").status_code == 400

    assert metrics.value("stripe_webhook_deliveries_total", outcome="bad_signature") == bad + 1
    assert metrics.value("stripe_webhook_deliveries_total", outcome="processed") == processed


def test_a_webhook_that_fails_while_processing_is_counted_as_failed(shop, metrics):
    failed = metrics.value("stripe_webhook_deliveries_total", outcome="failed")
    session_id = shop.create().json()["sessionId"]
    shop.stripe.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete", payment_status="paid")
    body = shop.event("checkout.session.completed")
    # Stripe fails dj-stripe's re-read of the session
    shop.sandbox.inject_fault(path_prefix=f"/v1/checkout/sessions/{session_id}", method="GET", status=500, count=5)

    with pytest.raises(stripe.APIError):
        shop.deliver(body)  # the test client re-raises what Django would answer with a 500

    assert metrics.value("stripe_webhook_deliveries_total", outcome="failed") == failed + 1
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "pending"


# --- Figures read from the database -----------------------------------------------------------------------------------


def _aged(row, *, minutes: int):
    type(row).objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))


def test_jobs_and_emails_are_counted_by_status_and_the_oldest_pending_ones_age(metrics):
    pending = ProvisioningJobFactory()
    _aged(pending, minutes=10)
    ProvisioningJobFactory(status="succeeded")
    ProvisioningJobFactory(status="succeeded")
    EmailNotificationFactory(status="sent")
    EmailNotificationFactory(status="failed")

    assert metrics.value("checkout_provisioning_jobs", status="pending") == 1
    assert metrics.value("checkout_provisioning_jobs", status="succeeded") == 2
    assert metrics.value("checkout_provisioning_jobs", status="failed") == 0
    assert metrics.value("checkout_emails", status="sent") == 1
    assert metrics.value("checkout_emails", status="failed") == 1
    assert metrics.value("checkout_emails", status="pending") == 0
    assert 600 <= metrics.value("checkout_outbox_oldest_pending_age_seconds", kind="job") < 900
    assert metrics.value("checkout_outbox_oldest_pending_age_seconds", kind="email") == 0
    assert metrics.value("checkout_metrics_database_up") == 1


def test_the_database_figures_cost_one_query_each(metrics, django_assert_num_queries):
    ProvisioningJobFactory()
    EmailNotificationFactory()

    # jobs by status (with the oldest pending), e-mails likewise, paid but not provisioned
    with django_assert_num_queries(3):
        metrics.text()


def test_a_paid_order_not_provisioned_15_minutes_after_payment_is_counted(metrics):
    def paid(minutes_ago: int, status: str):
        job = ProvisioningJobFactory(status=status)
        CheckoutSession.objects.filter(pk=job.subscription.checkout_session_id).update(
            status="completed", completed_at=timezone.now() - timedelta(minutes=minutes_ago)
        )

    paid(20, "pending")  # stuck
    paid(16, "retrying")  # stuck
    paid(5, "pending")  # paid a moment ago: still within its 15 minutes
    paid(30, "succeeded")  # provisioned
    assert metrics.value("checkout_paid_unprovisioned_sessions") == 2

    ProvisioningJob.objects.filter(status="pending").update(status="succeeded")
    assert metrics.value("checkout_paid_unprovisioned_sessions") == 1


def test_a_worker_that_ran_a_task_leaves_a_heartbeat(metrics):
    from provisioning.tasks import email_notification_send_task

    assert "celery_worker_last_task_age_seconds" not in metrics.text()
    email = EmailNotificationFactory()

    email_notification_send_task.apply(args=[email.pk])  # as a worker runs it (task_prerun ... task_postrun)

    assert EmailNotification.objects.get(pk=email.pk).status == "sent"
    assert 0 <= metrics.value("celery_worker_last_task_age_seconds") < 60


# --- Stripe paths as label values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("https://api.stripe.com/v1/checkout/sessions", "/v1/checkout/sessions"),
        ("https://api.stripe.com/v1/checkout/sessions/cs_test_a1B2c3D4e5/expire", "/v1/checkout/sessions/{id}/expire"),
        ("http://127.0.0.1:12111/v1/subscriptions/sub_1Nabc?expand[]=items", "/v1/subscriptions/{id}"),
        (
            "https://api.stripe.com/v1/test_helpers/checkout/sessions/cs_9/complete",
            "/v1/test_helpers/checkout/sessions/{id}/complete",
        ),
        ("https://api.stripe.com/v1/webhook_endpoints/we_123", "/v1/webhook_endpoints/{id}"),
        ("https://api.stripe.com/v1/invoice_payments", "/v1/invoice_payments"),
    ],
)
def test_stripe_paths_are_labelled_without_object_ids(url, endpoint):
    assert stripe_endpoint(url) == endpoint

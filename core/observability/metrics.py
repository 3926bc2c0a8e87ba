"""The service's own Prometheus metrics: the checkout funnel, Stripe webhook deliveries, calls to the Stripe API, and
what the database says at scrape time (jobs and e-mails by status, the outbox's age, paid orders not provisioned).

HTTP requests by view, method and status, with their latency, come from django-prometheus's middleware.
Counters live in the process that counts (multiprocess mode adds gunicorn's workers up, see multiprocess.py); the
database figures are read when Prometheus scrapes, with one GROUP BY query each, so they are right whichever
process (web, worker, beat) changed the rows.
"""

import contextvars
import re
import time
from datetime import timedelta

import stripe
from django.db import transaction
from prometheus_client import Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from core.observability import celery_hooks

# No `*_created` series beside every counter: Prometheus does not need them, and multiprocess mode has none.
disable_created_metrics()

# --- Checkout funnel -----------------------------------------------------------------------------------------------------
FUNNEL_STAGES = ("created", "paid", "fulfilled", "expired")
checkout_funnel = Counter(
    "checkout_funnel",
    "Checkout sessions reaching each stage: created (a new session at Stripe), paid (Stripe reported the payment), "
    "fulfilled (user, customer, subscription and their work recorded), expired.",
    ["stage"],
)
for _stage in FUNNEL_STAGES:
    checkout_funnel.labels(stage=_stage)


def checkout_funnel_count(stage: str) -> None:
    """Count a stage once the transaction that reached it commits (at once outside one): a rolled-back fulfilment
    counts nothing."""
    transaction.on_commit(checkout_funnel.labels(stage=stage).inc)


# --- Stripe webhook deliveries -------------------------------------------------------------------------------------------
WEBHOOK_OUTCOMES = ("processed", "duplicate", "failed", "bad_signature", "unknown_endpoint", "rejected")
webhook_deliveries = Counter(
    "stripe_webhook_deliveries",
    "Stripe webhook deliveries by outcome: processed, duplicate (an event already processed), failed (an error while "
    "processing; Stripe retries a 500), bad_signature, unknown_endpoint, rejected (any other 4xx).",
    ["outcome"],
)
webhook_duration = Histogram(
    "stripe_webhook_duration_seconds",
    "Time to answer a Stripe webhook delivery, by outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
for _outcome in WEBHOOK_OUTCOMES:
    webhook_deliveries.labels(outcome=_outcome)

WEBHOOK_VIEW_NAME = "djstripe:djstripe_webhook_by_uuid"
# What dj-stripe's signals found while this request was processed ("processed", "duplicate", "failed").
_webhook_outcome: contextvars.ContextVar[str | None] = contextvars.ContextVar("webhook_outcome", default=None)


class WebhookMetricsMiddleware:
    """Times each delivery to the webhook view and counts its outcome: what dj-stripe's signals reported, else what
    the answer's status says (our view answers a bad signature with a 400 before dj-stripe sees it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _webhook_outcome.set(None)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None and match.view_name == WEBHOOK_VIEW_NAME:
                outcome = _webhook_outcome.get() or _outcome_from_status(response.status_code)
                webhook_deliveries.labels(outcome=outcome).inc()
                webhook_duration.labels(outcome=outcome).observe(time.perf_counter() - started)
            return response
        finally:
            _webhook_outcome.reset(token)


def _outcome_from_status(status: int) -> str:
    if status >= 500:
        return "failed"
    if status == 400:
        return "bad_signature"
    if status == 404:
        return "unknown_endpoint"
    return "rejected" if status >= 400 else "processed"


def _webhook_processed(sender, instance, **kwargs) -> None:
    event = getattr(instance, "event", None)
    # dj-stripe answers an event id it already has with that Event, made by an earlier delivery (before this one's
    # trigger row); a new event is made after it.
    duplicate = event is not None and instance.created and event.djstripe_created < instance.created
    _webhook_outcome.set("duplicate" if duplicate else "processed")


def _webhook_failed(sender, instance, **kwargs) -> None:
    _webhook_outcome.set("failed")


def webhook_signals_connect() -> None:
    from djstripe import signals

    signals.webhook_post_process.connect(_webhook_processed, dispatch_uid="observability.webhook.processed")
    signals.webhook_processing_error.connect(_webhook_failed, dispatch_uid="observability.webhook.failed")


# --- Calls to the Stripe API ---------------------------------------------------------------------------------------------
stripe_requests = Counter(
    "stripe_api_requests",
    "HTTP requests to the Stripe API (each attempt, retries included) by method, path (ids replaced by {id}) and "
    "outcome: ok, client_error (4xx), rate_limited (429), server_error (5xx), connection_error.",
    ["method", "endpoint", "outcome"],
)
stripe_request_duration = Histogram(
    "stripe_api_request_duration_seconds",
    "Duration of HTTP requests to the Stripe API, by method and path.",
    ["method", "endpoint"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
# A path segment with a digit or a capital is an object id (cs_test_a1B2..., sub_..., evt_...): Stripe's resource
# names are lowercase letters and underscores only.
_ID_SEGMENT = re.compile(r"[a-z_]*[0-9A-Z][A-Za-z0-9_]*")


def stripe_endpoint(url: str) -> str:
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    segments = path.split("?", 1)[0].split("/")
    return "/".join(s if i == 1 or not _ID_SEGMENT.fullmatch(s) else "{id}" for i, s in enumerate(segments))


def _outcome(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


class InstrumentedRequestsClient(stripe.RequestsClient):
    """stripe-python's requests-based client, timing every HTTP attempt. Both our StripeClient (core/stripe_api.py)
    and dj-stripe's module-level calls (stripe.default_http_client, set in CoreConfig.ready) use it."""

    def request(self, method, url, headers, post_data=None):
        return self._timed(super().request, method, url, headers, post_data)

    def request_stream(self, method, url, headers, post_data=None):
        return self._timed(super().request_stream, method, url, headers, post_data)

    @staticmethod
    def _timed(call, method, url, headers, post_data):
        endpoint = stripe_endpoint(url)
        method = method.upper()
        started = time.perf_counter()
        try:
            response = call(method.lower(), url, headers, post_data)
        except stripe.APIConnectionError:
            stripe_requests.labels(method=method, endpoint=endpoint, outcome="connection_error").inc()
            stripe_request_duration.labels(method=method, endpoint=endpoint).observe(time.perf_counter() - started)
            raise
        stripe_requests.labels(method=method, endpoint=endpoint, outcome=_outcome(response[1])).inc()
        stripe_request_duration.labels(method=method, endpoint=endpoint).observe(time.perf_counter() - started)
        return response


# --- Figures read from the database at scrape time ----------------------------------------------------------------------
# A paid order whose provisioning has not finished this long after payment is stuck: the alert's threshold.
PAID_UNPROVISIONED_AFTER_SECONDS = 15 * 60


class DatabaseCollector:
    """Reads the figures when /metrics is scraped. A database that does not answer gives
    checkout_metrics_database_up 0 instead of failing the whole scrape."""

    def describe(self):
        return []  # no query when registered; the names are known once collected

    def collect(self):
        from django.core.cache import cache
        from django.db import DatabaseError

        up = GaugeMetricFamily(
            "checkout_metrics_database_up", "1 when the database answered this scrape's queries, else 0."
        )
        try:
            families = list(self._from_database())
        except DatabaseError:
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from families
        heartbeat = cache.get(celery_hooks.WORKER_HEARTBEAT_KEY)
        if heartbeat is not None:
            age = GaugeMetricFamily(
                "celery_worker_last_task_age_seconds",
                "Seconds since a Celery worker last finished a task (beat makes one every 30 s).",
            )
            age.add_metric([], max(time.time() - heartbeat, 0.0))
            yield age

    def _from_database(self):
        from django.db.models import Count, Min
        from django.utils import timezone

        from provisioning.models import EmailNotification, EmailStatus, ProvisioningJob, ProvisioningJobStatus

        now = timezone.now()
        outbox_age = GaugeMetricFamily(
            "checkout_outbox_oldest_pending_age_seconds",
            "Age of the oldest job or e-mail still pending (recorded, no worker has taken it); 0 when none.",
            labels=["kind"],
        )
        for kind, model, statuses in (
            ("job", ProvisioningJob, ProvisioningJobStatus),
            ("email", EmailNotification, EmailStatus),
        ):
            rows = {
                row["status"]: row
                for row in model.objects.order_by()
                .values("status")
                .annotate(count=Count("id"), oldest=Min("created_at"))
            }
            by_status = GaugeMetricFamily(
                f"checkout_{'provisioning_jobs' if kind == 'job' else 'emails'}",
                f"{'Provisioning jobs' if kind == 'job' else 'Customer e-mails'} by status (rows in the database).",
                labels=["status"],
            )
            for status in statuses.values:
                by_status.add_metric([status], rows.get(status, {}).get("count", 0))
            yield by_status
            oldest = rows.get("pending", {}).get("oldest")
            outbox_age.add_metric([kind], (now - oldest).total_seconds() if oldest else 0.0)
        yield outbox_age

        cutoff = now - timedelta(seconds=PAID_UNPROVISIONED_AFTER_SECONDS)
        stuck = ProvisioningJob.objects.filter(
            action="provision",
            status__in=(ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RUNNING, ProvisioningJobStatus.RETRYING),
            subscription__checkout_session__completed_at__lt=cutoff,
        ).count()
        paid_unprovisioned = GaugeMetricFamily(
            "checkout_paid_unprovisioned_sessions",
            f"Paid checkout sessions whose provisioning is still not done {PAID_UNPROVISIONED_AFTER_SECONDS // 60} "
            "minutes after payment (pending, running or retrying; failed ones are in checkout_provisioning_jobs).",
        )
        paid_unprovisioned.add_metric([], stuck)
        yield paid_unprovisioned


# --- The registry /metrics serves ---------------------------------------------------------------------------------------
_registry = None


def metrics_registry():
    """Every process's counters (multiprocess mode: PROMETHEUS_MULTIPROC_DIR set) or this process's, plus the
    database figures."""
    global _registry
    if _registry is None:
        from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values

        # What this process's counters actually write to, decided when prometheus_client was first imported.
        if values.ValueClass is not values.MutexValue:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        registry.register(DatabaseCollector())
        _registry = registry
    return _registry

"""What operators see, on the real processes: gunicorn's four workers add their metrics up on /metrics, a paid order's
webhook request and the worker's tasks for it log under one request id (JSON lines), and /api/ready/ turns 503 within
2 s when Redis stops while /api/health/ stays 200."""

import json
import re
import tempfile
import time
from pathlib import Path

import pytest
import requests

from checkout.models import CheckoutSession
from provisioning.models import HostingAccount, ProvisioningJob
from tests.e2e.conftest import needs_real_services, wait_for

pytestmark = [needs_real_services, pytest.mark.postgres, pytest.mark.redis]

STACK = {"env": {"LOG_FORMAT": "json"}}


def json_lines(stack, name: str) -> list[dict]:
    records = []
    for line in (stack.mail_dir.parent / f"{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    return records


def scrape(stack) -> str:
    response = requests.get(f"{stack.api}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def sample(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
            if all(found.get(k) == str(v) for k, v in labels.items()):
                return float(match[3])
    return 0.0


def test_metrics_add_up_the_requests_every_gunicorn_worker_answered(e2e):
    # Requests nothing else sends (a probe of another test may still reach this port): the API's JSON 404
    name = "django_http_responses_total_by_status_view_method_total"
    labels = {"view": "core.views.api_not_found", "method": "GET", "status": "404"}
    before = sample(scrape(e2e), name, **labels)

    for number in range(40):  # a new connection each: the four workers share them out
        assert requests.get(f"{e2e.api}/api/observability-probe-{number}/", timeout=10).status_code == 404

    # Whichever worker answers the scrape, it counts all forty, though more than one worker answered them
    for _ in range(4):
        assert sample(scrape(e2e), name, **labels) == before + 40
    shared = Path(tempfile.gettempdir()) / f"checkout-service-metrics-{e2e.processes['web'].pid}"
    assert len({path.stem.rsplit("_", 1)[-1] for path in shared.glob("counter_*.db")}) > 1


def test_a_paid_orders_webhook_and_its_tasks_log_under_one_request_id_and_count_in_the_funnel(e2e):
    before = scrape(e2e)
    response = requests.post(
        f"{e2e.api}/api/checkout/create-session",
        timeout=30,
        headers={"X-Request-ID": "order-ada-1"},
        json={
            "planId": "starter",
            "billingCycle": "monthly",
            "customer": {"name": "Ada", "email": "ada@example.com"},
            "domain": {"mode": "new-or-transfer", "value": "ada.example.com"},
        },
    )
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "order-ada-1"
    session_id = response.json()["sessionId"]

    e2e.complete(session_id)  # the sandbox pays and delivers the signed webhook

    wait_for(lambda: HostingAccount.objects.exists(), timeout=60, what="provisioning")
    # The web's line about the fulfilment names the webhook request's id ...
    [fulfilled] = wait_for(
        lambda: [
            r for r in json_lines(e2e, "web") if r["message"].startswith(f"Checkout session {session_id} fulfilled")
        ],
        timeout=10,
        what="the web's log line",
    )
    webhook_request = fulfilled["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", webhook_request)
    # ... and so do the worker's lines about the job that request started
    job = ProvisioningJob.objects.get(subscription__checkout_session__stripe_session_id=session_id)
    [provisioned] = wait_for(
        lambda: [
            r for r in json_lines(e2e, "worker") if r["message"].startswith(f"Provisioning job {job.pk} succeeded")
        ],
        timeout=10,
        what="the worker's log line",
    )
    assert provisioned["request_id"] == webhook_request
    assert provisioned["level"] == "INFO" and provisioned["logger"] == "provisioning.services"

    after = scrape(e2e)
    for stage in ("created", "paid", "fulfilled"):
        assert (
            sample(after, "checkout_funnel_total", stage=stage)
            == sample(before, "checkout_funnel_total", stage=stage) + 1
        ), stage
    assert sample(after, "stripe_webhook_deliveries_total", outcome="processed") >= 1
    assert (
        sample(after, "stripe_api_requests_total", method="POST", endpoint="/v1/checkout/sessions", outcome="ok") >= 1
    )
    assert sample(after, "checkout_provisioning_jobs", status="succeeded") == 1
    assert sample(after, "checkout_paid_unprovisioned_sessions") == 0
    assert 0 <= sample(after, "celery_worker_last_task_age_seconds") < 60
    assert CheckoutSession.objects.get(stripe_session_id=session_id).status == "completed"


def test_readiness_fails_within_two_seconds_when_redis_stops_while_liveness_holds(e2e):
    assert requests.get(f"{e2e.api}/api/ready/", timeout=5).status_code == 200

    e2e.redis.stop()
    started = time.monotonic()
    response = requests.get(f"{e2e.api}/api/ready/", timeout=5)
    elapsed = time.monotonic() - started

    print(f"/api/ready/ with Redis stopped: {response.status_code} in {elapsed:.2f} s")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"] != "ok" and checks["broker"] != "ok"
    assert elapsed < 2.0
    assert requests.get(f"{e2e.api}/api/health/", timeout=5).status_code == 200

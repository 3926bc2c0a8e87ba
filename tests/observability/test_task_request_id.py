"""A request's id follows it into the Celery tasks it starts: through transaction.on_commit, the outbox's send and
Redis, to a real `celery -A config worker` process whose JSON log lines for those tasks carry the same id.

Needs DATABASE_URL=postgres://... and REDIS_URL (the worker is another process reading the test database).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import stripe
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from config.celery import app as celery_app
from provisioning.models import ProvisioningJob
from tests.e2e.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
        reason="needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)",
    ),
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


def json_lines(path: Path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # the worker's start-up banner is printed, not logged
    return records


@pytest.fixture
def worker(tmp_path):
    """A real worker (JSON logs, tasks through Redis); this process sends its tasks there too, for this test only."""
    celery_app.conf.task_always_eager = False
    db = connection.settings_dict
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "STRIPE_API_BASE": settings.STRIPE_API_BASE,
        "LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--hostname",
            "observability@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(r["message"].endswith("ready.") for r in json_lines(log)) or process.poll() is not None,
            timeout=30,
            what="the worker to start",
        )
        assert process.poll() is None, log.read_text()
        yield log
    finally:
        celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_worker_logs_a_task_under_the_id_of_the_request_that_started_it(stripe_sandbox, worker, log_output):
    call_command("catalog_load", verbosity=0)
    api = APIClient()
    created = api.post(
        "/api/checkout/create-session",
        {
            "planId": "starter",
            "billingCycle": "monthly",
            "customer": {"name": "Ops Test", "email": "ops@example.com"},
            "domain": {"mode": "new-or-transfer", "value": "ops.example.com"},
        },
        format="json",
    )
    assert created.status_code == 200, created.content
    stripe_session_id = created.json()["sessionId"]
    # The customer pays; no webhook endpoint is registered, so the success page's poll is what fulfils the order.
    stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}).raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{stripe_session_id}/complete", payment_status="paid"
    )

    # When the poll fulfils the order: its job and e-mails are sent on commit, through the outbox, under its id
    response = api.get(f"/api/checkout/session/{stripe_session_id}", HTTP_X_REQUEST_ID="poll-0b6f1c3e5d7a")
    assert response.status_code == 200 and response["X-Request-ID"] == "poll-0b6f1c3e5d7a"
    web_lines = [r for r in log_output.records() if r["request_id"] == "poll-0b6f1c3e5d7a"]
    assert any("fulfilled" in r["message"] for r in web_lines), log_output.text()

    # Then the worker's lines about that job carry the same id
    wait_for(
        lambda: ProvisioningJob.objects.filter(status="succeeded").exists(),
        timeout=30,
        what="the worker to run the job",
    )
    job = ProvisioningJob.objects.get()
    lines = wait_for(
        lambda: [r for r in json_lines(worker) if r["message"].startswith(f"Provisioning job {job.pk} succeeded")],
        timeout=10,
        what="the worker's line about the job",
    )
    assert [line["request_id"] for line in lines] == ["poll-0b6f1c3e5d7a"]
    assert {"level", "logger", "timestamp"} <= lines[0].keys()
    # Every line the worker wrote while running this request's tasks has the id; none has another request's
    task_lines = [r for r in json_lines(worker) if r["logger"] in ("provisioning.services", "celery.app.trace")]
    assert task_lines and {r["request_id"] for r in task_lines} == {"poll-0b6f1c3e5d7a"}, task_lines


def test_a_task_sent_outside_any_request_runs_under_its_own_id(worker):
    from provisioning.tasks import provisioning_job_run_task

    # A task sent with no request around it, as beat sends the sweeper
    result = provisioning_job_run_task.apply_async(args=[999999])

    lines = wait_for(
        lambda: [r for r in json_lines(worker) if r["logger"] == "celery.app.trace"],
        timeout=30,
        what="the worker to run the task",
    )
    assert lines[0]["request_id"] == result.id

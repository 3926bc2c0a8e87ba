"""A Redis outage while the worker holds unacknowledged messages (retries waiting out their countdown): the worker
stays up, reconnects, and every job is done exactly once, with no one restarting anything.

The whole stack of tests/e2e/conftest.py, with its own redis-server, which the test stops and starts again (empty: the
held messages are gone with it, and the outbox sweeper sends the jobs again once they are due).
"""

import json
import time

import pytest
import redis

from provisioning.models import EmailNotification, HostingAccount, ProvisioningJob
from tests.e2e.conftest import needs_real_services, wait_for
from tests.provisioning.factories import ProvisioningJobFactory, subscription_for_domain

pytestmark = [needs_real_services, pytest.mark.postgres, pytest.mark.redis]

# A failed first attempt is retried 10 to 20 s later: long enough for the retries' messages to be held by the worker
# (countdown) through the whole outage.
STACK = {"env": {"PROVISIONING_RETRY_BASE_SECONDS": "20", "PROVISIONING_RETRY_CAP_SECONDS": "20"}}
JOBS = 6
OUTAGE_SECONDS = 5


def worker_log(e2e) -> str:
    return (e2e.mail_dir.parent / "worker.log").read_text(errors="replace")


def held_retries(e2e) -> int:
    """Job messages with a countdown that the worker took and has not acknowledged (kombu's Redis transport keeps
    what a worker holds in the `unacked` hash: [message, exchange, routing key])."""
    held = redis.Redis.from_url(e2e.redis.url).hvals("unacked")
    headers = [json.loads(entry)[0]["headers"] for entry in held]
    return sum(1 for header in headers if header["task"] == "provisioning.job_run" and header.get("eta"))


def test_redis_stopped_while_the_worker_holds_retries_the_worker_survives_and_each_job_is_done_once(e2e):
    # Given jobs whose first attempt fails, so that each one's retry waits in the worker with a countdown
    subscriptions = [subscription_for_domain(f"fail-1-time.held{n}.example") for n in range(JOBS)]
    job_ids = [ProvisioningJobFactory(subscription=subscription).pk for subscription in subscriptions]
    wait_for(lambda: ProvisioningJob.objects.filter(pk__in=job_ids, status="retrying").count() == JOBS, timeout=60,
             what="every job's first attempt to fail (the sweeper sends them)")
    wait_for(lambda: held_retries(e2e) == JOBS, timeout=20, what="the worker to hold every retry's message")
    assert ProvisioningJob.objects.filter(pk__in=job_ids, status="succeeded").count() == 0

    # When Redis goes away for a few seconds and comes back empty
    e2e.redis.stop()
    time.sleep(OUTAGE_SECONDS)
    e2e.redis.start()
    back = time.monotonic()

    # Then the worker never exits, and every job is done, once
    def all_done() -> bool:
        assert e2e.alive("worker"), "the worker exited during the outage:\n" + worker_log(e2e)[-3000:]
        return ProvisioningJob.objects.filter(pk__in=job_ids, status="succeeded").count() == JOBS

    wait_for(all_done, timeout=90, interval=0.5, what="every job to succeed after the outage")
    print(f"all {JOBS} jobs done {time.monotonic() - back:.1f} s after Redis came back")
    wait_for(lambda: EmailNotification.objects.filter(purpose="service_ready", status="sent").count() == JOBS,
             timeout=30, what="the service-ready e-mails")
    time.sleep(3)  # a few more sweeps: nothing may run twice
    assert e2e.alive("worker")
    assert "Unrecoverable error" not in worker_log(e2e)
    for job in ProvisioningJob.objects.filter(pk__in=job_ids):
        assert (job.status, job.attempts) == ("succeeded", 2), job
        assert [attempt.succeeded for attempt in job.attempt_log.all()] == [False, True]
    assert HostingAccount.objects.filter(subscription__in=subscriptions).count() == JOBS
    assert EmailNotification.objects.count() == JOBS
    assert len(e2e.sent_mail()) == JOBS

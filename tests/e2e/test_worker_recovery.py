"""A Redis outage while the worker holds unacknowledged messages (retries waiting out their countdown, a job running
with acks_late): the worker stays up, reconnects, and every job is done exactly once, with no one restarting anything.

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
# (countdown) through the whole outage. A job may run for 30 s (the task's time limit) before it counts as abandoned.
STACK = {
    "env": {
        "PROVISIONING_RETRY_BASE_SECONDS": "20",
        "PROVISIONING_RETRY_CAP_SECONDS": "20",
        "PROVISIONING_LEASE_SECONDS": "30",
    }
}
JOBS = 6
OUTAGE_SECONDS = 5
# Long enough for Redis to be stopped, and the loss noticed, while the job runs on a loaded machine.
SLOW_JOB_SECONDS = 8


def worker_log(e2e, since: int = 0) -> str:
    """What the worker logged (the log is the module's: from offset `since` on, in bytes)."""
    with open(e2e.mail_dir.parent / "worker.log", "rb") as log:
        log.seek(since)
        return log.read().decode(errors="replace")


def worker_log_size(e2e) -> int:
    return (e2e.mail_dir.parent / "worker.log").stat().st_size


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
    wait_for(
        lambda: ProvisioningJob.objects.filter(pk__in=job_ids, status="retrying").count() == JOBS,
        timeout=60,
        what="every job's first attempt to fail (the sweeper sends them)",
    )
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
    wait_for(
        lambda: EmailNotification.objects.filter(purpose="service_ready", status="sent").count() == JOBS,
        timeout=30,
        what="the service-ready e-mails",
    )
    e2e.wait_for_sweeps(tasks=("provisioning.outbox_sweep",))  # a few more sweeps: nothing may run twice
    assert e2e.alive("worker")
    assert "Unrecoverable error" not in worker_log(e2e)
    for job in ProvisioningJob.objects.filter(pk__in=job_ids):
        assert (job.status, job.attempts) == ("succeeded", 2), job
        assert [attempt.succeeded for attempt in job.attempt_log.all()] == [False, True]
    assert HostingAccount.objects.filter(subscription__in=subscriptions).count() == JOBS
    assert EmailNotification.objects.count() == JOBS
    assert len(e2e.sent_mail()) == JOBS


def test_a_job_that_finishes_while_redis_is_down_is_acknowledged_later_without_ending_the_worker(e2e):
    # Given a job whose backend call takes a while, running in the worker: its message is not acknowledged yet
    # (acks_late), and the worker's other process leaves the task channel waiting on Redis (BRPOP)
    subscription = subscription_for_domain(f"slow-{SLOW_JOB_SECONDS}s.acked-late.example")
    job_id = ProvisioningJobFactory(subscription=subscription).pk
    wait_for(
        lambda: ProvisioningJob.objects.filter(pk=job_id, status="running").exists(),
        timeout=30,
        what="the job to be claimed (the sweeper sends it)",
    )
    since = worker_log_size(e2e)

    # When Redis stops while the job runs, the worker notices and gives its connection up, the job finishes (the
    # acknowledgement waits for the worker's event loop, which waits for a connection), and Redis comes back
    e2e.redis.stop()
    wait_for(
        lambda: "Connection to broker lost" in worker_log(e2e, since),
        timeout=10,
        what="the worker to notice that Redis is gone",
    )
    assert ProvisioningJob.objects.get(pk=job_id).status == "running", "the job finished before the outage began"
    wait_for(
        lambda: ProvisioningJob.objects.filter(pk=job_id, status="succeeded").exists(),
        timeout=SLOW_JOB_SECONDS + 20,
        what="the job to finish while Redis is down",
    )
    e2e.redis.start()

    # Then the worker reconnects and goes on (its first act is the job's acknowledgement, on the lost channel): the
    # service-ready e-mail, decided while Redis was down, is sent, by the same worker
    def email_sent() -> bool:
        assert e2e.alive("worker"), "the worker exited after the outage:\n" + worker_log(e2e, since)[-3000:]
        return EmailNotification.objects.filter(purpose="service_ready", status="sent").exists()

    wait_for(email_sent, timeout=40, interval=0.5, what="the service-ready e-mail once Redis is back")
    log = worker_log(e2e, since)
    print("the lost channel's acknowledgement:", "guarded" if "could not be acknowledged" in log else "went through")
    assert e2e.alive("worker")
    assert "Unrecoverable error" not in log
    job = ProvisioningJob.objects.get(pk=job_id)
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert HostingAccount.objects.filter(subscription=subscription).count() == 1
    assert EmailNotification.objects.count() == 1
    assert len(e2e.sent_mail()) == 1

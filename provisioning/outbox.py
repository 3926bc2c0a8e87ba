"""Sending the task for an outbox row (a job, an e-mail) without ever raising into the caller.

The row is written first, in the caller's transaction; the task is sent after commit. When the broker is down the
send gives up after CELERY_BROKER_CONNECTION_TIMEOUT (2 s) if Redis refuses connections, or the transport's socket
timeout (5 s) if it hangs; the failure is logged and the row keeps an old or empty `enqueued_at`, so the sweeper
(services.provisioning_outbox_sweep, run by Celery beat) sends it again. A task sent twice is harmless: the task
claims its row with a conditional UPDATE.

Tasks are found by name in Celery's registry, so this module, which the services call, never imports the tasks, which
call the services: imports run tasks -> services -> outbox only. ProvisioningConfig.ready imports the tasks, so every
process has them registered (and a registered task honours CELERY_TASK_ALWAYS_EAGER: `make run`, the tests). Not
Celery's signature by name: for a name it does not know, it would send to the broker without a word, which in-process
would mean never run; a KeyError here is logged with its traceback, and the row waits for the sweeper.
"""

import logging
import time

from celery import current_app
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from provisioning.models import EmailNotification, ProvisioningJob

logger = logging.getLogger(__name__)

# After a failed send this process leaves sending to the sweeper for a while, instead of making every following
# request wait out the broker's timeouts again (a hung Redis costs the full socket timeout per send).
BROKER_PAUSE_SECONDS = 10.0
_broker_paused_until: dict[str, float] = {}  # monotonic deadline, by broker URL

# The names provisioning/tasks.py registers its tasks under.
JOB_RUN_TASK = "provisioning.job_run"
EMAIL_SEND_TASK = "provisioning.email_send"


def provisioning_job_enqueue(*, job_id: int, countdown: float | None = None) -> bool:
    """Send the job's task (after `countdown` seconds, for a retry). True when the broker took it."""
    # The hard time limit ends a hung backend call before the job's lease runs out, so no second worker ever
    # reclaims a job whose first worker is still calling the backend.
    sent = _send(JOB_RUN_TASK, job_id, countdown=countdown, time_limit=settings.PROVISIONING_LEASE_SECONDS)
    if sent:
        ProvisioningJob.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    return sent


def email_notification_enqueue(*, email_id: int) -> bool:
    """Send the e-mail's task. True when the broker took it."""
    # As for jobs: a mail server that hangs is given up before the claim's lease runs out (see
    # services.email_notification_send for what happens to the e-mail then).
    sent = _send(EMAIL_SEND_TASK, email_id, time_limit=settings.PROVISIONING_LEASE_SECONDS)
    if sent:
        EmailNotification.objects.filter(pk=email_id).update(enqueued_at=timezone.now())
    return sent


def _send(task_name: str, object_id: int, **options) -> bool:
    broker = current_app.conf.broker_url
    if time.monotonic() < _broker_paused_until.get(broker, 0.0):
        logger.warning("%s(%s) not sent: the broker failed moments ago; the sweeper will send it", task_name, object_id)
        return False
    try:
        # One try: the sweeper is the retry, and a web request must not wait through kombu's retry policy.
        current_app.tasks[task_name].apply_async(args=[object_id], retry=False, **options)
    except OperationalError as error:
        _broker_paused_until[broker] = time.monotonic() + BROKER_PAUSE_SECONDS
        # An outage, not a bug: one line per send, without a traceback.
        logger.error(
            "%s(%s) not sent: the broker is unreachable (%s); the sweeper will send it", task_name, object_id, error
        )
        return False
    except Exception:
        # With tasks running in-process (tests, `make run`) this is the task's own error; the row stays for the
        # sweeper either way, and the caller (a webhook, an on_commit hook) must not fail because of it.
        logger.exception("%s(%s) failed to send or run", task_name, object_id)
        return False
    return True

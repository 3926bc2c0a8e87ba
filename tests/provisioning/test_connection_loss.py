"""The database connection cut in the middle of a job or an e-mail (PostgreSQL's pg_terminate_backend, from another
connection, as a failover, a restart or an administrator does): nothing is left `running` or `sending` for good, the
outcome is recorded on a new connection, and an e-mail whose outcome went unrecorded is tried again, under the same
Message-ID (at least once: a lost set-password e-mail costs more than a second copy).

The services run in this process, on its own connection, against a real mail server or control panel (local
servers) that cut the connection at the chosen moment; or with a table locked, so that the service waits on it and is
cut there. Needs PostgreSQL.
"""

import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import Product
from provisioning.emails import email_message_id
from provisioning.models import EmailNotification, EmailStatus, HostingAccount, ProvisioningJob
from provisioning.selectors import email_notification_list_needing_attention
from provisioning.services import email_notification_send, provisioning_job_run, provisioning_outbox_sweep
from tests.conftest import database_is_postgres
from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory, provisioned_subscription

pytestmark = [
    pytest.mark.skipif(not database_is_postgres(), reason="cuts a PostgreSQL connection (DATABASE_URL=postgres://)"),
    pytest.mark.postgres,
    # Committed rows, and no test transaction for the cut to take with it.
    pytest.mark.django_db(transaction=True),
]


def ago(**delta):
    return timezone.now() - timedelta(**delta)


@pytest.fixture
def database(transactional_db):
    """Another connection to the test database, to act on this process's connection from outside."""
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    )
    yield other
    other.close()
    connection.close()  # whatever the test left of ours: the database is emptied through a live one


def our_backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def cut(database, pid: int) -> None:
    with database.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


@contextmanager
def cut_while_waiting_on(database, table: str):
    """Lock `table`; when this process's connection waits for the lock (its first query on the table), terminate
    it, then release the lock."""
    pid = our_backend_pid()
    locker = psycopg.connect(database.info.dsn, password=connection.settings_dict["PASSWORD"] or None)
    locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    done = threading.Event()

    def watch():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with database.cursor() as cursor:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
                row = cursor.fetchone()
            if row and row[0] == "Lock":
                cut(database, pid)
                break
            time.sleep(0.02)
        locker.rollback()
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        yield
    finally:
        done.wait(35)
        locker.close()


# --- What the mail server (tests/provisioning/conftest.py `smtp`) received ----------------------------------------


def received_ids(smtp) -> list[int]:
    return [int(message["X-Notification-Id"]) for message in smtp.messages]


def once(action):
    """`action` the first time only; nothing afterwards."""
    calls = []

    def run():
        if not calls:
            calls.append(1)
            return action()
        return None

    return run


def made_stale(notification: EmailNotification) -> None:
    EmailNotification.objects.filter(pk=notification.pk).update(created_at=ago(minutes=5), enqueued_at=ago(minutes=5))


# --- E-mails ----------------------------------------------------------------------------------------------------------


def test_cut_before_the_hand_over_the_email_goes_back_to_pending_and_is_sent_once_later(database, smtp):
    notification = EmailNotificationFactory()
    pid = our_backend_pid()

    def cut_and_drop():  # the database goes, and the mail server cannot be reached
        cut(database, pid)
        return False

    smtp.on_connect = once(cut_and_drop)

    notification = email_notification_send(email_id=notification.pk)

    assert (notification.status, notification.handed_over_at, smtp.messages) == ("pending", None, [])
    made_stale(notification)
    provisioning_outbox_sweep()  # tasks run in this process: the sweeper's send is the retry
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    assert received_ids(smtp) == [notification.pk]


def test_cut_while_building_the_message_the_email_goes_back_to_pending(database, smtp):
    notification = EmailNotificationFactory()

    with cut_while_waiting_on(database, Product._meta.db_table):  # the e-mail names the plan
        notification = email_notification_send(email_id=notification.pk)

    assert notification.status == "pending"
    assert notification.last_error.startswith("database connection lost")
    assert smtp.messages == []


def test_cut_while_the_mail_server_is_reached_the_email_is_sent_once_and_recorded(database, smtp):
    notification = EmailNotificationFactory()
    pid = our_backend_pid()
    smtp.on_connect = once(lambda: cut(database, pid))

    notification = email_notification_send(email_id=notification.pk)

    assert (notification.status, notification.attempts) == ("sent", 1)
    assert notification.handed_over_at is not None
    assert received_ids(smtp) == [notification.pk]


def test_cut_after_the_hand_over_the_email_is_recorded_as_sent_and_never_sent_again(database, smtp):
    notification = EmailNotificationFactory()
    pid = our_backend_pid()
    smtp.on_message = once(lambda: cut(database, pid))

    notification = email_notification_send(email_id=notification.pk)

    assert (notification.status, notification.attempts) == ("sent", 1)
    made_stale(notification)
    provisioning_outbox_sweep()
    assert email_notification_send(email_id=notification.pk) is None
    assert received_ids(smtp) == [notification.pk]


def test_an_email_abandoned_before_the_hand_over_is_sent_again_once_its_lease_expired(database, smtp):
    abandoned = EmailNotificationFactory(status=EmailStatus.SENDING, attempts=1, lease_expires_at=ago(seconds=1))
    held = EmailNotificationFactory(status=EmailStatus.SENDING, attempts=1, lease_expires_at=ago(seconds=-60))

    provisioning_outbox_sweep()

    abandoned.refresh_from_db()
    held.refresh_from_db()
    assert (abandoned.status, abandoned.attempts, held.status) == ("sent", 2, "sending")
    assert received_ids(smtp) == [abandoned.pk]


def test_an_email_handed_over_by_a_worker_that_then_died_is_sent_again_under_the_same_message_id(database, smtp):
    # The chaos run's case: the hand-over was recorded, then the worker was killed before the mail server had it.
    handed_over = EmailNotificationFactory(
        status=EmailStatus.SENDING, attempts=1, lease_expires_at=ago(minutes=1), handed_over_at=ago(minutes=1)
    )
    held = EmailNotificationFactory(
        status=EmailStatus.SENDING, attempts=1, lease_expires_at=ago(seconds=-60), handed_over_at=ago(seconds=1)
    )

    provisioning_outbox_sweep()

    handed_over.refresh_from_db()
    held.refresh_from_db()
    assert (handed_over.status, handed_over.attempts, held.status) == ("sent", 2, "sending")
    assert received_ids(smtp) == [handed_over.pk]
    assert smtp.messages[0]["Message-ID"] == email_message_id(handed_over)
    assert list(email_notification_list_needing_attention(now=timezone.now())) == []


def test_every_attempt_at_an_email_carries_one_message_id(database, smtp):
    notification = EmailNotificationFactory()
    smtp.on_message = once(lambda: False)  # the first copy arrives, the answer never does: was it accepted?

    first = email_notification_send(email_id=notification.pk)
    assert first.status == "pending"  # tried again, as a worker killed at that moment would be
    made_stale(first)
    provisioning_outbox_sweep()

    first.refresh_from_db()
    assert (first.status, first.attempts) == ("sent", 2)
    assert [message["Message-ID"] for message in smtp.messages] == [email_message_id(first)] * 2


def test_a_temporary_refusal_is_tried_again_and_a_permanent_one_fails_for_staff(database, smtp):
    temporary, permanent = EmailNotificationFactory(), EmailNotificationFactory()

    smtp.data_reply = b"451 4.3.0 try again later\r\n"
    assert email_notification_send(email_id=temporary.pk).status == "pending"
    smtp.data_reply = b"550 5.1.1 no such mailbox\r\n"
    failed = email_notification_send(email_id=permanent.pk)

    assert failed.status == "failed" and "no such mailbox" in failed.last_error
    assert list(email_notification_list_needing_attention(now=timezone.now())) == [failed]


def test_a_worker_whose_claim_was_taken_over_does_not_hand_the_email_over(database, smtp):
    notification = EmailNotificationFactory()

    def another_worker_takes_over():  # this attempt's lease expired meanwhile, and a new one claimed the e-mail
        with database.cursor() as cursor:
            cursor.execute(
                "UPDATE provisioning_emailnotification SET attempts = attempts + 1 WHERE id = %s", [notification.pk]
            )

    smtp.on_connect = once(another_worker_takes_over)

    assert email_notification_send(email_id=notification.pk) is None
    assert smtp.messages == []
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.handed_over_at) == ("sending", 2, None)


# --- Jobs -------------------------------------------------------------------------------------------------------------


def test_cut_while_the_panel_provisions_the_success_is_recorded_at_once(database, control_panel):
    job = ProvisioningJobFactory()
    pid = our_backend_pid()
    control_panel.before_next_answer(lambda: cut(database, pid))

    job = provisioning_job_run(job_id=job.pk)

    assert (job.status, job.attempts, job.lease_expires_at) == ("succeeded", 1, None)
    assert HostingAccount.objects.filter(subscription=job.subscription).count() == 1
    assert EmailNotification.objects.filter(purpose="service_ready").count() == 1
    assert len(control_panel.received) == 1


def test_cut_while_the_panel_fails_the_retry_is_recorded_instead_of_holding_the_lease(
    database, control_panel, settings
):
    settings.PROVISIONING_RETRY_BASE_SECONDS = settings.PROVISIONING_RETRY_CAP_SECONDS = 60
    job = ProvisioningJobFactory()
    pid = our_backend_pid()
    control_panel.answer(503)
    control_panel.before_next_answer(lambda: cut(database, pid))

    job = provisioning_job_run(job_id=job.pk)

    assert (job.status, job.attempts, job.lease_expires_at) == ("retrying", 1, None)
    assert "503" in job.last_error and job.next_attempt_at > timezone.now()


def test_cut_before_the_panel_is_asked_the_job_is_released_for_a_short_retry(database, control_panel, settings):
    # Retries wait 60 s or more, but a release only the first retry's delay (30 to 60 s), not the 300 s lease.
    settings.PROVISIONING_RETRY_BASE_SECONDS, settings.PROVISIONING_RETRY_CAP_SECONDS = 60, 600
    subscription = provisioned_subscription("cut.example")
    job = ProvisioningJobFactory(subscription=subscription, action="suspend", decision_key="suspend:cut", attempts=2)

    with cut_while_waiting_on(database, HostingAccount._meta.db_table):  # reading the account to suspend
        job = provisioning_job_run(job_id=job.pk)

    assert (job.status, job.attempts, job.lease_expires_at) == ("retrying", 3, None)
    assert job.last_error.startswith("database connection lost")
    assert timezone.now() < job.next_attempt_at <= timezone.now() + timedelta(seconds=60)
    assert control_panel.received == []
    assert ProvisioningJob.objects.get(pk=job.pk).attempt_log.get(number=3).error.startswith("database connection")

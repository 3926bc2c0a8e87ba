"""Two rules read "a job is stuck" and differ on purpose (provisioning/selectors.py): staff's (what a person should
look at: provisioning_job_waiting_too_long_q) and the sweeper's (what to send to the workers again:
provisioning_job_ids_to_send). These tests pin where they differ, and that staff's rule split by status for the lists
is the same rule."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from provisioning.models import ProvisioningAction, ProvisioningJob, ProvisioningJobStatus
from provisioning.selectors import (
    JOB_WAITING_TOO_LONG,
    provisioning_job_ids_abandoned_without_attempts,
    provisioning_job_ids_to_send,
    provisioning_job_waiting_too_long_by_status,
    provisioning_job_waiting_too_long_q,
)
from tests.accounts.factories import SubscriptionFactory
from tests.provisioning.factories import ProvisioningJobFactory

pytestmark = pytest.mark.django_db


def job_made(*, created_ago: timedelta, **fields) -> ProvisioningJob:
    """A job written `created_ago` (created_at is set on insert, so it is moved back afterwards)."""
    job = ProvisioningJobFactory(**fields)
    ProvisioningJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - created_ago)
    job.refresh_from_db()
    return job


def staff_see(now) -> set[int]:
    return set(
        ProvisioningJob.objects.filter(provisioning_job_waiting_too_long_q(now=now)).values_list("pk", flat=True)
    )


def sweeper_sends(now) -> set[int]:
    stale_before = now - timedelta(seconds=settings.PROVISIONING_OUTBOX_STALE_SECONDS)
    return set(provisioning_job_ids_to_send(now=now, stale_before=stale_before, limit=100))


def test_a_retry_due_two_hours_ago_and_just_sent_again_is_waiting_too_long_for_staff_and_not_sent_again():
    """The sweeper counts from its last send, staff from the due time: re-sending every sweep must not hide a job
    nobody has run for two hours. (Sent a third of the sweeper's wait ago, so that its message may still be in the
    queue: sent a minute ago, with the default 30 s wait, it would be sent again.)"""
    now = timezone.now()
    resent = now - timedelta(seconds=settings.PROVISIONING_OUTBOX_STALE_SECONDS / 3)
    retry = job_made(
        created_ago=timedelta(hours=3),
        status=ProvisioningJobStatus.RETRYING,
        attempts=1,
        next_attempt_at=now - timedelta(hours=2),
        enqueued_at=resent,
    )
    first = job_made(created_ago=timedelta(hours=2), status=ProvisioningJobStatus.PENDING, enqueued_at=resent)

    assert staff_see(now) == {retry.pk, first.pk}
    assert sweeper_sends(now) == set()


def test_a_job_abandoned_on_its_last_attempt_is_for_staff_and_failed_not_sent_by_the_sweeper():
    now = timezone.now()
    job = job_made(
        created_ago=timedelta(minutes=10),
        status=ProvisioningJobStatus.RUNNING,
        attempts=5,
        max_attempts=5,
        enqueued_at=now - timedelta(minutes=10),
        lease_expires_at=now - timedelta(seconds=1),
    )

    assert staff_see(now) == {job.pk}
    assert sweeper_sends(now) == set()
    assert provisioning_job_ids_abandoned_without_attempts(now=now, limit=100) == [job.pk]


def test_an_abandoned_job_with_attempts_left_is_in_both_rules():
    now = timezone.now()
    job = job_made(
        created_ago=timedelta(minutes=10),
        status=ProvisioningJobStatus.RUNNING,
        attempts=1,
        enqueued_at=now - timedelta(minutes=10),
        lease_expires_at=now - timedelta(seconds=1),
    )

    assert staff_see(now) == sweeper_sends(now) == {job.pk}
    assert provisioning_job_ids_abandoned_without_attempts(now=now, limit=100) == []


def test_a_job_queued_behind_a_running_one_for_long_is_for_staff_and_left_to_the_earlier_job_by_the_sweeper():
    now = timezone.now()
    subscription = SubscriptionFactory()
    job_made(
        created_ago=timedelta(hours=2),
        subscription=subscription,
        status=ProvisioningJobStatus.RUNNING,
        attempts=1,
        lease_expires_at=now + timedelta(minutes=1),
    )
    queued = job_made(
        created_ago=timedelta(hours=1),
        subscription=subscription,
        action=ProvisioningAction.SUSPEND,
        reason="Unpaid renewal",
        enqueued_at=None,
    )

    assert staff_see(now) == {queued.pk}
    assert sweeper_sends(now) == set()


def test_a_job_never_sent_is_sent_at_once_and_shown_to_staff_only_after_the_wait_staff_allow():
    now = timezone.now()
    minutes = JOB_WAITING_TOO_LONG / timedelta(minutes=1)
    recent = job_made(created_ago=timedelta(minutes=minutes - 1), enqueued_at=None)
    old = job_made(created_ago=timedelta(minutes=minutes + 1), enqueued_at=None)

    assert sweeper_sends(now) == {recent.pk, old.pk}
    assert staff_see(now) == {old.pk}


def test_staffs_rule_split_by_status_is_the_same_rule():
    """The lists read staff's rule one status at a time (an index range each); ORed, the parts are the rule."""
    now = timezone.now()
    long_ago, moments_ago = timedelta(hours=2), timedelta(minutes=1)
    for status in ProvisioningJobStatus.values:
        for created_ago in (long_ago, moments_ago):
            job_made(created_ago=created_ago, status=status)
            job_made(created_ago=created_ago, status=status, next_attempt_at=now - created_ago)
            job_made(created_ago=created_ago, status=status, next_attempt_at=now + moments_ago)
            job_made(created_ago=created_ago, status=status, lease_expires_at=now - moments_ago)
            job_made(created_ago=created_ago, status=status, lease_expires_at=now + moments_ago)

    parts = provisioning_job_waiting_too_long_by_status(now=now)
    by_status = set()
    for part in parts:
        by_status |= set(ProvisioningJob.objects.filter(part).values_list("pk", flat=True))

    assert by_status == staff_see(now)
    # Pending and retrying: recorded long ago with no due time (three: no lease, one run out, one live) or due long ago;
    # running: the two whose lease ran out.
    assert len(by_status) == 4 + 4 + 2

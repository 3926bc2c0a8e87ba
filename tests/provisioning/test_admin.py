"""Staff's pages: jobs with their attempts, e-mails that need a person, and the actions that act on them."""

import pytest
from django.urls import reverse

from accounts.models import User
from provisioning.models import EmailStatus, ProvisioningAttempt, ProvisioningJobStatus
from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser(email="staff@migrahosting.test", password="x"))
    return client


def test_a_job_page_shows_its_attempts(staff_client):
    job = ProvisioningJobFactory(status=ProvisioningJobStatus.RETRYING, attempts=1, last_error="panel down")
    ProvisioningAttempt.objects.create(job=job, number=1, started_at=job.created_at, error="panel down")

    page = staff_client.get(reverse("admin:provisioning_provisioningjob_change", args=[job.pk]))

    assert page.status_code == 200
    assert page.content.count(b"panel down") >= 2


def test_running_a_failed_job_again_from_the_list(staff_client, django_capture_on_commit_callbacks):
    job = ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED, attempts=5, max_attempts=5)

    with django_capture_on_commit_callbacks(execute=True):
        page = staff_client.post(reverse("admin:provisioning_provisioningjob_changelist"),
                                 {"action": "run_again", "_selected_action": [job.pk]}, follow=True)

    assert b"1 job(s) sent again" in page.content
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 6)


def test_the_needs_attention_filter_lists_failed_and_stuck_emails_only(staff_client):
    failed = EmailNotificationFactory(status=EmailStatus.FAILED, to="failed@example.com")
    EmailNotificationFactory(status=EmailStatus.SENT, to="sent@example.com")
    EmailNotificationFactory(status=EmailStatus.SENDING, to="sending-now@example.com")

    page = staff_client.get(reverse("admin:provisioning_emailnotification_changelist"), {"attention": "yes"})

    assert page.status_code == 200
    assert failed.to.encode() in page.content
    assert b"sent@example.com" not in page.content and b"sending-now@example.com" not in page.content

"""Staff's pages: jobs with their attempts and decisions, accounts with their status history, e-mails that need a
person, and the actions that act on them."""

import pytest
from django.urls import reverse

from accounts.models import User
from provisioning.models import (
    EmailStatus,
    HostingAccount,
    HostingAccountStatusChange,
    ProvisioningAttempt,
    ProvisioningJobStatus,
)
from tests.accounts.factories import UserFactory
from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory, provisioned_subscription

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
        page = staff_client.post(
            reverse("admin:provisioning_provisioningjob_changelist"),
            {"action": "run_again", "_selected_action": [job.pk]},
            follow=True,
        )

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


def test_the_job_list_shows_what_each_decision_is_and_who_took_it(staff_client):
    subscription = provisioned_subscription()
    staff = UserFactory(email="support@migrahosting.test")
    unsuspension = ProvisioningJobFactory(
        subscription=subscription, action="unsuspend", decision_key="unsuspend:in_1", reason="Invoice 1 was paid."
    )
    ProvisioningJobFactory(
        subscription=subscription,
        action="suspend",
        decision_key="staff:42",
        reason="Abuse report.",
        requested_by=staff,
        status=ProvisioningJobStatus.CANCELED,
        superseded_by=unsuspension,
    )

    page = staff_client.get(reverse("admin:provisioning_provisioningjob_changelist"), {"action__exact": "suspend"})

    assert page.status_code == 200
    content = page.content.decode()
    assert f"Abuse report. Asked by support@migrahosting.test. Overridden by {unsuspension}." in content
    assert "Invoice 1 was paid." not in content  # filtered out by action
    assert "staff:42" not in content  # a decision's key is on the job's page (next test), not in the list


def test_a_decision_jobs_page_shows_its_decision(staff_client):
    job = ProvisioningJobFactory(action="terminate", decision_key="refund:re_1", reason="Refunded in full.")

    page = staff_client.get(reverse("admin:provisioning_provisioningjob_change", args=[job.pk]))

    assert page.status_code == 200
    assert b"refund:re_1" in page.content and b"Refunded in full." in page.content and b"Terminate" in page.content


def test_an_accounts_page_shows_its_status_and_history_read_only(staff_client):
    subscription = provisioned_subscription()
    account = HostingAccount.objects.get(subscription=subscription)
    job = ProvisioningJobFactory(subscription=subscription, action="suspend", status="succeeded")
    HostingAccount.objects.filter(pk=account.pk).update(status="suspended")
    HostingAccountStatusChange.objects.create(
        account=account,
        from_status="active",
        to_status="suspended",
        job=job,
        reason="Invoice 1 unpaid 5 days after it failed.",
    )

    page = staff_client.get(reverse("admin:provisioning_hostingaccount_change", args=[account.pk]))

    assert page.status_code == 200
    content = page.content.decode()
    assert "Invoice 1 unpaid 5 days after it failed." in content and "Suspended" in content
    assert 'name="status"' not in content  # no field to set it by hand
    assert 'name="status_changes-0-reason"' not in content


def _listed_ids(page) -> set[int]:
    return {row.pk for row in page.context["cl"].result_list}


@pytest.mark.parametrize("term", ["shop.example", "WWW.Shop.Example", "shop.ex", "ushop"])
def test_the_job_and_account_lists_find_a_service_as_the_subscription_list_does(staff_client, term):
    shop = provisioned_subscription("shop.example")
    shop.hosting_account.username = "ushop01"
    shop.hosting_account.save(update_fields=["username"])
    provisioned_subscription("other.example")

    jobs = staff_client.get(reverse("admin:provisioning_provisioningjob_changelist"), {"q": term})
    accounts = staff_client.get(reverse("admin:provisioning_hostingaccount_changelist"), {"q": term})

    assert _listed_ids(jobs) == set(shop.provisioning_jobs.values_list("pk", flat=True))
    assert _listed_ids(accounts) == {shop.hosting_account.pk}


def test_the_job_list_finds_a_job_by_its_id_and_the_email_list_by_its_exact_recipient(staff_client):
    job = ProvisioningJobFactory()
    ProvisioningJobFactory()
    wanted = EmailNotificationFactory(to="ada@example.com")
    EmailNotificationFactory(to="ada@example.com.evil.test")

    jobs = staff_client.get(reverse("admin:provisioning_provisioningjob_changelist"), {"q": str(job.pk)})
    emails = staff_client.get(reverse("admin:provisioning_emailnotification_changelist"), {"q": "ada@example.com"})

    assert _listed_ids(jobs) == {job.pk}
    assert _listed_ids(emails) == {wanted.pk}

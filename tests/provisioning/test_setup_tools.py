"""Support's setup tools on a provisioning job (provisioning.support, the job page's buttons): retry with a fresh
allowance, fix the domain or plan and run again, mark as set up by hand, run now. Each: what it does, its line in
the admin log (on the job and on the order), the state it refuses, a double submit acting once, and who may use it.
"""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from billing.selectors import provisioning_failures_heading_for_refund
from checkout.models import CheckoutSession
from provisioning.models import (
    EmailNotification,
    EmailPurpose,
    HostingAccount,
    ProvisioningAttempt,
    ProvisioningJob,
    ProvisioningJobStatus,
)
from provisioning.outbox import provisioning_job_enqueue
from provisioning.selectors import provisioning_job_attempts_text
from provisioning.support import setup_details, setup_job_run_now
from tests.backoffice.conftest import (  # noqa: F401 (fixtures)
    billing_agent,
    billing_client,
    catalog_client,
    catalog_manager,
    staff_groups,
    superuser,
    support_agent,
    support_client,
)
from tests.catalog.factories import ProductFactory
from tests.provisioning.factories import (
    HostingAccountFactory,
    ProvisioningJobFactory,
    provisioned_subscription,
    subscription_for_domain,
)

pytestmark = pytest.mark.django_db

FAILED, PENDING, RETRYING = ProvisioningJobStatus.FAILED, ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RETRYING


def failed_setup(domain: str = "reject.example.com", *, attempts: int = 2, **job_fields) -> ProvisioningJob:
    """A setup that failed for good after `attempts` attempts (all in its log), as the issue's example: 2 of 2."""
    now = timezone.now()
    job = ProvisioningJobFactory(
        subscription=subscription_for_domain(domain),
        status=FAILED,
        attempts=attempts,
        max_attempts=attempts,
        last_error="simulated refusal",
        finished_at=now,
        **job_fields,
    )
    for number in range(1, attempts + 1):
        ProvisioningAttempt.objects.create(
            job=job,
            number=number,
            started_at=now - timedelta(minutes=10 - number),
            finished_at=now - timedelta(minutes=10 - number),
            error="simulated refusal",
        )
    return job


def tool_url(job: ProvisioningJob, tool: str) -> str:
    return reverse("admin:provisioning_provisioningjob_setup", args=[job.pk, tool])


def job_page(job: ProvisioningJob) -> str:
    return reverse("admin:provisioning_provisioningjob_change", args=[job.pk])


def log_lines(obj) -> list[str]:
    return list(
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk))
        .order_by("pk")
        .values_list("change_message", flat=True)
    )


def messages_of(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def enqueued_job_ids(callbacks) -> list[int]:
    return [
        callback.keywords["job_id"]
        for callback in callbacks
        if getattr(callback, "func", None) is provisioning_job_enqueue
    ]


# --- Retry: a fresh allowance ---------------------------------------------------------------------------------------


def test_retry_gives_a_fresh_allowance_and_keeps_the_attempt_history(
    support_client, support_agent, django_capture_on_commit_callbacks
):
    job = failed_setup(attempts=2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = support_client.post(tool_url(job, "retry"), follow=True)

    assert "attempt 1 of 5 comes next (2 earlier attempt(s) kept" in messages_of(response)
    assert enqueued_job_ids(callbacks) == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.allowance_attempts_before, job.allowance, job.attempts_in_allowance) == (
        PENDING,
        2,
        2,
        5,
        0,
    )
    assert job.allowance_granted_by == support_agent and job.allowance_granted_at is not None
    assert provisioning_job_attempts_text(job=job).startswith("0 of 5 attempts since support retried it at ")
    assert job.attempt_log.count() == 2
    [line] = log_lines(job)
    assert line.startswith("Retry with a fresh allowance: Job #") and "fresh allowance" in line
    assert log_lines(job.subscription.checkout_session) == [line]  # the order's timeline shows it too


def test_the_allowance_counts_from_the_retry_not_from_the_first_attempt(
    support_client, django_capture_on_commit_callbacks
):
    # Attempts 1 to 3 fail (the simulated panel), so after 2 earlier failures the retry fails once and then succeeds.
    job = failed_setup("fail-3-times.example.com", attempts=2)

    with django_capture_on_commit_callbacks(execute=True):
        support_client.post(tool_url(job, "retry"))

    job.refresh_from_db()
    assert (job.status, job.attempts, job.attempts_in_allowance, job.allowance) == ("succeeded", 4, 2, 5)
    text = provisioning_job_attempts_text(job=job)
    assert text.startswith("2 of 5 attempts since support retried it at ") and text.endswith("(4 in all)")
    page = support_client.get(job_page(job)).content.decode()
    assert "2 of 5 attempts since support retried it" in page
    assert "3 of 7" not in page and "4 of 10" not in page


def test_the_subscription_page_counts_attempts_from_the_retry_too(support_client, django_capture_on_commit_callbacks):
    job = failed_setup("fail-3-times.example.com", attempts=2)
    with django_capture_on_commit_callbacks(execute=True):
        support_client.post(tool_url(job, "retry"))

    page = support_client.get(reverse("admin:accounts_subscription_change", args=[job.subscription_id]))

    cell = re.search(r'data-label="Attempts">(.*?)</td>', page.content.decode(), re.DOTALL).group(1)
    assert cell.startswith("2 / 5") and "4 in all" in cell


def test_a_retry_that_fails_again_fails_after_a_whole_new_allowance(support_client, django_capture_on_commit_callbacks):
    job = failed_setup("always-fail.example.com", attempts=2)

    with django_capture_on_commit_callbacks(execute=True):
        support_client.post(tool_url(job, "retry"))

    job.refresh_from_db()
    assert (job.status, job.attempts, job.attempts_in_allowance, job.allowance) == (FAILED, 7, 5, 5)
    assert job.attempt_log.count() == 7


def test_retry_clicked_twice_sends_the_job_once_and_says_who_did(
    support_client, support_agent, django_capture_on_commit_callbacks
):
    job = failed_setup(attempts=2)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        support_client.post(tool_url(job, "retry"))
        second = support_client.post(tool_url(job, "retry"), follow=True)

    assert enqueued_job_ids(callbacks) == [job.pk]
    assert f"it was already sent again by {support_agent.email} at" in messages_of(second)
    job.refresh_from_db()
    assert (job.max_attempts, job.allowance_attempts_before) == (7, 2)
    assert len(log_lines(job)) == 2 and "Not sent again" in log_lines(job)[1]


def test_retry_refuses_a_job_that_succeeded(support_client):
    subscription = provisioned_subscription()
    job = subscription.provisioning_jobs.get()

    response = support_client.post(tool_url(job, "retry"), follow=True)

    assert f"Job #{job.pk} has already succeeded" in messages_of(response)
    assert "nothing to retry" in messages_of(response)
    job.refresh_from_db()
    assert (job.status, job.allowance_granted_at) == ("succeeded", None)


def test_retry_refuses_the_setup_of_a_subscription_that_ended(support_client):
    job = failed_setup()
    job.subscription.status = "canceled"
    job.subscription.save()

    response = support_client.post(tool_url(job, "retry"), follow=True)

    assert "The subscription has ended (canceled)" in messages_of(response)
    job.refresh_from_db()
    assert job.status == FAILED


def test_the_order_pages_retry_button_gives_the_same_fresh_allowance(
    support_client, django_capture_on_commit_callbacks
):
    job = failed_setup(attempts=2)
    session = job.subscription.checkout_session

    with django_capture_on_commit_callbacks(execute=False):
        support_client.post(
            reverse("admin:checkout_checkoutsession_support", args=[session.pk, "retry_job"]), {"job": job.pk}
        )

    job.refresh_from_db()
    assert (job.status, job.allowance_attempts_before, job.allowance) == (PENDING, 2, 5)


# --- Fix and run again ------------------------------------------------------------------------------------------------


def test_fix_normalises_the_domain_as_the_checkout_does_and_runs_the_setup_again(
    support_client, support_agent, django_capture_on_commit_callbacks
):
    job = failed_setup("reject.example.com", attempts=1)
    subscription = job.subscription
    form = support_client.get(tool_url(job, "fix"))
    assert form.status_code == 200
    assert form.context["form"].initial["domain"] == "reject.example.com"
    seen = form.context["form"].initial["seen"]

    with django_capture_on_commit_callbacks(execute=True):
        response = support_client.post(
            tool_url(job, "fix"),
            {
                "domain": " Bücher.Example. ",
                "product_code": subscription.product.code,
                "billing_cycle": subscription.billing_cycle,
                "seen": seen,
                "note": "typo in the order",
            },
            follow=True,
        )

    assert "domain: reject.example.com → xn--bcher-kva.example" in messages_of(response)
    subscription.refresh_from_db()
    job.refresh_from_db()
    assert subscription.domain == "xn--bcher-kva.example"
    # The order keeps what the customer typed.
    assert CheckoutSession.objects.get(pk=subscription.checkout_session_id).domain_info["value"] == "reject.example.com"
    assert (job.status, job.attempts, job.attempts_in_allowance, job.allowance_granted_by) == (
        "succeeded",
        2,
        1,
        support_agent,
    )
    assert HostingAccount.objects.get(subscription=subscription).domain == "xn--bcher-kva.example"
    [line] = log_lines(job)
    assert line.startswith("Fix and run again: Setup fixed (domain: reject.example.com → xn--bcher-kva.example)")
    assert "Note: typo in the order" in line
    assert log_lines(subscription.checkout_session) == [line]


def test_fix_sends_the_plan_chosen_for_the_panel_and_leaves_billing_alone(
    support_client, control_panel, django_capture_on_commit_callbacks
):
    job = failed_setup("example.com", attempts=5, backend="http")
    subscription = job.subscription
    bigger = ProductFactory(code="business-panel")
    seen = setup_details(job=job).fingerprint

    with django_capture_on_commit_callbacks(execute=True):
        response = support_client.post(
            tool_url(job, "fix"),
            {"domain": "example.com", "product_code": bigger.code, "billing_cycle": "yearly", "seen": seen},
            follow=True,
        )

    assert (
        f"plan for the panel: {subscription.product.code} / {subscription.billing_cycle} → business-panel / "
        "yearly" in messages_of(response)
    )
    [received] = control_panel.received
    assert (received.json["product_code"], received.json["billing_cycle"]) == ("business-panel", "yearly")
    job.refresh_from_db()
    subscription.refresh_from_db()
    assert job.status == "succeeded" and job.parameters == {"product_code": "business-panel", "billing_cycle": "yearly"}
    assert subscription.product.code != "business-panel"  # Stripe still bills the plan sold
    page = support_client.get(job_page(job)).content.decode()
    assert "business-panel / yearly" in page and f"billed as {subscription.product.code}" in page


def test_fix_of_a_setup_whose_plan_was_retired_keeps_that_plan_on_offer(
    support_client, django_capture_on_commit_callbacks
):
    job = failed_setup()
    product = job.subscription.product
    product.active = False
    product.save()
    form = support_client.get(tool_url(job, "fix")).context["form"]
    assert product.code in dict(form.fields["product_code"].choices)

    with django_capture_on_commit_callbacks(execute=False):
        response = support_client.post(
            tool_url(job, "fix"),
            {
                "domain": "fixed.example.com",
                "product_code": product.code,
                "billing_cycle": job.subscription.billing_cycle,
                "seen": setup_details(job=job).fingerprint,
            },
            follow=True,
        )

    assert "domain: reject.example.com → fixed.example.com" in messages_of(response)
    job.refresh_from_db()
    assert (job.status, job.parameters) == (PENDING, {})


def test_fix_refuses_a_plan_that_is_not_in_the_catalog(support_client):
    job = failed_setup()
    retired = ProductFactory(code="retired-plan", active=False)

    response = support_client.post(
        tool_url(job, "fix"),
        {
            "domain": "fixed.example.com",
            "product_code": retired.code,
            "billing_cycle": job.subscription.billing_cycle,
            "seen": setup_details(job=job).fingerprint,
        },
    )

    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    job.refresh_from_db()
    assert job.status == FAILED


def test_fix_refuses_a_domain_the_checkout_would_refuse_and_changes_nothing(support_client):
    job = failed_setup()
    seen = setup_details(job=job).fingerprint

    response = support_client.post(
        tool_url(job, "fix"),
        {
            "domain": "ab\u200bcd.com",
            "product_code": job.subscription.product.code,
            "billing_cycle": job.subscription.billing_cycle,
            "seen": seen,
        },
    )

    assert response.status_code == 200
    assert "invisible or a control character" in response.content.decode()
    job.refresh_from_db()
    assert (job.status, job.subscription.domain) == (FAILED, "reject.example.com")
    assert log_lines(job) == []


def test_fix_submitted_twice_acts_once(support_client, django_capture_on_commit_callbacks):
    job = failed_setup()
    data = {
        "domain": "fixed.example.com",
        "product_code": job.subscription.product.code,
        "billing_cycle": job.subscription.billing_cycle,
        "seen": setup_details(job=job).fingerprint,
    }

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        support_client.post(tool_url(job, "fix"), data)
        second = support_client.post(tool_url(job, "fix"), data, follow=True)

    assert enqueued_job_ids(callbacks) == [job.pk]
    assert "Someone changed this setup since the form was shown: it now asks for fixed.example.com" in messages_of(
        second
    )
    job.refresh_from_db()
    assert job.max_attempts == 7  # one fresh allowance, not two


def test_fix_with_nothing_changed_does_nothing(support_client):
    job = failed_setup()
    details = setup_details(job=job)

    response = support_client.post(
        tool_url(job, "fix"),
        {
            "domain": details.domain,
            "product_code": details.product_code,
            "billing_cycle": details.billing_cycle,
            "seen": details.fingerprint,
        },
        follow=True,
    )

    assert "Nothing changed" in messages_of(response)
    job.refresh_from_db()
    assert job.status == FAILED


@pytest.mark.parametrize("status", ["succeeded", "running", "canceled"])
def test_fix_refuses_a_setup_that_is_not_failing(support_client, status):
    job = failed_setup()
    ProvisioningJob.objects.filter(pk=job.pk).update(
        status=status, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    details = setup_details(job=job)

    response = support_client.post(
        tool_url(job, "fix"),
        {
            "domain": "other.example.com",
            "product_code": details.product_code,
            "billing_cycle": details.billing_cycle,
            "seen": details.fingerprint,
        },
        follow=True,
    )

    assert "there is no failed setup to fix" in messages_of(response)
    job.subscription.refresh_from_db()
    assert job.subscription.domain == "reject.example.com"


def test_fix_refuses_a_decision_job(support_client):
    subscription = provisioned_subscription()
    job = ProvisioningJobFactory(subscription=subscription, action="suspend", decision_key="staff:1", status=FAILED)
    details = setup_details(job=job)

    response = support_client.post(
        tool_url(job, "fix"),
        {
            "domain": "other.example.com",
            "product_code": details.product_code,
            "billing_cycle": details.billing_cycle,
            "seen": details.fingerprint,
        },
        follow=True,
    )

    assert "only a setup's domain and plan can be fixed" in messages_of(response)


# --- Set up by hand ---------------------------------------------------------------------------------------------------


def test_marking_as_set_up_by_hand_records_the_account_and_sends_service_ready_once(
    support_client, support_agent, django_capture_on_commit_callbacks
):
    job = failed_setup("reject.example.com")
    subscription = job.subscription

    with django_capture_on_commit_callbacks(execute=True):
        response = support_client.post(
            tool_url(job, "by-hand"),
            {
                "username": " Reject42 ",
                "server": "web09.panel.example",
                "panel_reference": "acct-77",
                "note": "made in cPanel",
            },
            follow=True,
        )
        again = support_client.post(
            tool_url(job, "by-hand"), {"username": "reject42", "server": "web09.panel.example"}, follow=True
        )

    assert "marked as set up by hand (failed before): account reject42@web09.panel.example recorded" in messages_of(
        response
    )
    assert f"was already marked as set up by hand by {support_agent.email}" in messages_of(again)
    job.refresh_from_db()
    assert job.status == "done_by_hand" and job.get_status_display() == "Set up by hand"
    assert job.result["username"] == "reject42" and job.result["by"] == support_agent.email
    assert job.attempt_log.count() == 2 and not job.attempt_log.filter(succeeded=True).exists()
    account = HostingAccount.objects.get(subscription=subscription)
    assert (account.username, account.server, account.domain, account.panel_reference, account.set_up_by) == (
        "reject42",
        "web09.panel.example",
        "reject.example.com",
        "acct-77",
        support_agent,
    )
    ready = EmailNotification.objects.get(
        checkout_session=subscription.checkout_session, purpose=EmailPurpose.SERVICE_READY
    )
    assert ready.status == "sent"
    assert [message.to for message in mail.outbox] == [[subscription.customer.email]]
    assert "reject42" in mail.outbox[0].body
    lines = log_lines(job)
    assert len(lines) == 2 and lines[0].startswith("Mark as set up by hand: Job #")
    assert "Note: made in cPanel" in lines[0]
    # No longer a failed setup: the automatic refund leaves it alone.
    assert not provisioning_failures_heading_for_refund().filter(pk=job.pk).exists()


def test_set_up_by_hand_refuses_a_username_that_is_not_a_panel_username(support_client):
    job = failed_setup()

    response = support_client.post(tool_url(job, "by-hand"), {"username": "ja ne", "server": "web01.example.net"})

    assert response.status_code == 200
    assert "starting with a letter" in response.content.decode()
    job.refresh_from_db()
    assert job.status == FAILED and not HostingAccount.objects.filter(subscription=job.subscription).exists()


def test_set_up_by_hand_refuses_a_username_another_live_account_holds_on_that_server(support_client):
    other = HostingAccountFactory(username="taken1", server="web01.example.net")
    job = failed_setup()

    response = support_client.post(tool_url(job, "by-hand"), {"username": "taken1", "server": "web01.example.net"})

    assert response.status_code == 200
    assert (
        f"taken1 on web01.example.net is already the account of {other.subscription.customer}"
        in response.content.decode()
    )
    assert not HostingAccount.objects.filter(subscription=job.subscription).exists()


def test_set_up_by_hand_refuses_a_job_a_worker_is_running(support_client):
    job = failed_setup()
    ProvisioningJob.objects.filter(pk=job.pk).update(
        status="running", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )

    response = support_client.post(
        tool_url(job, "by-hand"), {"username": "site1", "server": "web01.example.net"}, follow=True
    )

    assert "A worker is running job" in messages_of(response)
    assert not HostingAccount.objects.filter(subscription=job.subscription).exists()


# --- Run now ----------------------------------------------------------------------------------------------------------


def test_run_now_makes_a_retrying_job_due_now_and_enqueues_it_after_commit(
    support_client, django_capture_on_commit_callbacks
):
    due = timezone.now() + timedelta(minutes=10)
    job = failed_setup("fail-1-times.example.com", attempts=1)
    ProvisioningJob.objects.filter(pk=job.pk).update(
        status=RETRYING, max_attempts=5, next_attempt_at=due, finished_at=None
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        before = timezone.now()
        response = support_client.post(tool_url(job, "run-now"), follow=True)

    assert "made due now and sent to the workers" in messages_of(response)
    assert enqueued_job_ids(callbacks) == [job.pk]
    job.refresh_from_db()
    assert before <= job.next_attempt_at <= timezone.now() and job.status == RETRYING
    [line] = log_lines(job)
    assert line.startswith("Run now: Job #")

    for callback in callbacks:  # what the worker does with the task: the job is due, so it is claimed and run
        callback()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)


def test_run_now_clicked_twice_sends_one_task(django_capture_on_commit_callbacks):
    job = ProvisioningJobFactory(status=RETRYING, attempts=1, next_attempt_at=timezone.now() + timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = setup_job_run_now(job_id=job.pk, by=None)
        second = setup_job_run_now(job_id=job.pk, by=None)

    assert first.done and not second.done
    assert "Not sent again" in second.message
    assert enqueued_job_ids(callbacks) == [job.pk]


def test_run_now_sends_again_a_due_job_whose_task_went_out_long_ago(django_capture_on_commit_callbacks):
    long_ago = timezone.now() - timedelta(minutes=10)
    job = ProvisioningJobFactory(status=PENDING, enqueued_at=long_ago)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = setup_job_run_now(job_id=job.pk, by=None)

    assert outcome.done and "sent to the workers again" in outcome.message
    assert enqueued_job_ids(callbacks) == [job.pk]


def test_run_now_leaves_a_job_a_worker_holds_alone(django_capture_on_commit_callbacks):
    lease = timezone.now() + timedelta(minutes=4)
    job = ProvisioningJobFactory(status="running", attempts=1, lease_expires_at=lease)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = setup_job_run_now(job_id=job.pk, by=None)

    assert not outcome.done and "A worker is running job" in outcome.message
    assert callbacks == []
    job.refresh_from_db()
    assert (job.status, job.lease_expires_at, job.attempts) == ("running", lease, 1)


def test_run_now_takes_over_a_job_whose_worker_died(django_capture_on_commit_callbacks):
    job = ProvisioningJobFactory(status="running", attempts=1, lease_expires_at=timezone.now() - timedelta(minutes=1))

    with django_capture_on_commit_callbacks(execute=True):
        outcome = setup_job_run_now(job_id=job.pk, by=None)

    assert outcome.done and "lease ended" in outcome.message
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)


@pytest.mark.parametrize(
    "status, expected",
    [("failed", "Use Retry"), ("succeeded", "has already succeeded"), ("canceled", "canceled by a later decision")],
)
def test_run_now_refuses_a_job_that_is_not_waiting(status, expected, django_capture_on_commit_callbacks):
    job = ProvisioningJobFactory(status=status, attempts=5)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = setup_job_run_now(job_id=job.pk, by=None)

    assert not outcome.done and expected in outcome.message
    assert callbacks == []


def test_run_now_refuses_a_job_queued_behind_an_earlier_one():
    subscription = provisioned_subscription()
    first = ProvisioningJobFactory(
        subscription=subscription,
        action="suspend",
        decision_key="s:1",
        status=RETRYING,
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )
    second = ProvisioningJobFactory(subscription=subscription, action="unsuspend", decision_key="u:1")

    outcome = setup_job_run_now(job_id=second.pk, by=None)

    assert not outcome.done and f"waits for job #{first.pk} (Suspend, retrying)" in outcome.message


# --- Who may use them -------------------------------------------------------------------------------------------------

TOOLS = ["retry", "fix", "by-hand", "run-now"]


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("who", ["catalog_client", "billing_client"])
def test_other_groups_get_403_from_each_tool(request, who, tool):
    client = request.getfixturevalue(who)
    job = failed_setup()

    assert client.post(tool_url(job, tool), {"username": "x1", "server": "web01.example.net"}).status_code == 403
    if tool in ("fix", "by-hand"):
        assert client.get(tool_url(job, tool)).status_code == 403
    job.refresh_from_db()
    assert job.status == FAILED and log_lines(job) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_non_staff_are_sent_to_the_login_page(client, tool):
    job = failed_setup()
    client.force_login(User.objects.create_user(email="customer@example.com", password="x"))

    response = client.post(tool_url(job, tool))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    job.refresh_from_db()
    assert job.status == FAILED


@pytest.mark.parametrize("who", ["support_client", "superuser"])
@pytest.mark.parametrize("tool", TOOLS)
def test_support_and_superusers_may_use_each_tool(request, client, who, tool, django_capture_on_commit_callbacks):
    if who == "superuser":
        client.force_login(request.getfixturevalue("superuser"))
    else:
        client = request.getfixturevalue(who)
    job = failed_setup()
    if tool == "run-now":
        ProvisioningJob.objects.filter(pk=job.pk).update(
            status=RETRYING, max_attempts=5, next_attempt_at=timezone.now() + timedelta(minutes=5)
        )
    data = {
        "retry": {},
        "run-now": {},
        "fix": {
            "domain": "fixed.example.com",
            "product_code": job.subscription.product.code,
            "billing_cycle": job.subscription.billing_cycle,
            "seen": setup_details(job=job).fingerprint,
        },
        "by-hand": {"username": "site1", "server": "web01.example.net"},
    }[tool]

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(tool_url(job, tool), data)

    assert response.status_code == 302 and response["Location"] == job_page(job)
    job.refresh_from_db()
    assert job.status in (PENDING, RETRYING, "done_by_hand") and len(log_lines(job)) == 1


@pytest.mark.parametrize("tool", ["retry", "run-now"])
def test_the_one_click_tools_answer_405_to_a_get(support_client, tool):
    job = failed_setup()

    assert support_client.get(tool_url(job, tool)).status_code == 405
    job.refresh_from_db()
    assert job.status == FAILED


# --- Where support finds them -----------------------------------------------------------------------------------------


def test_the_job_page_offers_the_tools_that_apply_and_reads_its_attempts(support_client, django_assert_max_num_queries):
    job = failed_setup(attempts=8)

    with django_assert_max_num_queries(10):  # as many with 2 attempts: no query per attempt row
        page = support_client.get(job_page(job))

    content = page.content.decode()
    assert page.status_code == 200
    for tool in ("retry", "fix", "by-hand"):
        assert f'id="tool-{tool}"' in content
    assert 'id="tool-run-now"' not in content  # a failed job has no attempt left to run now
    assert "8 of 8 attempts" in content and "simulated refusal" in content
    assert f"Attempt 1 of job #{job.pk}: failed" in content and f"Attempt 8 of job #{job.pk}: failed" in content
    assert "ProvisioningAttempt object" not in content


def test_the_job_page_counts_attempts_before_the_retry_apart(support_client, django_capture_on_commit_callbacks):
    job = failed_setup("fail-3-times.example.com", attempts=2)
    with django_capture_on_commit_callbacks(execute=True):
        support_client.post(tool_url(job, "retry"))

    content = support_client.get(job_page(job)).content.decode()

    assert content.count("before support&#x27;s retry") == 2
    assert "1 of 5" in content and "2 of 5" in content


def test_billing_staff_see_the_job_page_without_tools(billing_client):
    job = failed_setup()

    content = billing_client.get(job_page(job)).content.decode()

    assert 'id="setup-tools"' in content and 'id="setup-actions"' not in content


def test_the_order_page_of_a_failed_setup_links_to_the_jobs_tools(client, support_agent, billing_agent):
    job = failed_setup()
    order = reverse("admin:checkout_checkoutsession_change", args=[job.subscription.checkout_session_id])

    client.force_login(support_agent)
    content = client.get(order).content.decode()
    client.force_login(billing_agent)
    for_billing = client.get(order).content.decode()

    assert f'id="setup-tools-{job.pk}"' in content and f"{job_page(job)}#setup-tools" in content
    assert f'id="setup-tools-{job.pk}"' not in for_billing


# --- Two staff at once --------------------------------------------------------------------------------------------------


def _at_once(*calls):
    """Run the calls in threads released together, each on its own database connection; their results in order."""
    import threading

    from django.db import connection

    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_staff_marking_one_setup_by_hand_at_once_record_one_account():
    from provisioning.support import setup_mark_done_by_hand

    job = failed_setup()
    first, second = _at_once(
        lambda: setup_mark_done_by_hand(
            job_id=job.pk, username="alice1", server="web01.example.net", panel_reference="", by=None
        ),
        lambda: setup_mark_done_by_hand(
            job_id=job.pk, username="bob1", server="web02.example.net", panel_reference="", by=None
        ),
    )

    assert sorted([first.done, second.done]) == [False, True], (first, second)
    loser = first if not first.done else second
    assert "already marked as set up by hand" in loser.message
    assert HostingAccount.objects.filter(subscription=job.subscription).count() == 1
    assert (
        EmailNotification.objects.filter(
            checkout_session=job.subscription.checkout_session, purpose=EmailPurpose.SERVICE_READY
        ).count()
        == 1
    )


@pytest.mark.django_db(transaction=True)
def test_two_staff_retrying_one_job_at_once_give_it_one_fresh_allowance(unreachable_broker, caplog):
    from provisioning.support import setup_job_retry

    job = failed_setup("always-fail.example.com", attempts=2)

    def retry():
        unreachable_broker.set_current()  # Celery's current app is per thread
        return setup_job_retry(job_id=job.pk, by=None)

    first, second = _at_once(retry, retry)

    assert sorted([first.done, second.done]) == [False, True], (first, second)
    # One task sent (to a broker that is down, so the job stays as the retry left it).
    sends = [record for record in caplog.records if f"provisioning.job_run({job.pk}) not sent" in record.getMessage()]
    assert len(sends) == 1
    job.refresh_from_db()
    assert (job.status, job.max_attempts, job.allowance_attempts_before) == (PENDING, 7, 2)

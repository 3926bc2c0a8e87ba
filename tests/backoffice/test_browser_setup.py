"""Support's setup tools in a real browser (headless Chromium through Playwright, against pytest-django's live server,
tasks in-process): from an order whose setup failed, support opens the job's tools, corrects the domain the panel
refused and runs the setup again, which succeeds; on another order they record an account made by hand in the
control panel. Each page is photographed at 1440 and 390 px (artifacts/setup-*.png) and checked with axe-core."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import BROWSER_TEST_MARKS, CheckedPages, admin_log_in

pytestmark = BROWSER_TEST_MARKS


def failed_setup(email: str, domain: str):
    """A paid order whose setup the (simulated) panel refused twice."""
    from provisioning.models import ProvisioningAttempt, ProvisioningJobStatus
    from tests.provisioning.factories import ProvisioningJobFactory, subscription_for_domain

    now = timezone.now()
    subscription = subscription_for_domain(
        domain,
        checkout_session__email=email,
        checkout_session__status="completed",
        checkout_session__completed_at=now - timedelta(minutes=20),
    )
    job = ProvisioningJobFactory(
        subscription=subscription,
        status=ProvisioningJobStatus.FAILED,
        attempts=2,
        max_attempts=2,
        finished_at=now - timedelta(minutes=5),
        last_error="simulated refusal: the panel rejected the order",
    )
    for number in (1, 2):
        ProvisioningAttempt.objects.create(
            job=job,
            number=number,
            started_at=now - timedelta(minutes=10 - number),
            finished_at=now - timedelta(minutes=10 - number),
            error="simulated refusal: the panel rejected the order",
        )
    return job


@pytest.mark.parametrize("width", [1440, 390])
def test_support_fixes_a_failed_setup_and_marks_another_as_set_up_by_hand(chromium, live_server, support_agent, width):
    from django.core import mail

    from provisioning.models import HostingAccount, ProvisioningJob

    refused = failed_setup("wrong.domain@example.com", "reject.example.com")
    by_hand = failed_setup("made.by.hand@example.com", "reject-me.example.org")
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    pages = CheckedPages(page, width, prefix="setup")
    admin_log_in(page, live_server, support_agent.email)

    # The order whose setup failed links to its job's tools.
    page.goto(f"{live_server.url}/admin/checkout/checkoutsession/{refused.subscription.checkout_session_id}/change/")
    page.wait_for_selector("#order-timeline")
    pages.look("order-failed")
    page.click(f"#setup-tools-{refused.pk}")
    page.wait_for_selector("#setup-tools")
    assert "Failed" in page.inner_text("#job-status")
    assert page.inner_text("#job-attempts") == "2 of 2 attempts"
    assert "the panel rejected the order" in page.inner_text("#job-last-error")
    pages.look("job-failed")

    # Fix the domain: a typo is refused with the checkout's words, then the right name is normalised and run.
    page.click("#tool-fix")
    page.wait_for_selector("#setup-tool-form")
    assert page.input_value("#id_domain") == "reject.example.com"
    page.fill("#id_domain", "shop example.com")
    page.click("#confirm")
    page.wait_for_selector(".errorlist")
    assert "Not a valid domain name" in page.inner_text("#setup-tool-form")
    pages.look("fix-refused")
    page.fill("#id_domain", "Bücher-Shop.example")
    page.fill("#id_note", "The customer meant their shop's domain.")
    page.click("#confirm")
    page.wait_for_selector(".messagelist")
    banner = page.inner_text(".messagelist")
    assert "domain: reject.example.com → xn--bcher-shop-9db.example" in banner
    assert "fresh allowance: attempt 1 of 5" in banner
    assert "Succeeded" in page.inner_text("#job-status")
    assert page.inner_text("#job-attempts").startswith("1 of 5 attempts since support retried it at ")
    assert page.inner_text("#setup-domain") == "xn--bcher-shop-9db.example"
    assert "@web" in page.inner_text("#setup-account")  # the account the panel made
    pages.look("fixed-and-run")
    refused = ProvisioningJob.objects.get(pk=refused.pk)
    assert (refused.status, refused.attempts) == ("succeeded", 3)

    # The other order: the account was made in the control panel by hand.
    page.goto(f"{live_server.url}/admin/provisioning/provisioningjob/{by_hand.pk}/change/")
    page.wait_for_selector("#setup-tools")
    page.click("#tool-by-hand")
    page.wait_for_selector("#setup-tool-form")
    pages.look("by-hand-form")
    page.fill("#id_username", "rejectme1")
    page.fill("#id_server", "web07.panel.example")
    page.fill("#id_note", "Created in the panel while its API was down.")
    page.click("#confirm")
    page.wait_for_selector(".messagelist")
    assert "marked as set up by hand" in page.inner_text(".messagelist")
    assert "Set up by hand" in page.inner_text("#job-status")
    assert "rejectme1@web07.panel.example (set up by hand)" in page.inner_text("#setup-account")
    assert page.locator("#setup-actions").count() == 0  # nothing left to do on it
    pages.look("set-up-by-hand")
    account = HostingAccount.objects.get(subscription_id=by_hand.subscription_id)
    assert (account.username, account.set_up_by_id) == ("rejectme1", support_agent.pk)
    ready = [message for message in mail.outbox if "made.by.hand@example.com" in message.to]
    assert len(ready) == 1 and "rejectme1" in ready[0].body

    # The order's timeline says what support did, once.
    page.goto(f"{live_server.url}/admin/checkout/checkoutsession/{by_hand.subscription.checkout_session_id}/change/")
    page.wait_for_selector("#order-timeline")
    timeline = page.inner_text("#order-timeline")
    assert timeline.count("Mark as set up by hand: Job #") == 1
    assert f"setup-tools-{by_hand.pk}" not in page.content()
    pages.look("order-after")
    pages.assert_accessible()

"""The back office in a real browser (headless Chromium through Playwright), against pytest-django's live server:
a catalog manager changes a price and the next checkout uses it; support finds an order by e-mail, reads its
timeline and retries its failed provisioning job; billing staff refund part of an invoice from a subscription page,
on a desktop and a phone-sized screen. Screenshots go to artifacts/.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import ARTIFACTS, BROWSER_TEST_MARKS, admin_log_in

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture
def browser_page(chromium):
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(20_000)
    return page


def test_a_catalog_manager_changes_a_price_and_the_next_checkout_uses_it(
    browser_page, live_server, catalog_manager, stripe_sandbox
):
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from catalog.models import Price
    from checkout.models import CheckoutSession

    call_command("catalog_load", verbosity=0)
    page = browser_page
    admin_log_in(page, live_server, catalog_manager.email)
    page.click("text=Products")
    page.click("a:text-is('starter')")
    monthly = Price.objects.get(product__code="starter", billing_cycle="monthly", active=True)
    row = page.locator("tr.has_original", has=page.locator(f"input[name$='-id'][value='{monthly.pk}']"))
    amount = row.locator("input[name$='-unit_amount']")
    assert amount.input_value() == "7.99"
    amount.fill("8.49")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    assert "was changed successfully" in page.inner_text(".messagelist")

    response = APIClient().post(
        "/api/checkout/create-session",
        {
            "planId": "starter",
            "billingCycle": "monthly",
            "trialActive": False,
            "customer": {"name": "Next Customer", "email": "next@example.com"},
        },
        format="json",
    )

    assert response.status_code in (200, 201), response.content
    session = CheckoutSession.objects.get(email="next@example.com")
    assert session.amount == 849
    sent = stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")[-1]
    assert "849" in json.dumps(sent)


def test_support_finds_an_order_reads_its_timeline_and_retries_provisioning(browser_page, live_server, support_agent):
    from djstripe.models import Event, WebhookEventTrigger

    from provisioning.models import EmailStatus, ProvisioningAttempt, ProvisioningJob, ProvisioningJobStatus
    from tests.checkout.factories import CheckoutSessionFactory
    from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory

    for n in range(5):
        CheckoutSessionFactory(email=f"other{n}@example.com")
    now = timezone.now()
    job = ProvisioningJobFactory(
        status=ProvisioningJobStatus.FAILED,
        attempts=3,
        max_attempts=3,
        last_error="simulated failure 3 of 3",
        finished_at=now,
        subscription__stripe_subscription_id="sub_test_browser01",
        subscription__checkout_session__email="paid.but.waiting@example.com",
        subscription__checkout_session__status="completed",
        subscription__checkout_session__completed_at=now,
        subscription__checkout_session__domain_info={"mode": "new-or-transfer", "value": "fail-3-times.example.com"},
    )
    session = job.subscription.checkout_session
    for number in (1, 2, 3):
        ProvisioningAttempt.objects.create(
            job=job,
            number=number,
            started_at=now + timedelta(seconds=number),
            finished_at=now + timedelta(seconds=number, milliseconds=300),
            error=f"simulated failure {number} of 3",
        )
    event = Event.objects.create(
        id="evt_test_browser01",
        type="checkout.session.completed",
        livemode=False,
        data={"object": {"id": session.stripe_session_id}},
    )
    WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1",
        headers={},
        valid=True,
        processed=True,
        event=event,
        body=json.dumps({"id": event.id, "type": event.type, "data": {"object": {"id": session.stripe_session_id}}}),
    )
    EmailNotificationFactory(
        checkout_session=session, purpose="order_confirmation", status=EmailStatus.SENT, sent_at=now
    )

    page = browser_page
    admin_log_in(page, live_server, support_agent.email)
    page.screenshot(path=str(ARTIFACTS / "backoffice-dashboard.png"), full_page=True)
    page.click("#content-main a:text-is('Checkout sessions')")
    page.fill("#searchbar", "paid.but.waiting@example.com")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    page.click("#result_list tbody tr th a")
    page.wait_for_selector("#order-timeline")
    timeline = page.inner_text("#order-timeline")
    assert "Stripe event checkout.session.completed" in timeline
    assert "attempt 3 failed" in timeline
    page.screenshot(path=str(ARTIFACTS / "backoffice-timeline.png"), full_page=True)

    page.click(f"#retry-job-{job.pk}")
    page.wait_for_selector(".messagelist")

    assert "sent again" in page.inner_text(".messagelist")
    job = ProvisioningJob.objects.get(pk=job.pk)
    assert (job.status, job.attempts) == ("succeeded", 4)
    assert "attempt 4 succeeded" in page.inner_text("#order-timeline")
    page.screenshot(path=str(ARTIFACTS / "backoffice-timeline-after-retry.png"), full_page=True)


@pytest.mark.parametrize("width", [1440, 390])
def test_billing_staff_refund_part_of_an_invoice_from_the_subscription_page(
    browser_page, live_server, billing_agent, stripe_sandbox, width
):
    from billing.models import BillingAction
    from tests.backoffice.billing_fixtures import sandbox_subscription

    subscription = sandbox_subscription()
    invoice = subscription.invoices.get()
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    admin_log_in(page, live_server, billing_agent.email)
    page.goto(f"{live_server.url}/admin/accounts/subscription/{subscription.pk}/change/")
    page.wait_for_selector("#subscription-billing")
    assert "Active" in page.inner_text("#subscription-status")
    assert page.locator("#billing-actions a").count() == 4  # cancel at period end, cancel now, suspend, terminate
    page.screenshot(path=str(ARTIFACTS / f"backoffice-subscription-{width}.png"), full_page=True)

    page.click(f"#refund-{invoice.pk}")
    page.wait_for_selector("#billing-action-form")
    assert "terminates the hosting account" in page.inner_text("#consequences")
    page.check("input[name=scope][value=partial]")
    page.fill("input[name=amount]", "2.50")
    page.click("#confirm")  # no reason yet
    page.wait_for_selector(".errorlist")
    page.fill("textarea[name=reason]", "Goodwill: two days of downtime (ticket 812)")
    page.screenshot(path=str(ARTIFACTS / f"backoffice-refund-form-{width}.png"), full_page=True)
    page.click("#confirm")
    page.wait_for_selector(".messagelist")

    assert "Refund $2.50 USD: done." in page.inner_text(".messagelist")
    assert "$5.49 USD left" in page.inner_text("#invoices")
    assert BillingAction.objects.get().reason == "Goodwill: two days of downtime (ticket 812)"
    page.screenshot(path=str(ARTIFACTS / f"backoffice-subscription-after-refund-{width}.png"), full_page=True)

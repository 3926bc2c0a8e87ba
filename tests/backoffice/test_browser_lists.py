"""The back office's lists and their filters in a real browser (headless Chromium), at 1440 and 390 px: support
narrows the provisioning job list to what needs a person, by status and by action, and the subscription list by
billing cycle, and reads a retried job's attempts on the subscription page; billing narrows invoices by billing
reason and refunds by status. Each click must list exactly the rows the filter names. Screenshots go to
artifacts/h4-*.png; axe-core checks each page."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import BROWSER_TEST_MARKS, CheckedPages, admin_log_in

pytestmark = BROWSER_TEST_MARKS

WIDTHS = [1440, 390]


def open_page(chromium, live_server, user, width):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    admin_log_in(page, live_server, user.email)
    return page, CheckedPages(page, width, prefix="h4")


def click_filter(page, title: str, choice: str) -> None:
    """Click one choice of one filter (two filters may offer the same word: "Failed") and wait for its page."""
    section = f"#changelist-filter details[data-filter-title='{title}']"
    page.click(f"{section} a:text-is('{choice}')")
    page.wait_for_selector(f"{section} li.selected a:text-is('{choice}')")


def listed(page, column: str) -> set[str]:
    return {text.strip() for text in page.locator(f"#result_list tbody tr .field-{column}").all_inner_texts()}


def table_cut_off(page) -> int:
    """How many pixels of the list's table are out of view, to the right of its scrolling box."""
    return page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results');"
        " return r ? r.scrollWidth - r.clientWidth : 0; })()"
    )


def page_scrolls_sideways(page) -> int:
    """How many pixels the page itself (not a table in its own scrolling box) is wider than the window."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def laid_out_for(page, width: int) -> None:
    """The list fits its window: on a desktop the whole table is in view, on a phone the page never scrolls
    sideways (the table scrolls in its own box, as the admin's do) and the filters come before the rows, not after
    a page of them."""
    assert page_scrolls_sideways(page) == 0
    if width >= 1440:
        assert table_cut_off(page) == 0
    else:
        filters, rows = (page.locator(selector).bounding_box() for selector in ("#changelist-filter", "#result_list"))
        assert filters["y"] + filters["height"] <= rows["y"]


# --- Provisioning jobs ----------------------------------------------------------------------------------------------


def jobs_of_every_kind(support_agent) -> dict[str, object]:
    """One job per case the filters tell apart, each on its own subscription (a subscription has one setup)."""
    from provisioning.models import ProvisioningAttempt, ProvisioningJob
    from tests.provisioning.factories import ProvisioningJobFactory, subscription_for_domain

    now = timezone.now()
    minutes = timedelta(minutes=1)
    cases = {
        # name: (fields, minutes ago it was recorded)
        "failed": (
            {"status": "failed", "attempts": 5, "last_error": "simulated refusal 5 of 5", "finished_at": now},
            180,
        ),
        "retried": (
            {
                "status": "succeeded",
                "attempts": 4,
                "max_attempts": 7,
                "allowance_attempts_before": 2,
                "allowance_granted_at": now - 60 * minutes,
                "allowance_granted_by": support_agent,
                "finished_at": now - 50 * minutes,
            },
            300,
        ),
        "pending-stale": ({"status": "pending"}, 120),  # never sent: waiting over 30 minutes
        "pending-new": ({"status": "pending"}, 2),
        "retrying-overdue": ({"status": "retrying", "attempts": 1, "next_attempt_at": now - 45 * minutes}, 120),
        "retrying-soon": ({"status": "retrying", "attempts": 1, "next_attempt_at": now + 5 * minutes}, 10),
        "running-lost": ({"status": "running", "attempts": 1, "lease_expires_at": now - 10 * minutes}, 60),
        "running": ({"status": "running", "attempts": 1, "lease_expires_at": now + 5 * minutes}, 3),
        "by-hand": ({"status": "done_by_hand", "attempts": 5, "finished_at": now - 20 * minutes}, 240),
    }
    jobs = {}
    for name, (fields, ago) in cases.items():
        subscription = subscription_for_domain(f"{name}.example.com", checkout_session__email=f"{name}@shop.example")
        jobs[name] = ProvisioningJobFactory(subscription=subscription, **fields)
        ProvisioningJob.objects.filter(pk=jobs[name].pk).update(created_at=now - ago * minutes)
    for number in range(1, 5):
        ProvisioningAttempt.objects.create(
            job=jobs["retried"],
            number=number,
            started_at=now - (90 - number) * minutes,
            finished_at=now - (90 - number) * minutes,
            succeeded=number == 4,
            error="" if number == 4 else f"simulated refusal {number}",
        )
    # Billing's decisions on the retried job's service: a suspension carried out, a later one overridden.
    for name, status, ago in (("suspend", "succeeded", 30), ("suspend-canceled", "canceled", 20)):
        jobs[name] = ProvisioningJobFactory(
            subscription=jobs["retried"].subscription,
            action="suspend",
            status=status,
            decision_key=f"suspend:in_test_{name}",
            reason="Invoice unpaid for 14 days",
        )
        ProvisioningJob.objects.filter(pk=jobs[name].pk).update(created_at=now - ago * minutes)
    return jobs


@pytest.mark.parametrize("width", WIDTHS)
def test_support_narrows_the_job_list_to_what_needs_a_person_by_status_and_by_action(
    chromium, live_server, support_agent, width
):
    jobs = jobs_of_every_kind(support_agent)
    ids = {name: str(job.pk) for name, job in jobs.items()}
    page, pages = open_page(chromium, live_server, support_agent, width)
    job_list = f"{live_server.url}/admin/provisioning/provisioningjob/"

    page.goto(job_list)
    assert listed(page, "id") == set(ids.values())
    titles = page.locator("#changelist-filter details").evaluate_all("nodes => nodes.map(n => n.dataset.filterTitle)")
    assert titles == ["needs a person", "action", "status"]  # no backend filter
    laid_out_for(page, width)
    pages.look("jobs")

    click_filter(page, "needs a person", "Failed")
    assert listed(page, "id") == {ids["failed"]}
    pages.look("jobs-failed")

    page.goto(job_list)
    click_filter(page, "needs a person", "Waiting over 30 min")
    assert listed(page, "id") == {ids["pending-stale"], ids["retrying-overdue"], ids["running-lost"]}
    pages.look("jobs-waiting")

    statuses = {
        "Pending": ["pending-stale", "pending-new"],
        "Running": ["running-lost", "running"],
        "Retrying": ["retrying-overdue", "retrying-soon"],
        "Succeeded": ["retried", "suspend"],
        "Failed": ["failed"],
        "Canceled": ["suspend-canceled"],
        "Set up by hand": ["by-hand"],
    }
    for label, names in statuses.items():
        page.goto(job_list)
        click_filter(page, "status", label)
        assert listed(page, "id") == {ids[name] for name in names}, label
    pages.look("jobs-status-set-up-by-hand")

    suspensions = {"suspend", "suspend-canceled"}
    actions = {
        "Provision": set(ids) - suspensions,
        "Suspend": suspensions,
        "Unsuspend": set(),
        "Terminate": set(),
        "Change plan": set(),
    }
    for label, names in actions.items():
        page.goto(job_list)
        click_filter(page, "action", label)
        assert listed(page, "id") == {ids[name] for name in names}, label
    page.goto(job_list)
    click_filter(page, "action", "Suspend")
    pages.look("jobs-action-suspend")

    # The retried job's row counts its attempts from support's retry, as its page does.
    page.goto(job_list)
    row = page.locator("#result_list tbody tr", has=page.locator(f".field-id a:text-is('{ids['retried']}')"))
    attempts = row.locator(".field-attempts_summary").inner_text()
    assert attempts.startswith("2 of 5 attempts since support retried it at ") and attempts.endswith("(4 in all)")
    pages.assert_accessible()


# --- Subscriptions and the attempts cell of the subscription page ---------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_support_narrows_subscriptions_by_billing_cycle_and_reads_a_retried_jobs_attempts(
    chromium, live_server, support_agent, width
):
    from provisioning.models import ProvisioningAttempt, ProvisioningJob
    from tests.accounts.factories import SubscriptionFactory
    from tests.catalog.factories import PriceFactory
    from tests.provisioning.factories import ProvisioningJobFactory

    monthly = PriceFactory(product__name="Business Hosting", billing_cycle="monthly", unit_amount=1299)
    yearly = PriceFactory(product__name="Starter Hosting", billing_cycle="yearly", unit_amount=7900)
    emails = {
        "monthly": ["ann@acme.example", "bob@bakery.example"],
        "yearly": ["cleo@studio.example"],
    }
    prices = {"monthly": monthly, "yearly": yearly}
    subscriptions = {
        email: SubscriptionFactory(
            checkout_session__price=prices[cycle],
            checkout_session__email=email,
            checkout_session__domain_info={"value": email.split("@")[1]},
        )
        for cycle, addresses in emails.items()
        for email in addresses
    }
    now = timezone.now()
    retried = ProvisioningJobFactory(
        subscription=subscriptions["ann@acme.example"],
        status="succeeded",
        attempts=4,
        max_attempts=7,
        allowance_attempts_before=2,
        allowance_granted_at=now - timedelta(hours=1),
        allowance_granted_by=support_agent,
        finished_at=now - timedelta(minutes=50),
    )
    ProvisioningJob.objects.filter(pk=retried.pk).update(created_at=now - timedelta(hours=5))
    for number in range(1, 5):
        ProvisioningAttempt.objects.create(
            job=retried,
            number=number,
            started_at=now - timedelta(minutes=90 - number),
            finished_at=now - timedelta(minutes=90 - number),
            succeeded=number == 4,
            error="" if number == 4 else f"simulated refusal {number}",
        )
    page, pages = open_page(chromium, live_server, support_agent, width)
    subscription_list = f"{live_server.url}/admin/accounts/subscription/"

    page.goto(subscription_list)
    assert listed(page, "customer_email") == set(subscriptions)
    laid_out_for(page, width)
    pages.look("subscriptions")
    for label, cycle in (("Monthly", "monthly"), ("Yearly", "yearly")):
        page.goto(subscription_list)
        click_filter(page, "billing cycle", label)
        assert "billing_cycle__exact=" + cycle in page.url
        assert listed(page, "customer_email") == set(emails[cycle]), label
        pages.look(f"subscriptions-{cycle}")
    page.goto(subscription_list)
    click_filter(page, "billing cycle", "Biennial (2 years)")
    assert listed(page, "customer_email") == set()

    page.goto(f"{live_server.url}/admin/accounts/subscription/{retried.subscription_id}/change/")
    cell = page.locator("#jobs tbody tr td[data-label='Attempts']")
    assert cell.inner_text().startswith("2 / 5")
    assert cell.locator(".bo-quiet").inner_text() == "since support's retry; 4 in all"
    assert cell.is_visible()
    assert page_scrolls_sideways(page) == 0
    cell.scroll_into_view_if_needed()
    pages.look("subscription-retried-job")
    pages.assert_accessible()


# --- Billing's lists: invoices by billing reason, refunds by status ---------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_billing_narrows_invoices_by_billing_reason_and_refunds_by_status(chromium, live_server, billing_agent, width):
    from billing.models import RefundRecord, SubscriptionInvoice
    from tests.accounts.factories import SubscriptionFactory

    now = timezone.now()
    subscription = SubscriptionFactory(checkout_session__email="dana@garden.example", amount=1299)
    reasons = {"subscription_create": ["GARDEN-0001"], "subscription_cycle": ["GARDEN-0002", "GARDEN-0003"]}
    for reason, numbers in reasons.items():
        for number in numbers:
            SubscriptionInvoice.objects.create(
                subscription=subscription,
                stripe_invoice_id=f"in_test_{number.lower().replace('-', '')}",
                number=number,
                billing_reason=reason,
                status="paid",
                amount_due=1299,
                amount_paid=1299,
                currency="usd",
                attempt_count=1,
                paid_at=now,
                stripe_created=now,
                stripe_state_at=now,
            )
    refund_statuses = {"succeeded": ["re_test_goodwill01", "re_test_downtime02"], "pending": ["re_test_pending03"]}
    for status, refund_ids in refund_statuses.items():
        for refund_id in refund_ids:
            RefundRecord.objects.create(
                subscription=subscription,
                stripe_refund_id=refund_id,
                amount=250,
                currency="usd",
                status=status,
                reason="requested_by_customer",
                stripe_payment_intent_id="pi_test_garden",
                stripe_charge_id="ch_test_garden",
                stripe_created=now,
            )
    page, pages = open_page(chromium, live_server, billing_agent, width)
    invoice_list = f"{live_server.url}/admin/billing/subscriptioninvoice/"
    refund_list = f"{live_server.url}/admin/billing/refundrecord/"

    page.goto(invoice_list)
    assert listed(page, "invoice_label") == {"GARDEN-0001", "GARDEN-0002", "GARDEN-0003"}
    assert page.locator("#changelist-filter a:text-is('Show counts')").count() == 0  # a COUNT per choice
    laid_out_for(page, width)
    pages.look("invoices")
    for label, reason in (("First invoice", "subscription_create"), ("Renewal", "subscription_cycle")):
        page.goto(invoice_list)
        click_filter(page, "billing reason", label)
        assert "billing_reason__exact=" + reason in page.url
        assert listed(page, "invoice_label") == set(reasons[reason]), label
        assert listed(page, "billing_reason_label") == {label}  # the cell says it as the filter does
    pages.look("invoices-renewal")

    page.goto(refund_list)
    assert listed(page, "stripe_refund_id") == {"re_test_goodwill01", "re_test_downtime02", "re_test_pending03"}
    laid_out_for(page, width)
    pages.look("refunds")
    for label, status in (("Succeeded", "succeeded"), ("Pending", "pending")):
        page.goto(refund_list)
        click_filter(page, "status", label)
        assert "status__exact=" + status in page.url
        assert listed(page, "stripe_refund_id") == set(refund_statuses[status]), label
        assert listed(page, "status_label") == {label}
    pages.look("refunds-pending")
    pages.assert_accessible()


# --- Orders and customers: the lists support starts from --------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_the_order_and_customer_lists_fit_a_desktop_and_put_their_filters_first_on_a_phone(
    chromium, live_server, support_agent, width
):
    from tests.accounts.factories import CustomerFactory
    from tests.checkout.factories import CheckoutSessionFactory

    for n in range(3):
        CheckoutSessionFactory(
            email=f"shopper{n}@garden.example", domain_info={"mode": "new", "value": f"g{n}.example"}
        )
        CustomerFactory(name=f"Garden Shopper {n}", email=f"shopper{n}@garden.example")
    page, pages = open_page(chromium, live_server, support_agent, width)

    for name, url in (("orders", "checkout/checkoutsession"), ("customers", "accounts/customer")):
        page.goto(f"{live_server.url}/admin/{url}/")
        assert len(page.locator("#result_list tbody tr").all()) == 3, name
        laid_out_for(page, width)
        pages.look(name)
    pages.assert_accessible()

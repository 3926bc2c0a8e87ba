"""Exports and the audit log in a real browser (headless Chromium), at 1440 and 390 px: support filters the order
list, exports it and gets exactly the filtered rows; a superuser opens the audit log from the index and narrows it
to one person. Screenshots go to artifacts/export-*.png; axe-core checks each page."""

import csv
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from tests.browser import BROWSER_TEST_MARKS, CheckedPages, admin_log_in

pytestmark = BROWSER_TEST_MARKS


@pytest.mark.parametrize("width", [1440, 390])
def test_support_exports_the_filtered_order_list(chromium, live_server, support_agent, width):
    from tests.catalog.factories import PriceFactory
    from tests.checkout.factories import CheckoutSessionFactory

    price = PriceFactory(product__name="Business Hosting", unit_amount=1299)
    completed = [
        CheckoutSessionFactory(
            price=price,
            status="completed",
            email=f"paid{n}@shop.example",
            customer_name="=1+1" if n == 0 else f"Paid {n}",
            amount=1299,
            domain_info={"value": f"shop{n}.example"},
        )
        for n in range(3)
    ]
    CheckoutSessionFactory.create_batch(2, price=price, status="pending")
    page = chromium.new_page(viewport={"width": width, "height": 900}, accept_downloads=True)
    page.set_default_timeout(20_000)
    pages = CheckedPages(page, width, prefix="export")
    admin_log_in(page, live_server, support_agent.email)

    page.goto(f"{live_server.url}/admin/checkout/checkoutsession/")
    page.click("#changelist-filter a:text-is('Completed')")
    page.wait_for_url("**status__exact=completed**")
    assert page.locator("#result_list tbody tr").count() == 3
    export = page.locator("#export-csv")
    assert export.is_visible()
    assert "status__exact=completed" in export.get_attribute("href")
    pages.look("orders-filtered")
    with page.expect_download() as info:
        export.click()
    download = info.value

    assert download.suggested_filename.startswith("orders-") and download.suggested_filename.endswith("Z.csv")
    with open(download.path(), encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["Order ID"] for row in rows) == sorted(str(session.pk) for session in completed)
    assert {row["Status"] for row in rows} == {"Completed"}
    assert {row["Plan"] for row in rows} == {"Business Hosting"}
    assert {(row["Amount"], row["Currency"]) for row in rows} == {("12.99", "USD")}
    assert "'=1+1" in {row["Name"] for row in rows}
    entry = LogEntry.objects.get(action_flag=4)
    assert entry.user == support_agent and "filters: ?status__exact=completed; 3 rows" in entry.change_message
    pages.assert_accessible()


@pytest.mark.parametrize("width", [1440, 390])
def test_a_superuser_reads_the_audit_log_of_one_person(
    chromium, live_server, superuser, support_agent, billing_agent, width
):
    from accounts.models import Subscription
    from checkout.models import CheckoutSession
    from tests.accounts.factories import SubscriptionFactory

    subscription = SubscriptionFactory(checkout_session__email="ann@acme.example", domain="acme.example")
    session = subscription.checkout_session
    now = timezone.now()
    for n, (user, obj, message) in enumerate(
        [
            (
                support_agent,
                session,
                "Retry provisioning: Provisioning job #12 sent again with a fresh allowance of attempts.",
            ),
            (
                billing_agent,
                subscription,
                "Refund: done $2.50 USD (reason: Goodwill: two days of downtime, ticket 812)",
            ),
            (support_agent, session, "Resend set-password e-mail: Set-password e-mail sent again to ann@acme.example."),
            (billing_agent, subscription, "Cancel at period end: done (reason: customer asked by phone)"),
        ]
    ):
        entry = LogEntry.objects.create(
            user=user,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            object_repr=str(obj),
            action_flag=CHANGE,
            change_message=message,
        )
        LogEntry.objects.filter(pk=entry.pk).update(action_time=now - timedelta(minutes=10 * n))
    assert Subscription.objects.count() == 1 and CheckoutSession.objects.count() == 1
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    pages = CheckedPages(page, width, prefix="export")
    admin_log_in(page, live_server, superuser.email)

    page.click("#audit-log-link a")
    page.wait_for_selector("#audit-log")
    assert page.locator("#audit-log tbody tr").count() == 4
    pages.look("audit-log")
    page.select_option("#id_person", str(billing_agent.pk))
    page.click("#audit-apply")
    page.wait_for_url(f"**person={billing_agent.pk}**")

    rows = page.locator("#audit-log tbody tr")
    assert rows.count() == 2
    text = page.inner_text("#audit-log")
    assert "Refund" in text and "Cancel at period end" in text and "Retry provisioning" not in text
    assert billing_agent.email in text
    pages.look("audit-log-person")
    page.click("#audit-log tbody tr >> nth=0 >> .bo-object a")
    page.wait_for_url(f"**/admin/accounts/subscription/{subscription.pk}/change/")
    pages.assert_accessible()

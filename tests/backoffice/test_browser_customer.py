"""The customer page in a real browser (headless Chromium through Playwright) against pytest-django's live server:
support opens an order, follows its Customer link, adds a pinned note, goes back to the order and sees the note
there. The customer page is photographed at 1440 and 390 px (artifacts/customer-*.png) and checked with axe-core:
no serious or critical violations."""

from backoffice.models import StaffNote
from tests.backoffice.test_customer_page import billing_records, jane  # noqa: F401 (jane: a fixture, used by name)
from tests.browser import BROWSER_TEST_MARKS, CheckedPages, admin_log_in

pytestmark = BROWSER_TEST_MARKS

NOTE = "Disputed the May charge <b>by phone</b>.\nTalk to billing before any refund."


def test_support_pins_a_note_from_an_order_and_sees_it_back_on_the_order(chromium, live_server, support_agent, jane):
    shop = jane.subscriptions.get(domain="janes-shop.example")
    StaffNote.objects.create(
        customer=jane, author=support_agent, author_name="Earlier Agent", body="Prefers e-mail over phone."
    )
    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(20_000)
    wide = CheckedPages(page, 1440, prefix="customer")
    admin_log_in(page, live_server, support_agent.email)

    # The order: no pinned note yet; its Customer link leads to the customer page.
    page.goto(f"{live_server.url}/admin/checkout/checkoutsession/{shop.checkout_session_id}/change/")
    page.wait_for_selector("#order-timeline")
    assert page.locator("#pinned-notes").count() == 0
    page.click("#order-timeline .bo-related a:text-is('Customer')")
    page.wait_for_selector("#customer-page")
    assert page.locator("#customer-services tbody tr").count() == 3
    assert "Suspended" in page.inner_text("#customer-services")
    wide.look("page")

    # A pinned note, sent twice by an impatient double click: one note.
    page.fill("#id_body", NOTE)
    page.check("#id_pinned")
    page.dblclick("#note-add")
    page.wait_for_selector(".messagelist")
    assert StaffNote.objects.filter(customer=jane, pinned=True).count() == 1
    assert "Note added and pinned." in page.inner_text(".messagelist")
    note_text = page.inner_text("#customer-notes")
    assert "Disputed the May charge <b>by phone</b>." in note_text  # shown as typed, not as HTML
    wide.look("note-pinned")

    # Back to the order: the banner with the note, and a link to the customer.
    page.go_back()
    page.go_back()
    page.reload()
    page.wait_for_selector("#pinned-notes")
    banner = page.inner_text("#pinned-notes")
    assert "Disputed the May charge <b>by phone</b>." in banner and "Talk to billing before any refund." in banner
    assert support_agent.email in banner  # who wrote it (the agent has no full name)
    wide.look("order-with-pinned-note")

    # The same pages on a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    narrow = CheckedPages(page, 390, prefix="customer")
    narrow.look("order-with-pinned-note")
    page.click("#pinned-notes a")
    page.wait_for_selector("#customer-page")
    narrow.look("page")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the customer page scrolls sideways by {overflow}px at 390 px"

    wide.assert_accessible()
    narrow.assert_accessible()

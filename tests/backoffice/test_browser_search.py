"""The search box and Needs attention in a real browser (headless Chromium through Playwright) against pytest-django's
live server, as support uses them: the box in the header of every page, the results page, the order list with its
Status column in view, a failed setup's banner on its order, the dashboard's counts. Photographed at 1440 and 390 px
(artifacts/search-*.png) and checked with axe-core: no serious or critical violations."""

from backoffice.attention import SETUP_FAILED
from tests.backoffice.test_attention import troubles  # noqa: F401 (fixtures, used by name)
from tests.backoffice.test_global_search import jane  # noqa: F401
from tests.browser import BROWSER_TEST_MARKS, CheckedPages, admin_log_in

pytestmark = BROWSER_TEST_MARKS


def inside_viewport(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]


def sideways_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def walk(page, live_server, checked: CheckedPages, failed_order) -> None:
    # The dashboard: the box in the header, the counts of what needs attention.
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#bo-search-q")
    assert inside_viewport(page, "#bo-search-q") and inside_viewport(page, "#bo-global-search button")
    counts = page.inner_text(".bo-attention-counts")
    assert "1 setup failed" in counts and "1 payment held for review" in counts
    assert sideways_overflow(page) <= 0, "the dashboard scrolls sideways"
    checked.look("dashboard")

    # A search typed in the box: the results page, grouped by kind.
    page.fill("#bo-search-q", "jane")
    page.press("#bo-search-q", "Enter")
    page.wait_for_selector("#search-results")
    assert page.locator("#search-customers tbody tr").count() >= 1
    assert "Jane Doe" in page.inner_text("#search-orders")
    assert page.input_value("#bo-search-q") == "jane"
    assert sideways_overflow(page) <= 0, "the results page scrolls sideways"
    checked.look("results")

    # The order list: the Status column in view without scrolling; a failed setup says so.
    page.goto(f"{live_server.url}/admin/checkout/checkoutsession/")
    page.wait_for_selector("#result_list")
    assert inside_viewport(page, "#result_list th.column-status_label")
    assert "Paid — setup failed" in page.inner_text("#result_list")
    checked.look("order-list")

    # The order whose setup failed: the banner at the top, with the way to the setup tools.
    page.goto(f"{live_server.url}/admin/checkout/checkoutsession/{failed_order.pk}/change/")
    page.wait_for_selector("#needs-attention")
    banner = page.inner_text("#needs-attention")
    assert "Paid, but the setup failed" in banner and "panel said no" in banner
    assert inside_viewport(page, "#needs-attention")
    checked.look("order-banner")


def test_support_searches_from_the_header_and_sees_what_needs_attention(
    chromium, live_server, support_agent, jane, troubles
):
    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(20_000)
    admin_log_in(page, live_server, support_agent.email)

    wide = CheckedPages(page, 1440, prefix="search")
    walk(page, live_server, wide, troubles[SETUP_FAILED])
    # At 1440 px the box sits in the header's top row, beside the site's name.
    header = page.locator("#header").bounding_box()
    assert page.locator("#bo-search-q").bounding_box()["y"] < header["y"] + 60

    page.set_viewport_size({"width": 390, "height": 844})
    narrow = CheckedPages(page, 390, prefix="search")
    walk(page, live_server, narrow, troubles[SETUP_FAILED])

    wide.assert_accessible()
    narrow.assert_accessible()


def test_one_exact_stripe_id_in_the_box_opens_the_order(chromium, live_server, support_agent, jane):
    page = chromium.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(20_000)
    admin_log_in(page, live_server, support_agent.email)

    page.fill("#bo-search-q", "  cs_test_a1janeorder ")
    page.press("#bo-search-q", "Enter")
    page.wait_for_selector("#order-timeline")

    assert f"/admin/checkout/checkoutsession/{jane['session'].pk}/change/" in page.url

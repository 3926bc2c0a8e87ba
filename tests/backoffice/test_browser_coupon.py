"""The coupon form in a real browser (headless Chromium), at 1440 and 390 px: a catalog manager gives a coupon both a
percentage and an amount off, reads the model's rule as the form's error, keeps what was typed, corrects it, ticks
the one plan it is for and saves. Screenshots go to artifacts/coupon-*.png; axe-core checks each page."""

import pytest

from catalog.models import Coupon
from tests.browser import BROWSER_TEST_MARKS, CheckedPages, admin_log_in
from tests.catalog.factories import ProductFactory

pytestmark = BROWSER_TEST_MARKS


@pytest.mark.parametrize("width", [1440, 390])
def test_a_coupon_breaking_a_rule_is_refused_with_the_rule_then_saved_once_corrected(
    chromium, live_server, catalog_manager, width
):
    ProductFactory(name="Shared Hosting Basic")
    wordpress = ProductFactory(name="WordPress Starter")
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    pages = CheckedPages(page, width, prefix="coupon")
    admin_log_in(page, live_server, catalog_manager.email)

    page.goto(f"{live_server.url}/admin/catalog/coupon/add/")
    page.fill("#id_code", "SPRING")
    page.fill("#id_percent_off", "20")
    page.fill("#id_amount_off", "5.00")
    page.click("input[name=_save]")

    error = page.locator(".errornote, .errorlist.nonfield").first
    error.wait_for()
    assert "Give a percentage or an amount off: one of them, not both." in page.locator("#content").inner_text()
    assert page.input_value("#id_code") == "SPRING" and page.input_value("#id_amount_off") == "5.00"
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    pages.look("refused")
    assert not Coupon.objects.exists()

    page.fill("#id_amount_off", "")
    page.get_by_label("WordPress Starter").check()
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    pages.look("saved")

    coupon = Coupon.objects.get()
    assert (coupon.code, coupon.percent_off, coupon.amount_off) == ("SPRING", 20, None)
    assert list(coupon.products.all()) == [wordpress]
    pages.assert_accessible()

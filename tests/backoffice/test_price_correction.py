"""The price correction trap (issue 9, point 1): after saving a price that orders used, staff land on the price that
is on sale; the banner says exactly what changed; a change of more than 50 % asks for confirmation; a retired price
that orders used cannot be edited into a state the banner does not describe."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from catalog.models import Price
from tests.browser import ARTIFACTS, BROWSER_TEST_MARKS, admin_log_in
from tests.catalog.factories import PriceFactory
from tests.checkout.factories import CheckoutSessionFactory

pytestmark = pytest.mark.django_db


def price_form(price: Price, **changes) -> dict:
    data = {
        "unit_amount": f"{price.unit_amount / 100:.2f}",
        "active": "on" if price.active else "",
        "trial_days": price.trial_days or "",
    }
    return {**data, **changes}


def banner(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def used_price(db):
    price = PriceFactory(unit_amount=799, product__name="Starter", product__code="starter")
    CheckoutSessionFactory(price=price)
    return price


def test_save_and_continue_on_a_used_price_lands_on_the_price_now_on_sale(catalog_client, used_price):
    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]),
        price_form(used_price, unit_amount="8.49", _continue="1"),
    )

    on_sale = Price.objects.get(product=used_price.product, active=True)
    assert on_sale.pk != used_price.pk and on_sale.unit_amount == 849
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:catalog_price_change", args=[on_sale.pk])
    page = catalog_client.get(response["Location"]).content.decode()
    assert re.search(r'<input type="checkbox" name="active"[^>]* checked>', page) and 'value="8.49"' in page


def test_the_banner_says_old_amount_new_amount_which_row_was_retired_and_which_is_on_sale(catalog_client, used_price):
    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]),
        price_form(used_price, unit_amount="8.49", _continue="1"),
    )

    on_sale = Price.objects.get(product=used_price.product, active=True)
    assert banner(response) == [
        f"Starter monthly USD: $7.99 USD → $8.49 USD. Price #{used_price.pk} was used by orders: retired and kept "
        f"as sold. Price #{on_sale.pk} is now on sale at $8.49 USD."
    ]


def test_correcting_the_amount_on_the_retired_row_is_refused_and_creates_no_inactive_price(catalog_client, used_price):
    """The trap itself: before, this made a new inactive price while the banner said "on sale"."""
    catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]), price_form(used_price, unit_amount="8.49")
    )
    used_price.refresh_from_db()
    assert used_price.active is False

    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]), price_form(used_price, unit_amount="8.99")
    )

    assert sorted(Price.objects.filter(product=used_price.product).values_list("unit_amount", "active")) == [
        (799, False),
        (849, True),
    ]
    page = catalog_client.get(reverse("admin:catalog_price_change", args=[used_price.pk])).content.decode()
    on_sale = Price.objects.get(product=used_price.product, active=True)
    assert response.status_code in (200, 302)
    assert "Retired: orders used this price, so its amount and trial stay as sold." in page
    assert reverse("admin:catalog_price_change", args=[on_sale.pk]) in page


def test_new_terms_with_active_unticked_on_a_used_price_are_a_form_error_not_a_hidden_inactive_price(
    catalog_client, used_price
):
    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]),
        price_form(used_price, unit_amount="8.49", active=""),
    )

    assert response.status_code == 200
    assert "new terms go on sale as a new price" in response.content.decode()
    assert list(Price.objects.filter(product=used_price.product).values_list("unit_amount", "active")) == [(799, True)]


def test_a_change_of_more_than_half_asks_for_confirmation_before_anything_is_saved(catalog_client, used_price):
    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]), price_form(used_price, unit_amount="1,000")
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "$7.99 USD → $1,000.00 USD is a change of +12416 %" in page
    assert 'name="confirm_large_change"' in page and 'type="checkbox"' in page
    assert list(Price.objects.filter(product=used_price.product).values_list("unit_amount", "active")) == [(799, True)]


def test_a_confirmed_large_change_goes_on_sale(catalog_client, used_price):
    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]),
        price_form(used_price, unit_amount="3.50", confirm_large_change="on"),
    )

    assert response.status_code == 302
    assert Price.objects.get(product=used_price.product, active=True).unit_amount == 350


@pytest.mark.parametrize(("typed", "asks"), [("11.98", False), ("11.99", True), ("4.00", False), ("3.99", True)])
def test_the_confirmation_threshold_is_half_the_amount_either_way(catalog_client, used_price, typed, asks):
    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]), price_form(used_price, unit_amount=typed)
    )

    assert (response.status_code == 200) is asks
    assert ("is a change of" in response.content.decode()) is asks


def test_an_unused_price_edited_in_place_says_so(catalog_client):
    price = PriceFactory(unit_amount=799, product__name="Starter", product__code="starter")

    response = catalog_client.post(
        reverse("admin:catalog_price_change", args=[price.pk]), price_form(price, unit_amount="8.49", _continue="1")
    )

    assert response["Location"] == reverse("admin:catalog_price_change", args=[price.pk])
    assert banner(response) == [
        f"Starter monthly USD: $7.99 USD → $8.49 USD. Price #{price.pk} was not used by "
        "orders yet: changed in place; it is on sale."
    ]


def test_on_the_product_page_a_large_change_asks_for_confirmation_in_its_row(catalog_client, used_price):
    from tests.catalog.test_admin import product_form

    rows = [{"id": used_price.pk, "billing_cycle": "monthly", "unit_amount": "1000", "active": "on"}]
    url = reverse("admin:catalog_product_change", args=[used_price.product_id])

    refused = catalog_client.post(url, product_form(used_price.product, rows))
    confirmed = catalog_client.post(
        url, product_form(used_price.product, [{**rows[0], "confirm_large_change": "on"}]), follow=True
    )

    assert refused.status_code == 200 and "is a change of +12416 %" in refused.content.decode()
    on_sale = Price.objects.get(product=used_price.product, active=True)
    assert on_sale.unit_amount == 100000
    assert (
        f"Starter monthly USD: $7.99 USD → $1,000.00 USD. Price #{used_price.pk} was used by orders: retired "
        f"and kept as sold. Price #{on_sale.pk} is now on sale at $1,000.00 USD."
    ) in banner(confirmed)


def test_the_product_page_edits_only_prices_on_sale_and_lists_retired_ones_read_only(catalog_client, used_price):
    catalog_client.post(
        reverse("admin:catalog_price_change", args=[used_price.pk]), price_form(used_price, unit_amount="8.49")
    )

    page = catalog_client.get(reverse("admin:catalog_product_change", args=[used_price.product_id]))

    editable = page.context["inline_admin_formsets"][0].formset
    assert [form.instance.unit_amount for form in editable.forms] == [849]
    retired = re.search(r'<ul class="retired-prices">(.*?)</ul>', page.content.decode()).group(1)
    link = reverse("admin:catalog_price_change", args=[used_price.pk])
    assert f'<a href="{link}">#{used_price.pk}</a> Monthly $7.99 USD (retired ' in retired
    assert f'name="prices-0-id" value="{used_price.pk}"' not in page.content.decode()


# --- In a browser, as catalog staff would do it -------------------------------------------------------------------------


def _browser_marks(test):
    for mark in reversed(BROWSER_TEST_MARKS):
        test = mark(test)
    return test


@_browser_marks
@pytest.mark.parametrize("width", [1440, 390])
def test_a_catalog_manager_corrects_a_typo_and_lands_on_the_price_on_sale(
    chromium, live_server, catalog_manager, width
):
    price = PriceFactory(unit_amount=799, product__name="Starter", product__code="starter")
    CheckoutSessionFactory(price=price)
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    admin_log_in(page, live_server, catalog_manager.email)
    page.goto(f"{live_server.url}{reverse('admin:catalog_price_changelist')}")
    page.click("#result_list a:text-is('Starter')")

    page.fill("#id_unit_amount", "1,000")  # the typo: meant 10.00
    page.click("input[name=_continue]")
    page.wait_for_selector(".errorlist")
    assert "$7.99 USD → $1,000.00 USD is a change of +12416 %" in page.inner_text(".errorlist")
    assert page.is_visible("#id_confirm_large_change")
    page.screenshot(path=str(ARTIFACTS / f"backoffice-price-confirm-{width}.png"), full_page=True)
    assert Price.objects.get(pk=price.pk).unit_amount == 799  # nothing saved yet

    page.fill("#id_unit_amount", "8.49")  # corrected: within 50 %, no confirmation needed
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")

    on_sale = Price.objects.get(product=price.product, active=True)
    assert on_sale.unit_amount == 849
    assert page.url.endswith(reverse("admin:catalog_price_change", args=[on_sale.pk]))
    assert page.is_checked("#id_active") and page.input_value("#id_unit_amount") == "8.49"
    assert page.inner_text(".messagelist").strip() == (
        f"Starter monthly USD: $7.99 USD → $8.49 USD. Price #{price.pk} was used by orders: retired and kept as "
        f"sold. Price #{on_sale.pk} is now on sale at $8.49 USD."
    )
    page.screenshot(path=str(ARTIFACTS / f"backoffice-price-corrected-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}{reverse('admin:catalog_price_change', args=[price.pk])}")
    assert page.is_disabled("#id_unit_amount")
    assert "Retired: orders used this price" in page.inner_text("#content-main")
    page.screenshot(path=str(ARTIFACTS / f"backoffice-price-retired-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}{reverse('admin:catalog_product_change', args=[price.product_id])}")
    assert page.locator("tr.has_original input[name$='-unit_amount']").count() == 1  # the price on sale only
    assert page.input_value("input[name='prices-0-unit_amount']") == "8.49"
    assert f"#{price.pk} Monthly $7.99 USD" in page.inner_text(".retired-prices")
    page.screenshot(path=str(ARTIFACTS / f"backoffice-product-prices-{width}.png"), full_page=True)
    page.close()

"""The catalog's admin pages: they load for staff, show money as money, and turn constraint clashes into messages."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from catalog.models import Coupon, Price, Product
from tests.catalog.factories import PriceFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(db):
    call_command("catalog_load", verbosity=0)


@pytest.mark.parametrize("model", ["product", "price", "coupon"])
def test_changelist_and_add_pages_load(admin_client, catalog, model):
    assert admin_client.get(reverse(f"admin:catalog_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:catalog_{model}_add")).status_code == 200


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("product", lambda: Product.objects.get(code="starter")),
        ("price", lambda: Price.objects.get(product__code="starter", billing_cycle="monthly")),
        ("coupon", lambda: Coupon.objects.get(code="WELCOME10")),
    ],
)
def test_change_pages_load(admin_client, catalog, model, row):
    response = admin_client.get(reverse(f"admin:catalog_{model}_change", args=[row().pk]))

    assert response.status_code == 200


def test_price_list_shows_amounts_as_money(admin_client, catalog):
    response = admin_client.get(reverse("admin:catalog_price_changelist"), {"q": "starter"})

    content = response.content.decode()
    assert "$7.99" in content  # starter monthly
    assert "$53.64" in content  # starter triennial


def test_product_page_shows_its_prices_as_money(admin_client, catalog):
    product = Product.objects.get(code="starter")

    response = admin_client.get(reverse("admin:catalog_product_change", args=[product.pk]))

    assert "$35.88" in response.content.decode()


def test_coupon_list_shows_the_discount_and_redemptions(admin_client, catalog):
    Coupon.objects.update(max_redemptions=100, times_redeemed=3)

    content = admin_client.get(reverse("admin:catalog_coupon_changelist")).content.decode()

    assert "10 %" in content
    assert "3 of 100" in content


# --- The one-active-price constraint as a form error, never a server error --------------------------------------------


def price_form(price: Price, **changes) -> dict:
    data = {
        "product": price.product_id,
        "billing_cycle": price.billing_cycle,
        "currency": price.currency,
        "unit_amount": f"{price.unit_amount / 100:.2f}",
        "active": "on" if price.active else "",
        "trial_days": "",
    }
    return {**data, **changes}


def test_adding_a_second_active_price_is_a_form_error(admin_client):
    price = PriceFactory()

    response = admin_client.post(reverse("admin:catalog_price_add"), price_form(price, unit_amount="6.99"))

    assert response.status_code == 200
    assert "This product already has an active price for this cycle and currency." in response.content.decode()
    assert Price.objects.count() == 1


def test_switching_on_an_old_price_beside_the_active_one_is_a_form_error(admin_client):
    price = PriceFactory()
    old = PriceFactory(product=price.product, active=False, unit_amount=699)

    response = admin_client.post(reverse("admin:catalog_price_change", args=[old.pk]), price_form(old, active="on"))

    assert response.status_code == 200
    assert "This product already has an active price for this cycle and currency." in response.content.decode()
    old.refresh_from_db()
    assert old.active is False


def test_the_cycle_of_a_saved_price_cannot_be_changed(admin_client):
    price = PriceFactory(billing_cycle="monthly")

    response = admin_client.post(
        reverse("admin:catalog_price_change", args=[price.pk]),
        price_form(price, billing_cycle="yearly", unit_amount="9.99"),
    )

    assert response.status_code == 302
    price.refresh_from_db()
    assert (price.billing_cycle, price.unit_amount) == ("monthly", 999)


def product_form(product: Product, rows: list[dict]) -> dict:
    """The product change page as submitted: the product's fields and one inline row per dict."""
    data = {
        "name": product.name,
        "type": product.type,
        "description": product.description,
        "active": "on" if product.active else "",
        "sort_order": product.sort_order,
        "prices-TOTAL_FORMS": len(rows),
        "prices-INITIAL_FORMS": sum(1 for row in rows if row.get("id")),
        "prices-MIN_NUM_FORMS": 0,
        "prices-MAX_NUM_FORMS": 1000,
    }
    for index, row in enumerate(rows):
        row = {"id": "", "product": product.pk, "currency": "usd", "trial_days": "", **row}
        data.update({f"prices-{index}-{name}": value for name, value in row.items()})
    return data


def test_two_active_prices_for_one_cycle_in_one_save_are_a_form_error(admin_client):
    product = ProductFactory()
    rows = [
        {"billing_cycle": "monthly", "unit_amount": "7.99", "active": "on"},
        {"billing_cycle": "monthly", "unit_amount": "6.99", "active": "on"},
    ]

    response = admin_client.post(
        reverse("admin:catalog_product_change", args=[product.pk]), product_form(product, rows)
    )

    assert response.status_code == 200
    assert "Only one monthly price in USD can be active" in response.content.decode()
    assert not Price.objects.exists()


def test_a_new_active_price_beside_the_saved_active_one_is_a_form_error(admin_client):
    price = PriceFactory()
    rows = [
        {"id": price.pk, "billing_cycle": "monthly", "unit_amount": "7.99", "active": "on"},
        {"billing_cycle": "monthly", "unit_amount": "6.99", "active": "on"},
    ]

    response = admin_client.post(
        reverse("admin:catalog_product_change", args=[price.product_id]), product_form(price.product, rows)
    )

    assert response.status_code == 200
    assert "Only one monthly price in USD can be active" in response.content.decode()
    assert Price.objects.count() == 1


def test_replacing_a_price_in_one_save_switches_the_old_one_off_and_the_new_one_on(admin_client):
    old = PriceFactory(unit_amount=799)
    rows = [
        {"id": old.pk, "billing_cycle": "monthly", "unit_amount": "7.99", "active": ""},
        {"billing_cycle": "monthly", "unit_amount": "6.99", "active": "on"},
    ]

    response = admin_client.post(
        reverse("admin:catalog_product_change", args=[old.product_id]), product_form(old.product, rows)
    )

    assert response.status_code == 302
    old.refresh_from_db()
    assert old.active is False
    assert Price.objects.get(active=True).unit_amount == 699


def test_switching_back_to_an_older_price_takes_retiring_the_current_one_then_reactivating_it(admin_client):
    """Retired prices are no longer rows of the product page (issue 9): the older one is put back on its own page."""
    older = PriceFactory(unit_amount=699, active=False)
    current = PriceFactory(product=older.product, unit_amount=799)
    rows = [{"id": current.pk, "billing_cycle": "monthly", "unit_amount": "7.99", "active": ""}]

    retired = admin_client.post(
        reverse("admin:catalog_product_change", args=[older.product_id]), product_form(older.product, rows)
    )
    back = admin_client.post(reverse("admin:catalog_price_change", args=[older.pk]), price_form(older, active="on"))

    assert (retired.status_code, back.status_code) == (302, 302)
    assert Price.objects.get(active=True) == older


def test_coupon_billing_cycles_are_chosen_with_checkboxes(admin_client):
    response = admin_client.post(
        reverse("admin:catalog_coupon_add"),
        {
            "code": "YEARLY20",
            "name": "",
            "percent_off": "20",
            "amount_off": "",
            "currency": "usd",
            "duration": "once",
            "duration_in_months": "",
            "max_redemptions": "",
            "active": "on",
            "billing_cycles": ["yearly", "triennial"],
        },
    )

    assert response.status_code == 302, response.content.decode()
    assert Coupon.objects.get().billing_cycles == ["yearly", "triennial"]


def test_coupon_with_an_end_before_its_start_is_a_form_error(admin_client):
    response = admin_client.post(
        reverse("admin:catalog_coupon_add"),
        {
            "code": "BACKWARDS",
            "percent_off": "20",
            "currency": "usd",
            "duration": "once",
            "active": "on",
            "valid_from_0": "2026-12-31",
            "valid_from_1": "00:00:00",
            "valid_until_0": "2026-12-01",
            "valid_until_1": "00:00:00",
        },
    )

    assert response.status_code == 200
    assert "Valid until must be later than valid from." in response.content.decode()
    assert not Coupon.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"percent_off": "20", "amount_off": "5.00"}, "Give a percentage or an amount off: one of them, not both."),
        ({}, "Give a percentage or an amount off: one of them, not both."),
        ({"percent_off": "20", "duration": "repeating"}, "A repeating coupon needs its number of months."),
    ],
)
def test_coupon_rules_are_the_models_constraints_shown_as_form_errors(admin_client, fields, message):
    response = admin_client.post(
        reverse("admin:catalog_coupon_add"),
        {"code": "RULES", "currency": "usd", "duration": "once", "active": "on", **fields},
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Coupon.objects.exists()


def test_the_database_refuses_a_coupon_whose_window_ends_before_it_starts(db):
    # The constraint is the rule, not only the form's message: a write that bypasses every form is refused too.
    start = datetime(2026, 12, 31, tzinfo=UTC)
    with pytest.raises(IntegrityError), transaction.atomic():
        Coupon.objects.create(code="RAW", percent_off=5, valid_from=start, valid_until=start)


def test_a_coupon_code_taken_in_another_case_is_a_form_error(admin_client, catalog):
    response = admin_client.post(
        reverse("admin:catalog_coupon_add"),
        {
            "code": "welcome10",
            "percent_off": "20",
            "currency": "usd",
            "duration": "once",
            "active": "on",
        },
    )

    assert response.status_code == 200
    assert "A coupon with this code already exists." in response.content.decode()

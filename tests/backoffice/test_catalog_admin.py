"""Catalog staff: money typed as money, a price edit that never changes what was sold, and an audit trail."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from catalog.models import Price
from tests.catalog.factories import PriceFactory, ProductFactory
from tests.checkout.factories import CheckoutSessionFactory

pytestmark = pytest.mark.django_db


def product_form(product, prices, **overrides):
    data = {
        "name": product.name,
        "type": product.type,
        "description": product.description,
        "active": "on",
        "sort_order": product.sort_order,
        "prices-TOTAL_FORMS": len(prices),
        "prices-INITIAL_FORMS": len(prices),
        "prices-MIN_NUM_FORMS": 0,
        "prices-MAX_NUM_FORMS": 1000,
    }
    for index, (price, values) in enumerate(prices):
        data.update(
            {
                f"prices-{index}-id": price.pk,
                f"prices-{index}-product": product.pk,
                f"prices-{index}-billing_cycle": price.billing_cycle,
                f"prices-{index}-currency": price.currency,
                f"prices-{index}-unit_amount": values.get("unit_amount", f"{price.unit_amount / 100:.2f}"),
                f"prices-{index}-active": "on",
                f"prices-{index}-trial_days": values.get("trial_days", ""),
            }
        )
    data.update(overrides)
    return data


def test_an_amount_typed_as_money_is_stored_in_cents(catalog_client):
    product = ProductFactory()

    response = catalog_client.post(
        reverse("admin:catalog_price_add"),
        {
            "product": product.pk,
            "billing_cycle": "monthly",
            "currency": "usd",
            "unit_amount": "$7.99",
            "active": "on",
            "trial_days": "",
        },
    )

    assert response.status_code == 302
    assert Price.objects.get(product=product).unit_amount == 799


def test_the_price_form_shows_cents_as_money(catalog_client):
    price = PriceFactory(unit_amount=1299)

    page = catalog_client.get(reverse("admin:catalog_price_change", args=[price.pk])).content.decode()

    assert 'value="12.99"' in page
    assert "$12.99 USD" in catalog_client.get(reverse("admin:catalog_price_changelist")).content.decode()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0", "The amount must be positive."),
        ("-5", "The amount must be positive."),
        ("7.999", "at most two decimals"),
        ("seven", "Enter an amount such as 7.99."),
        ("1000000", "Stripe&#x27;s limit"),
    ],
)
def test_an_amount_a_person_can_understand_is_refused(catalog_client, typed, message):
    response = catalog_client.post(
        reverse("admin:catalog_price_add"),
        {
            "product": ProductFactory().pk,
            "billing_cycle": "monthly",
            "currency": "usd",
            "unit_amount": typed,
            "active": "on",
        },
    )

    assert response.status_code == 200
    assert message in response.content.decode()


def test_trial_days_beyond_what_stripe_allows_are_refused(catalog_client):
    response = catalog_client.post(
        reverse("admin:catalog_price_add"),
        {
            "product": ProductFactory().pk,
            "billing_cycle": "monthly",
            "currency": "usd",
            "unit_amount": "7.99",
            "active": "on",
            "trial_days": "731",
        },
    )

    assert "Stripe allows trials of at most 730 days." in response.content.decode()


def test_an_unused_price_is_edited_in_place_and_the_log_says_from_what_to_what(catalog_client):
    price = PriceFactory(unit_amount=799)

    catalog_client.post(
        reverse("admin:catalog_product_change", args=[price.product.pk]),
        product_form(price.product, [(price, {"unit_amount": "8.99"})]),
    )

    price.refresh_from_db()
    assert (price.unit_amount, price.active) == (899, True)
    entry = LogEntry.objects.get(object_id=str(price.product.pk))
    assert "unit_amount: 799 → 899" in entry.get_change_message()
    assert entry.user.email == "catalog@migrahosting.test"


def test_a_used_price_is_kept_and_a_new_one_goes_on_sale(catalog_client):
    price = PriceFactory(unit_amount=799)
    session = CheckoutSessionFactory(price=price)

    response = catalog_client.post(
        reverse("admin:catalog_product_change", args=[price.product.pk]),
        product_form(price.product, [(price, {"unit_amount": "8.99"})]),
        follow=True,
    )

    price.refresh_from_db()
    session.refresh_from_db()
    assert (price.unit_amount, price.active) == (799, False)
    assert (session.price_id, session.amount) == (price.pk, 799)
    new = Price.objects.get(product=price.product, active=True)
    assert new.unit_amount == 899 and new.pk != price.pk
    assert f"Price #{new.pk} is now on sale at $8.99 USD" in response.content.decode()
    message = LogEntry.objects.get(object_id=str(price.product.pk)).get_change_message()
    assert "unit_amount: 799 → 899" in message and f"Price #{new.pk} is now on sale" in message


def test_the_standalone_price_page_replaces_a_used_price_too(catalog_client):
    price = PriceFactory(unit_amount=799)
    CheckoutSessionFactory(price=price)

    catalog_client.post(
        reverse("admin:catalog_price_change", args=[price.pk]),
        {"unit_amount": "9.49", "active": "on", "trial_days": ""},
    )

    assert list(Price.objects.filter(product=price.product).order_by("pk").values_list("unit_amount", "active")) == [
        (799, False),
        (949, True),
    ]
    assert "unit_amount: 799 → 949" in LogEntry.objects.get(object_id=str(price.pk)).get_change_message()


def test_catalog_filters_and_search(catalog_client):
    PriceFactory(product__code="vps-big", product__type="vps", billing_cycle="yearly")
    PriceFactory(product__code="mail-small", product__type="email")

    by_type = catalog_client.get(reverse("admin:catalog_product_changelist"), {"type__exact": "vps"}).content
    by_cycle = catalog_client.get(reverse("admin:catalog_product_changelist"), {"cycle": "yearly"}).content
    by_search = catalog_client.get(reverse("admin:catalog_product_changelist"), {"q": "mail"}).content

    assert b"vps-big" in by_type and b"mail-small" not in by_type
    assert b"vps-big" in by_cycle and b"mail-small" not in by_cycle
    assert b"mail-small" in by_search and b"vps-big" not in by_search

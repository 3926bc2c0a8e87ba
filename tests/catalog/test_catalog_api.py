"""GET /api/catalog/: the plans on sale for the marketing site, cached until the catalog changes, with ETag and 304."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.catalog.factories import PriceFactory, ProductFactory

pytestmark = pytest.mark.django_db

URL = "/api/catalog/"


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture(autouse=True)
def _forget_the_built_answer():
    # The answer is kept per process for the catalog version it was built from; every test starts without it.
    from catalog import apis

    apis._built.update(version=None, at=0.0, etag="", body=b"")


def test_lists_active_plans_with_their_prices_per_cycle(api):
    product = ProductFactory(code="starter", name="Hosting Starter", sort_order=1)
    PriceFactory(product=product, billing_cycle="yearly", unit_amount=1788, trial_days=30)
    PriceFactory(product=product, billing_cycle="monthly", unit_amount=799)
    PriceFactory(product=product, billing_cycle="triennial", unit_amount=5000)
    PriceFactory(product=product, billing_cycle="biennial", unit_amount=3000, active=False)
    PriceFactory(product__active=False)

    response = api.get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "plans": [
            {
                "code": "starter",
                "name": "Hosting Starter",
                "type": "hosting",
                "description": product.description,
                "prices": [
                    {
                        "billing_cycle": "monthly",
                        "months": 1,
                        "amount": 799,
                        "currency": "usd",
                        "amount_per_month": 799,
                        "trial_days": None,
                    },
                    {
                        "billing_cycle": "yearly",
                        "months": 12,
                        "amount": 1788,
                        "currency": "usd",
                        "amount_per_month": 149,
                        "trial_days": 30,
                    },
                    # 5000 / 36 = 138.89 cents: rounded to the nearest cent.
                    {
                        "billing_cycle": "triennial",
                        "months": 36,
                        "amount": 5000,
                        "currency": "usd",
                        "amount_per_month": 139,
                        "trial_days": None,
                    },
                ],
            }
        ]
    }


def test_plans_come_in_their_display_order(api):
    PriceFactory(product=ProductFactory(code="business", sort_order=3))
    PriceFactory(product=ProductFactory(code="starter", sort_order=1))

    codes = [plan["code"] for plan in api.get(URL).json()["plans"]]

    assert codes == ["starter", "business"]


def test_the_real_catalog_loads(api):
    from django.core.management import call_command

    call_command("catalog_load", verbosity=0)

    plans = api.get(URL).json()["plans"]

    assert "starter" in [plan["code"] for plan in plans]
    assert all(price["amount"] > 0 and price["currency"] for plan in plans for price in plan["prices"])


def test_answers_with_an_etag_and_asks_caches_to_revalidate(api):
    PriceFactory()

    response = api.get(URL)

    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')
    assert response["Cache-Control"] == "public, no-cache"


@pytest.mark.parametrize("sent", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_client_sending_the_current_etag_gets_a_304_without_body(api, sent):
    PriceFactory()
    etag = api.get(URL)["ETag"]

    response = api.get(URL, HTTP_IF_NONE_MATCH=sent.format(etag=etag))

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag


def test_a_stale_etag_gets_the_catalog(api):
    PriceFactory()

    response = api.get(URL, HTTP_IF_NONE_MATCH='"stale"')

    assert response.status_code == 200
    assert response.json()["plans"]


def test_a_repeated_request_costs_one_small_query(api, django_assert_num_queries):
    PriceFactory()
    api.get(URL)

    with django_assert_num_queries(1):
        response = api.get(URL)

    assert response.status_code == 200


def test_a_price_edited_in_the_admin_shows_at_once(api, admin_client):
    price = PriceFactory(unit_amount=799)
    etag = api.get(URL)["ETag"]

    saved = admin_client.post(
        reverse("admin:catalog_price_change", args=[price.pk]),
        {
            "product": price.product_id,
            "billing_cycle": "monthly",
            "currency": "usd",
            "unit_amount": "8.49",
            "active": "on",
            "trial_days": "",
        },
    )
    assert saved.status_code == 302

    response = api.get(URL, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response.json()["plans"][0]["prices"][0]["amount"] == 849
    assert response["ETag"] != etag


def test_a_plan_taken_off_sale_disappears_at_once(api):
    price = PriceFactory()
    assert api.get(URL).json()["plans"]

    price.product.active = False
    price.product.save()

    assert api.get(URL).json() == {"plans": []}


def test_the_marketing_site_may_read_it_from_a_browser(api):
    PriceFactory()

    allowed = api.get(URL, HTTP_ORIGIN="https://migrahosting.com")
    other = api.get(URL, HTTP_ORIGIN="https://evil.example")

    assert allowed["Access-Control-Allow-Origin"] == "https://migrahosting.com"
    assert "Access-Control-Allow-Origin" not in other


def test_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/catalog/"]["get"]
    assert operation["operationId"] == "catalog_list"
    assert {"200", "304"} <= set(operation["responses"])

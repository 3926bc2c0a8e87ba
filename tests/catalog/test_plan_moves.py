"""Plan moves as catalog data: loaded from the data file (optional `moves_to`, checked like the rest of the file),
kept when staff switch one off, and edited in the admin within one product type."""

import json
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from catalog.catalog_file import DEFAULT_CATALOG_FILE, catalog_file_parse
from catalog.models import PlanMove, Product, ProductType
from catalog.services import catalog_load
from core.exceptions import ApplicationError
from tests.catalog.factories import ProductFactory

pytestmark = pytest.mark.django_db


def catalog_data() -> dict:
    return json.loads(DEFAULT_CATALOG_FILE.read_text())


def moves() -> set[tuple[str, str, bool]]:
    return set(PlanMove.objects.values_list("from_product__code", "to_product__code", "active"))


def test_the_data_file_moves_hosting_and_wordpress_plans_up_and_down_within_their_type():
    out = StringIO()
    call_command("catalog_load", stdout=out)

    hosting = {
        ("starter", "premium"),
        ("starter", "business"),
        ("premium", "starter"),
        ("premium", "business"),
        ("business", "starter"),
        ("business", "premium"),
    }
    wordpress = {(f"wp-{a}", f"wp-{b}") for a, b in hosting}
    assert moves() == {(a, b, True) for a, b in hosting | wordpress}
    assert "plan moves: 12 created, 0 updated" in out.getvalue()


def test_a_file_without_moves_still_loads():
    data = catalog_data()
    for product in data["products"]:
        product.pop("moves_to", None)

    report = catalog_load(data=data)

    assert report.products_created == 10 and report.moves_created == 0
    assert not PlanMove.objects.exists()


def test_loading_again_creates_nothing_and_keeps_a_move_staff_switched_off():
    call_command("catalog_load", verbosity=0)
    PlanMove.objects.filter(from_product__code="starter", to_product__code="business").update(active=False)

    report = catalog_load(data=catalog_data())

    assert (report.moves_created, report.moves_updated) == (0, 0)
    assert ("starter", "business", False) in moves()
    assert any("plan move starter -> business" in line for line in report.kept)


def test_overwrite_switches_a_move_back_on_and_leaves_staff_moves_alone():
    call_command("catalog_load", verbosity=0)
    PlanMove.objects.filter(from_product__code="starter", to_product__code="business").update(active=False)
    extra = PlanMove.objects.create(
        from_product=Product.objects.get(code="email-basic"),
        to_product=ProductFactory(code="email-pro", type=ProductType.EMAIL),
    )

    report = catalog_load(data=catalog_data(), overwrite=True)

    assert report.moves_updated == 1
    assert ("starter", "business", True) in moves()
    assert PlanMove.objects.filter(pk=extra.pk, active=True).exists()


@pytest.mark.parametrize(
    ("moves_to", "problem"),
    [
        (["premium", "premium"], "'premium' appears more than once"),
        (["starter"], "other cycles are always allowed"),
        (["nowhere"], "product 'nowhere' is not in this file's products"),
        (["wp-premium"], "'wp-premium' is wordpress, not hosting: moves stay within one type"),
        ("premium", "moves_to must be a list of product codes"),
    ],
)
def test_a_bad_move_in_the_file_is_reported_and_nothing_is_written(moves_to, problem):
    data = catalog_data()
    data["products"][0]["moves_to"] = moves_to  # starter

    with pytest.raises(ApplicationError) as raised:
        catalog_file_parse(data=data)

    assert problem in raised.value.message
    assert not Product.objects.exists()


def test_a_move_across_product_types_is_refused_by_the_model():
    move = PlanMove(
        from_product=ProductFactory(type=ProductType.HOSTING), to_product=ProductFactory(type=ProductType.VPS)
    )

    with pytest.raises(ValidationError) as raised:
        move.full_clean()

    assert "Moves stay within one product type" in str(raised.value)


# --- The admin ---------------------------------------------------------------------------------------------------


def test_admin_lists_moves_and_adds_one(admin_client):
    call_command("catalog_load", verbosity=0)
    starter, pro = Product.objects.get(code="starter"), ProductFactory(code="pro", type=ProductType.HOSTING)

    listing = admin_client.get(reverse("admin:catalog_planmove_changelist"))
    response = admin_client.post(
        reverse("admin:catalog_planmove_add"), {"from_product": starter.pk, "to_product": pro.pk, "active": "on"}
    )

    assert listing.status_code == 200 and "Hosting Premium" in listing.content.decode()
    assert response.status_code == 302
    assert PlanMove.objects.filter(from_product=starter, to_product=pro, active=True).exists()


def test_admin_switches_a_move_off_in_place(admin_client):
    call_command("catalog_load", verbosity=0)
    move = PlanMove.objects.get(from_product__code="starter", to_product__code="premium")

    response = admin_client.post(
        reverse("admin:catalog_planmove_change", args=[move.pk]),
        {"from_product": move.from_product_id, "to_product": move.to_product_id},
    )

    assert response.status_code == 302
    move.refresh_from_db()
    assert move.active is False


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("vps-basic", "Moves stay within one product type"),
        ("starter", "a move names another plan"),
        ("premium", "This move already exists."),
    ],
)
def test_admin_refuses_a_move_with_a_message(admin_client, target, message):
    call_command("catalog_load", verbosity=0)
    starter = Product.objects.get(code="starter")

    response = admin_client.post(
        reverse("admin:catalog_planmove_add"),
        {"from_product": starter.pk, "to_product": Product.objects.get(code=target).pk, "active": "on"},
    )

    assert response.status_code == 200
    assert message in response.content.decode()

"""`manage.py catalog_load`: what the data file creates, idempotence, staff edits, --overwrite, --dry-run, bad files."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from catalog.catalog_file import DEFAULT_CATALOG_FILE
from catalog.models import Coupon, Price, Product
from catalog.services import catalog_load
from tests.concurrency import run_at_once
from tests.conftest import database_is_postgres

pytestmark = pytest.mark.django_db


def load(*args: str) -> str:
    out = StringIO()
    call_command("catalog_load", *args, stdout=out)
    return out.getvalue()


def catalog_data() -> dict:
    """The real data file, freshly parsed, for a test to change."""
    return json.loads(DEFAULT_CATALOG_FILE.read_text())


def write_catalog(tmp_path, data: dict) -> str:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return str(path)


def row_timestamps() -> dict:
    return {
        (model.__name__, pk): updated_at
        for model in (Product, Price, Coupon)
        for pk, updated_at in model.objects.values_list("pk", "updated_at")
    }


def active_price(code: str, cycle: str) -> Price:
    return Price.objects.get(product__code=code, billing_cycle=cycle, currency="usd", active=True)


# --- What the data file creates ---------------------------------------------------------------------------------------


def test_load_creates_the_ten_products_thirty_two_prices_and_the_welcome_coupon():
    output = load()

    assert Product.objects.filter(active=True).count() == 10
    # Hosting and WordPress: 6 plans x 4 cycles; e-mail, VPS, cloud, storage: 4 plans x monthly and yearly.
    assert Price.objects.filter(active=True, currency="usd").count() == 32
    assert Price.objects.count() == 32
    coupon = Coupon.objects.get()
    assert (coupon.code, coupon.percent_off, coupon.amount_off, coupon.duration, coupon.active) == (
        "WELCOME10",
        10,
        None,
        "once",
        True,
    )
    assert not coupon.products.exists() and coupon.billing_cycles == []
    assert "43 created, 0 updated" in output


def test_products_have_the_names_types_and_order_of_the_data_file():
    load()

    assert list(Product.objects.values_list("code", "name", "type")) == [
        ("starter", "Hosting Starter", "hosting"),
        ("premium", "Hosting Premium", "hosting"),
        ("business", "Hosting Business", "hosting"),
        ("wp-starter", "WordPress Starter", "wordpress"),
        ("wp-premium", "WordPress Premium", "wordpress"),
        ("wp-business", "WordPress Business", "wordpress"),
        ("email-basic", "Email Hosting", "email"),
        ("vps-basic", "VPS Basic", "vps"),
        ("cloud-basic", "Cloud Basic", "cloud"),
        ("storage-basic", "Storage Basic", "storage"),
    ]
    assert all(Product.objects.values_list("description", flat=True))


@pytest.mark.parametrize(
    ("code", "cycle", "unit_amount"),
    [
        ("starter", "monthly", 799),
        ("starter", "yearly", 3588),  # 2.99 x 12
        ("starter", "biennial", 4776),  # 1.99 x 24
        ("starter", "triennial", 5364),  # 1.49 x 36
        ("premium", "yearly", 4788),  # 3.99 x 12
        ("premium", "triennial", 8964),  # 2.49 x 36
        ("business", "biennial", 11976),  # 4.99 x 24
        ("business", "triennial", 14364),  # 3.99 x 36
        ("wp-business", "biennial", 11976),  # the same as its hosting twin
        ("email-basic", "monthly", 299),
        ("email-basic", "yearly", 2990),  # ten months' price
        ("vps-basic", "yearly", 19990),
        ("cloud-basic", "monthly", 2999),
        ("storage-basic", "yearly", 9990),
    ],
)
def test_price_amounts_are_the_monthly_rate_times_the_months_of_the_cycle(code, cycle, unit_amount):
    load()

    assert active_price(code, cycle).unit_amount == unit_amount


def test_wordpress_plans_cost_what_their_hosting_twins_cost():
    load()

    for plan in ("starter", "premium", "business"):
        hosting = dict(Price.objects.filter(product__code=plan).values_list("billing_cycle", "unit_amount"))
        wordpress = dict(Price.objects.filter(product__code=f"wp-{plan}").values_list("billing_cycle", "unit_amount"))
        assert wordpress == hosting and len(hosting) == 4


def test_single_service_plans_sell_monthly_and_yearly_only_and_no_price_has_a_trial():
    load()

    for code in ("email-basic", "vps-basic", "cloud-basic", "storage-basic"):
        assert set(Price.objects.filter(product__code=code).values_list("billing_cycle", flat=True)) == {
            "monthly",
            "yearly",
        }
    assert not Price.objects.filter(trial_days__isnull=False).exists()


# --- Idempotence and staff edits --------------------------------------------------------------------------------------


def test_second_run_changes_nothing():
    load()
    before = row_timestamps()

    output = load()

    assert "0 created, 0 updated" in output
    assert "differ" not in output
    assert row_timestamps() == before


def test_second_run_reports_nothing_to_do():
    catalog_load(data=catalog_data())

    report = catalog_load(data=catalog_data())

    assert (report.created, report.updated, report.kept) == (0, 0, [])


def test_staff_edits_survive_a_rerun():
    load()
    starter = Product.objects.get(code="starter")
    starter.name = "Starter Plus"
    starter.save()
    Product.objects.filter(code="business").update(active=False)
    premium_yearly = active_price("premium", "yearly")
    premium_yearly.unit_amount = 4500
    premium_yearly.save()
    Coupon.objects.filter(code="WELCOME10").update(percent_off=15)
    before = row_timestamps()

    output = load("-v", "2")

    assert Product.objects.get(code="starter").name == "Starter Plus"
    assert Product.objects.get(code="business").active is False
    assert active_price("premium", "yearly").unit_amount == 4500
    assert Coupon.objects.get().percent_off == 15
    assert row_timestamps() == before
    assert "0 created, 0 updated" in output
    assert "4 entries differ from the file and were kept" in output
    assert "product starter: differs from the file in name" in output
    assert "product business: differs from the file in active" in output
    assert "price premium yearly usd: 4500 cents in the database, 4788 in the file" in output
    assert "coupon WELCOME10: differs from the file in percent_off" in output


def test_a_price_staff_switched_off_is_not_brought_back():
    load()
    Price.objects.filter(product__code="starter", billing_cycle="monthly").update(active=False)

    output = load()

    assert not Price.objects.filter(product__code="starter", billing_cycle="monthly", active=True).exists()
    assert "0 created, 0 updated" in output


def test_a_price_added_to_the_file_later_is_created():
    catalog_load(data=catalog_data())
    data = catalog_data()
    email = next(product for product in data["products"] if product["code"] == "email-basic")
    email["prices"]["biennial"] = {"per_month": 249}

    report = catalog_load(data=data)

    assert (report.prices_created, report.updated) == (1, 0)
    assert active_price("email-basic", "biennial").unit_amount == 249 * 24


def test_a_coupon_typed_in_another_case_by_staff_is_the_files_coupon():
    Coupon.objects.create(code="welcome10", percent_off=10, duration="once")

    report = catalog_load(data=catalog_data())

    assert report.coupons_created == 0
    assert Coupon.objects.get().code == "welcome10"


@pytest.mark.django_db(transaction=True)
def test_concurrent_loads_take_turns_and_create_everything_once():
    if not database_is_postgres():
        pytest.skip("concurrent writers need PostgreSQL; SQLite serialises them with 'database is locked'")
    reports, errors = run_at_once(lambda: catalog_load(data=catalog_data()), 4)

    assert errors == []
    assert sorted(report.created for report in reports) == [0, 0, 0, 43]
    assert (Product.objects.count(), Price.objects.count(), Coupon.objects.count()) == (10, 32, 1)


# --- --overwrite ------------------------------------------------------------------------------------------------------


def test_overwrite_replaces_a_changed_price_by_deactivating_it_and_creating_a_new_one():
    load()
    old = active_price("starter", "yearly")
    old.unit_amount = 3000
    old.save()

    output = load("--overwrite")

    old.refresh_from_db()
    assert (old.active, old.unit_amount) == (False, 3000)  # kept as it was for the checkout sessions that point at it
    new = active_price("starter", "yearly")
    assert new.pk != old.pk and new.unit_amount == 3588
    assert "0 created, 1 updated" in output
    assert "1 replaced" in output
    assert "0 created, 0 updated" in load("--overwrite")


def test_overwrite_restores_products_coupons_and_switched_off_prices():
    load()
    Product.objects.filter(code="starter").update(name="Starter Plus", active=False)
    Price.objects.filter(product__code="vps-basic", billing_cycle="monthly").update(active=False)
    Coupon.objects.filter(code="WELCOME10").update(percent_off=15, active=False)

    load("--overwrite")

    starter = Product.objects.get(code="starter")
    assert (starter.name, starter.active) == ("Hosting Starter", True)
    assert active_price("vps-basic", "monthly").unit_amount == 1999
    coupon = Coupon.objects.get()
    assert (coupon.percent_off, coupon.active) == (10, True)


def test_overwrite_sets_trial_days_in_place():
    load()
    price = active_price("starter", "monthly")
    Price.objects.filter(pk=price.pk).update(trial_days=14)

    report = catalog_load(data=catalog_data(), overwrite=True)

    price.refresh_from_db()
    assert (price.active, price.trial_days) == (True, None)
    assert report.prices_updated == 1 and report.prices_replaced == 0


def test_overwrite_never_touches_the_redemption_count():
    load()
    Coupon.objects.update(times_redeemed=7, percent_off=20)

    load("--overwrite")

    assert Coupon.objects.get().times_redeemed == 7


# --- --dry-run --------------------------------------------------------------------------------------------------------


def test_dry_run_reports_what_it_would_create_and_writes_nothing():
    output = load("--dry-run")

    assert "43 created, 0 updated" in output
    assert "Dry run: nothing was written." in output
    assert not Product.objects.exists() and not Price.objects.exists() and not Coupon.objects.exists()


def test_dry_run_of_an_overwrite_leaves_staff_edits_in_place():
    load()
    Product.objects.filter(code="starter").update(name="Starter Plus")

    output = load("--overwrite", "--dry-run")

    assert "0 created, 1 updated" in output
    assert Product.objects.get(code="starter").name == "Starter Plus"


def test_verbosity_zero_prints_nothing():
    out = StringIO()
    call_command("catalog_load", verbosity=0, stdout=out)

    assert out.getvalue() == ""
    assert Product.objects.count() == 10


# --- Invalid files ----------------------------------------------------------------------------------------------------


def _with_starter(change) -> dict:
    data = catalog_data()
    change(data["products"][0])
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _with_starter(lambda p: p["prices"].update(quarterly={"per_month": 599})),
            "product 'starter', quarterly price: unknown billing cycle 'quarterly'",
        ),
        (_with_starter(lambda p: p.update(type="dedicated")), "product 'starter': unknown type 'dedicated'"),
        (
            _with_starter(lambda p: p["prices"].update(yearly={"per_month": 0})),
            "product 'starter', yearly price: per_month must be a positive whole number of cents; got 0",
        ),
        (
            _with_starter(lambda p: p["prices"].update(monthly={"unit_amount": -799})),
            "product 'starter', monthly price: unit_amount must be a positive whole number of cents; got -799",
        ),
        (
            _with_starter(lambda p: p["prices"].update(monthly={"per_month": 7.99})),
            "product 'starter', monthly price: per_month must be a positive whole number of cents; got 7.99",
        ),
        (
            _with_starter(lambda p: p["prices"].update(monthly={"per_month": 799, "unit_amount": 799})),
            "give exactly one of per_month and unit_amount",
        ),
        (_with_starter(lambda p: p.update(code="Starter Plan")), "code: Lower-case letters, digits and hyphens only."),
        (_with_starter(lambda p: p.update(sort_ordr=1)), "product 'starter': unknown key 'sort_ordr'"),
        ({**catalog_data(), "version": 2}, "version must be 1"),
        (
            {**catalog_data(), "coupons": [{"code": "HALF", "percent_off": 50, "amount_off": 100}]},
            "coupon 'HALF': Give a percentage or an amount off: one of them, not both.",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "NONE", "duration": "once"}]},
            "coupon 'NONE': Give a percentage or an amount off: one of them, not both.",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "AGAIN", "percent_off": 5, "duration": "repeating"}]},
            "coupon 'AGAIN': A repeating coupon needs its number of months.",
        ),
        (
            {
                **catalog_data(),
                "coupons": [
                    {
                        "code": "LATE",
                        "percent_off": 5,
                        "valid_from": "2026-12-31T00:00:00Z",
                        "valid_until": "2026-12-01T00:00:00Z",
                    }
                ],
            },
            "coupon 'LATE': Valid until must be later than valid from.",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "ODD", "percent_off": 12.345}]},
            "coupon 'ODD': percent_off: Ensure that there are no more than 2 decimal places.",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "FIVE", "amount_off": 0}]},
            "coupon 'FIVE': amount_off: Ensure this value is greater than or equal to 1.",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "VPS", "percent_off": 5, "products": ["vps-pro"]}]},
            "coupon 'VPS': product 'vps-pro' is not in this file's products",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "YES", "percent_off": True}]},
            "coupon 'YES': percent_off must be a number; got True",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "TEN", "percent_off": "ten"}]},
            "coupon 'TEN': percent_off must be a number; got 'ten'",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "ONE", "percent_off": 5, "products": "starter"}]},
            "coupon 'ONE': products must be a list of product codes",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "ONE", "percent_off": 5, "billing_cycles": "yearly"}]},
            "coupon 'ONE': billing_cycles must be a list of billing cycles",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "X", "percent_off": 5, "valid_until": "2026-12-31"}]},
            "coupon 'X', valid_until: needs a time zone",
        ),
        (
            {**catalog_data(), "coupons": [{"code": "X", "percent_off": 5, "valid_from": "next monday"}]},
            "coupon 'X', valid_from: must be an ISO 8601 date and time",
        ),
    ],
)
def test_an_invalid_file_is_refused_naming_the_entry_and_nothing_is_written(tmp_path, data, message):
    path = write_catalog(tmp_path, data)

    with pytest.raises(CommandError) as raised:
        load("--file", path)

    assert message in str(raised.value)
    assert "nothing was written" in str(raised.value)
    assert not Product.objects.exists() and not Price.objects.exists() and not Coupon.objects.exists()


def test_an_invalid_file_changes_nothing_even_with_overwrite(tmp_path):
    load()
    data = catalog_data()
    data["products"][0]["name"] = "Renamed"
    data["products"][-1]["prices"]["weekly"] = {"per_month": 100}
    before = row_timestamps()

    with pytest.raises(CommandError, match="unknown billing cycle 'weekly'"):
        load("--overwrite", "--file", write_catalog(tmp_path, data))

    assert row_timestamps() == before
    assert Product.objects.get(code="starter").name == "Hosting Starter"


def test_every_problem_of_a_file_is_listed_at_once(tmp_path):
    data = catalog_data()
    data["products"][0]["type"] = "dedicated"
    data["products"][1]["prices"]["monthly"] = {"per_month": -1}
    data["products"].append(dict(data["products"][2]))

    with pytest.raises(CommandError) as raised:
        load("--file", write_catalog(tmp_path, data))

    message = str(raised.value)
    assert "unknown type 'dedicated'" in message
    assert "product 'premium', monthly price" in message
    assert "product 'business': appears more than once" in message


def test_a_key_given_twice_is_refused_rather_than_silently_dropped(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(
        DEFAULT_CATALOG_FILE.read_text().replace(
            '"monthly":   {"per_month": 799},', '"monthly":   {"per_month": 799}, "monthly": {"per_month": 1},', 1
        )
    )

    with pytest.raises(CommandError, match="key 'monthly' appears twice"):
        load("--file", str(path))


@pytest.mark.parametrize(
    ("content", "message"), [(None, "Cannot read the catalog file"), ("{not json", "is not valid JSON")]
)
def test_a_missing_or_malformed_file_is_refused(tmp_path, content, message):
    path = tmp_path / "catalog.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(CommandError, match=message):
        load("--file", str(path))

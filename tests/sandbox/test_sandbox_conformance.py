"""Every object the sandbox returns has the keys and nesting of Stripe's own fixture for its type."""

import pytest


def key_differences(ours, fixture, path="") -> list[str]:
    """Keys missing or extra in `ours`, recursively wherever the fixture has a hash.

    An empty hash in the fixture is a free-form map (metadata); a hash may be null in ours (nullable fields),
    and in a list of hashes every element of ours is compared with the fixture's first.
    """
    if isinstance(fixture, dict) and fixture:
        if ours is None:
            return []
        if not isinstance(ours, dict):
            return [f"{path or '.'}: a hash in the fixture, {type(ours).__name__} in ours"]
        differences = [f"missing {path}.{key}" for key in sorted(fixture.keys() - ours.keys())]
        differences += [f"unexpected {path}.{key}" for key in sorted(ours.keys() - fixture.keys())]
        for key in sorted(fixture.keys() & ours.keys()):
            differences += key_differences(ours[key], fixture[key], f"{path}.{key}")
        return differences
    if isinstance(fixture, list) and fixture and isinstance(fixture[0], dict) and isinstance(ours, list):
        return [
            difference
            for index, item in enumerate(ours)
            for difference in key_differences(item, fixture[0], f"{path}[{index}]")
        ]
    return []


def assert_conforms(ours: dict, fixture: dict, object_type: str) -> None:
    differences = key_differences(ours, fixture)
    assert not differences, f"{object_type} differs from Stripe's fixture:\n" + "\n".join(differences)


@pytest.fixture
def list_fixture(stripe_fixtures):
    # The fixtures have no `list` resource; an account's external_accounts is Stripe's own list object.
    return stripe_fixtures["account"]["external_accounts"]


@pytest.fixture
def created(stripe_client, session_params):
    """A customer, a coupon and a subscription session with price_data, a discount and metadata."""
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com", "metadata": {"ref": "u1"}})
    coupon = stripe_client.v1.coupons.create(
        params={"percent_off": 20, "duration": "repeating", "duration_in_months": 3, "name": "Launch"}
    )
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(
            discounts=[{"coupon": coupon.id}],
            metadata={"order": "42"},
            subscription_data={"trial_period_days": 14, "metadata": {"order": "42"}},
        )
    )
    return {"customer": customer, "coupon": coupon, "session": session}


def raw(stripe_object) -> dict:
    """The JSON the sandbox sent, before stripe-python turned it into objects."""
    return stripe_object.last_response.data


def test_account_matches_fixture(stripe_client, stripe_fixtures):
    account = stripe_client.v1.accounts.retrieve_current()

    assert_conforms(raw(account), stripe_fixtures["account"], "account")


def test_customer_matches_fixture(created, stripe_client, stripe_fixtures):
    retrieved = stripe_client.v1.customers.retrieve(created["customer"].id)

    assert_conforms(raw(created["customer"]), stripe_fixtures["customer"], "customer (create)")
    assert_conforms(raw(retrieved), stripe_fixtures["customer"], "customer (retrieve)")


def test_coupon_matches_fixture(created, stripe_client, stripe_fixtures):
    retrieved = stripe_client.v1.coupons.retrieve(created["coupon"].id)

    assert_conforms(raw(created["coupon"]), stripe_fixtures["coupon"], "coupon (create)")
    assert_conforms(raw(retrieved), stripe_fixtures["coupon"], "coupon (retrieve)")


def test_created_session_matches_fixture(created, stripe_fixtures):
    assert_conforms(raw(created["session"]), stripe_fixtures["checkout.session"], "checkout.session")


def test_session_with_expanded_line_items_matches_fixtures(created, stripe_client, stripe_fixtures, list_fixture):
    session = raw(stripe_client.v1.checkout.sessions.retrieve(created["session"].id, params={"expand": ["line_items"]}))

    line_items = session.pop("line_items")  # an includable field: present only when expanded
    assert_conforms(session, stripe_fixtures["checkout.session"], "checkout.session (retrieve)")
    assert_conforms(line_items, list_fixture, "line_items list")
    assert len(line_items["data"]) == 1
    assert_conforms(line_items["data"][0], stripe_fixtures["item"], "item")


def test_line_item_list_matches_fixtures(created, stripe_client, stripe_fixtures, list_fixture):
    line_items = raw(stripe_client.v1.checkout.sessions.line_items.list(created["session"].id))

    assert_conforms(line_items, list_fixture, "line items list")
    assert_conforms(line_items["data"][0], stripe_fixtures["item"], "item")


def test_session_list_matches_fixtures(created, stripe_client, stripe_fixtures, list_fixture):
    sessions = raw(stripe_client.v1.checkout.sessions.list())

    assert_conforms(sessions, list_fixture, "sessions list")
    assert_conforms(sessions["data"][0], stripe_fixtures["checkout.session"], "checkout.session (list)")


def test_product_and_price_made_from_price_data_match_fixtures(created, stripe_client, stripe_fixtures):
    item = stripe_client.v1.checkout.sessions.line_items.list(created["session"].id).data[0]

    price = stripe_client.v1.prices.retrieve(item.price.id)
    product = stripe_client.v1.products.retrieve(price.product)

    assert_conforms(raw(price), stripe_fixtures["price"], "price")
    assert_conforms(raw(product), stripe_fixtures["product"], "product")


def test_expired_session_matches_fixture(created, stripe_client, stripe_fixtures):
    expired = stripe_client.v1.checkout.sessions.expire(created["session"].id)

    assert_conforms(raw(expired), stripe_fixtures["checkout.session"], "checkout.session (expired)")


def test_discount_in_expanded_breakdown_matches_fixture(created, stripe_client, stripe_fixtures):
    session = raw(
        stripe_client.v1.checkout.sessions.retrieve(
            created["session"].id, params={"expand": ["total_details.breakdown"]}
        )
    )

    [entry] = session["total_details"]["breakdown"]["discounts"]
    assert_conforms(entry["discount"], stripe_fixtures["discount"], "discount")


def test_key_differences_reports_missing_extra_and_nested_keys():
    fixture = {"a": 1, "b": {"c": 1, "d": 2}, "metadata": {}}
    ours = {"a": 1, "b": {"c": 1, "e": 3}, "metadata": {"anything": "goes"}, "z": 0}

    assert key_differences(ours, fixture) == ["unexpected .z", "missing .b.d", "unexpected .b.e"]

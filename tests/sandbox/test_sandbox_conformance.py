"""Every object the sandbox returns has the keys and nesting of Stripe's own fixture for its type, and no field
that stripe-python's types for our API version do not declare."""

import re

import pytest
import requests
import stripe

from tests.sandbox.calls import raw
from tests.sandbox.stripe_types import undeclared_fields


def key_differences(ours, fixture, path="") -> list[str]:
    """Keys missing or extra in `ours`, recursively wherever the fixture has a hash.

    An empty hash in the fixture is a free-form map, and so is `metadata` always (a fixture may show an example key
    in it); a hash may be null in ours (nullable fields), and in a list of hashes every element of ours is compared
    with the fixture's first.
    """
    if isinstance(fixture, dict) and fixture:
        if ours is None:
            return []
        if not isinstance(ours, dict):
            return [f"{path or '.'}: a hash in the fixture, {type(ours).__name__} in ours"]
        differences = [f"missing {path}.{key}" for key in sorted(fixture.keys() - ours.keys())]
        differences += [f"unexpected {path}.{key}" for key in sorted(ours.keys() - fixture.keys())]
        for key in sorted(fixture.keys() & ours.keys() - {"metadata"}):
            differences += key_differences(ours[key], fixture[key], f"{path}.{key}")
        return differences
    if isinstance(fixture, list) and fixture and isinstance(fixture[0], dict) and isinstance(ours, list):
        return [
            difference
            for index, item in enumerate(ours)
            for difference in key_differences(item, fixture[0], f"{path}[{index}]")
        ]
    return []


# Where Stripe's fixture file lags the API version we render (2026-05-27.dahlia), checked against stripe-python's own
# typed objects: since 2025-03-31.basil an invoice has no top-level `subscription` (it is
# `parent.subscription_details.subscription`), and an invoice payment's `payment` names its PaymentIntent.
NOT_IN_DAHLIA = {"missing .subscription"}
FIXTURE_LAGS = {"invoice": NOT_IN_DAHLIA, "invoice_payment": {"unexpected .payment.payment_intent"}}


def assert_conforms(ours: dict, fixture: dict, object_type: str) -> None:
    expected = FIXTURE_LAGS.get(ours.get("object"), set()) if isinstance(ours, dict) else set()
    differences = [difference for difference in key_differences(ours, fixture) if difference not in expected]
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
    fixture = {"a": 1, "b": {"c": 1, "d": 2}, "metadata": {"example": "key"}}
    ours = {"a": 1, "b": {"c": 1, "e": 3}, "metadata": {"anything": "goes"}, "z": 0}

    assert key_differences(ours, fixture) == ["unexpected .z", "missing .b.d", "unexpected .b.e"]


@pytest.fixture
def paid(stripe_client, session_params):
    """A subscription session with a coupon and a one-time item besides the plan, paid by card."""
    coupon = stripe_client.v1.coupons.create(
        params={"percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    )
    params = session_params(discounts=[{"coupon": coupon.id}], subscription_data={"metadata": {"order": "42"}})
    params["line_items"].append(
        {"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 1500, "product_data": {"name": "Setup"}}}
    )
    session = stripe_client.v1.checkout.sessions.create(params=params)
    return stripe_client.deserialize(
        stripe_client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete"), api_mode="V1"
    )


def test_completed_session_matches_fixture(paid, stripe_client, stripe_fixtures):
    retrieved = stripe_client.v1.checkout.sessions.retrieve(paid.id)

    assert_conforms(raw(retrieved), stripe_fixtures["checkout.session"], "checkout.session (complete)")


def test_subscription_and_its_items_match_fixtures(paid, stripe_client, stripe_fixtures, list_fixture):
    subscription = raw(stripe_client.v1.subscriptions.retrieve(paid.subscription))
    items = raw(stripe_client.v1.subscription_items.list(params={"subscription": paid.subscription}))
    item = raw(stripe_client.v1.subscription_items.retrieve(items["data"][0]["id"]))

    assert_conforms(subscription, stripe_fixtures["subscription"], "subscription")
    assert_conforms(items, list_fixture, "subscription items list")
    assert_conforms(item, stripe_fixtures["subscription_item"], "subscription_item")


def test_invoice_and_its_lines_match_fixtures(paid, stripe_client, stripe_fixtures, list_fixture):
    invoice = raw(stripe_client.v1.invoices.retrieve(paid.invoice))
    lines = raw(stripe_client.v1.invoices.line_items.list(paid.invoice))

    assert_conforms(invoice, stripe_fixtures["invoice"], "invoice")
    assert_conforms(lines, list_fixture, "invoice lines list")
    assert len(lines["data"]) == 2
    for line in lines["data"]:
        assert_conforms(line, stripe_fixtures["line_item"], "line_item")


def test_expanded_discounts_match_fixture(paid, stripe_client, stripe_fixtures):
    invoice = raw(
        stripe_client.v1.invoices.retrieve(paid.invoice, params={"expand": ["discounts", "lines.data.discounts"]})
    )

    [discount] = invoice["discounts"]
    assert_conforms(discount, stripe_fixtures["discount"], "discount (of the subscription)")
    for line in invoice["lines"]["data"]:
        assert_conforms(line["discounts"][0], stripe_fixtures["discount"], "discount (of an invoice line)")


def test_payment_intent_charge_and_payment_method_match_fixtures(paid, stripe_client, stripe_fixtures):
    [listed] = stripe_client.v1.payment_intents.list(params={"customer": paid.customer}).data
    intent = stripe_client.v1.payment_intents.retrieve(listed.id)
    charge = stripe_client.v1.charges.retrieve(intent.latest_charge)
    method = stripe_client.v1.payment_methods.retrieve(intent.payment_method)

    assert_conforms(raw(intent), stripe_fixtures["payment_intent"], "payment_intent")
    assert_conforms(raw(charge), stripe_fixtures["charge"], "charge")
    assert_conforms(raw(method), stripe_fixtures["payment_method"], "payment_method")


def _without_type_details(obj: dict, type: str) -> dict:
    # Stripe's fixtures show only the card variant of type-specific hashes; a bank debit's `us_bank_account` hash
    # has no counterpart there, so it is left out of the comparison (and checked for presence instead).
    assert type in obj, f"no {type} hash"
    return {key: value for key, value in obj.items() if key != type}


def test_bank_debit_payment_objects_match_fixtures(stripe_client, stripe_fixtures, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    completed = stripe_client.deserialize(
        stripe_client.raw_request(
            "post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete", payment_status="unpaid"
        ),
        api_mode="V1",
    )
    [listed] = stripe_client.v1.payment_intents.list(params={"customer": completed.customer}).data
    intent = stripe_client.v1.payment_intents.retrieve(listed.id)
    charge = raw(stripe_client.v1.charges.retrieve(intent.latest_charge))
    method = raw(stripe_client.v1.payment_methods.retrieve(intent.payment_method))

    assert_conforms(raw(intent), stripe_fixtures["payment_intent"], "payment_intent (processing)")
    charge["payment_method_details"] = _without_type_details(charge["payment_method_details"], "us_bank_account")
    fixture_charge = dict(stripe_fixtures["charge"])
    fixture_charge["payment_method_details"] = {"type": "card"}
    assert_conforms(charge, fixture_charge, "charge (pending)")
    fixture_method = {key: value for key, value in stripe_fixtures["payment_method"].items() if key != "card"}
    assert_conforms(_without_type_details(method, "us_bank_account"), fixture_method, "payment_method (bank)")


def test_events_and_their_objects_match_fixtures(paid, stripe_client, stripe_fixtures, list_fixture):
    events = raw(stripe_client.v1.events.list(params={"limit": 100}))

    # The fixture's event is about a plan; its `data.object` is compared with the fixture of its own type.
    event_fixture = {**stripe_fixtures["event"], "data": {"object": {}}}
    assert_conforms(events, list_fixture, "events list")
    assert len(events["data"]) == 13  # coupon.created, then the twelve of a paid completion
    for event in events["data"]:
        obj = event["data"]["object"]
        data = {key: value for key, value in event["data"].items() if key != "previous_attributes"}
        assert_conforms({**event, "data": data}, event_fixture, f"event {event['type']}")
        assert_conforms(obj, stripe_fixtures[obj["object"]], f"data.object of {event['type']}")


def test_webhook_endpoint_matches_fixture_and_shows_its_secret_only_when_created(stripe_client, stripe_fixtures):
    created = raw(
        stripe_client.v1.webhook_endpoints.create(
            params={"url": "https://shop.test/hooks", "enabled_events": ["checkout.session.completed"]}
        )
    )
    retrieved = raw(stripe_client.v1.webhook_endpoints.retrieve(created["id"]))
    listed = raw(stripe_client.v1.webhook_endpoints.list())["data"][0]

    assert created.pop("secret").startswith("whsec_")
    assert_conforms(created, stripe_fixtures["webhook_endpoint"], "webhook_endpoint (create)")
    assert_conforms(retrieved, stripe_fixtures["webhook_endpoint"], "webhook_endpoint (retrieve)")
    assert_conforms(listed, stripe_fixtures["webhook_endpoint"], "webhook_endpoint (list)")


def test_deleted_webhook_endpoint_matches_fixture(stripe_client, stripe_fixtures):
    endpoint = stripe_client.v1.webhook_endpoints.create(
        params={"url": "https://shop.test/hooks", "enabled_events": ["*"]}
    )

    deleted = raw(stripe_client.v1.webhook_endpoints.delete(endpoint.id))

    assert_conforms(deleted, stripe_fixtures["deleted_webhook_endpoint"], "deleted_webhook_endpoint")


def test_renewal_refund_invoice_payment_and_test_clock_match_fixtures(
    stripe_client, session_params, sandbox_url, stripe_fixtures, list_fixture
):
    clock = raw(stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_800_000_000}))
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    response = stripe_client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete")
    completed = stripe_client.deserialize(response, api_mode="V1")
    requests.post(f"{sandbox_url}/_sandbox/clock/advance", json={"seconds": 32 * 86400}, timeout=10)
    [charge, _] = stripe_client.v1.charges.list(params={"customer": completed.customer}).data
    refund = raw(stripe_client.v1.refunds.create(params={"charge": charge.id, "amount": 100}))
    [renewal, _] = stripe_client.v1.invoices.list(params={"customer": completed.customer}).data
    payments = raw(stripe_client.v1.invoice_payments.list(params={"invoice": renewal.id}))

    assert_conforms(clock, stripe_fixtures["test_helpers.test_clock"], "test_helpers.test_clock")
    assert_conforms(refund, stripe_fixtures["refund"], "refund")
    assert_conforms(raw(stripe_client.v1.charges.retrieve(charge.id)), stripe_fixtures["charge"], "charge (refunded)")
    assert_conforms(raw(stripe_client.v1.invoices.retrieve(renewal.id)), stripe_fixtures["invoice"], "invoice")
    assert_conforms(payments, list_fixture, "invoice payments list")
    assert_conforms(payments["data"][0], stripe_fixtures["invoice_payment"], "invoice_payment")
    events = raw(stripe_client.v1.events.list(params={"limit": 100}))
    for event in events["data"]:
        obj = event["data"]["object"]
        assert_conforms(obj, stripe_fixtures[obj["object"]], f"data.object of {event['type']}")


# The billing portal, invoice previews and plan changes


def _paid_subscription(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    return stripe_client.deserialize(
        stripe_client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete"), api_mode="V1"
    )


def test_billing_portal_sessions_match_fixture(stripe_client, session_params, stripe_fixtures):
    paid = _paid_subscription(stripe_client, session_params)

    plain = raw(stripe_client.v1.billing_portal.sessions.create(params={"customer": paid.customer}))
    with_flow = raw(stripe_client.v1.billing_portal.sessions.create(params={
        "customer": paid.customer,
        "return_url": "https://shop.test/account/",
        "flow_data": {"type": "subscription_cancel", "subscription_cancel": {"subscription": paid.subscription},
                      "after_completion": {"type": "redirect", "redirect": {"return_url": "https://shop.test/"}}},
    }))  # fmt: skip

    assert_conforms(plain, stripe_fixtures["billing_portal.session"], "billing_portal.session")
    assert_conforms(with_flow, stripe_fixtures["billing_portal.session"], "billing_portal.session (flow)")


# An invoice preview has no id, as Stripe answers it; an invoice item's parent names its subscription item too, as
# stripe-python's InvoiceItem has it.
PREVIEW_LAGS = {"missing .id", *NOT_IN_DAHLIA}
INVOICE_ITEM_LAGS = {"unexpected .parent.subscription_details.subscription_item"}


def _change(stripe_client, paid, unit_amount: int, **extra) -> dict:
    item = stripe_client.v1.subscriptions.retrieve(paid.subscription)["items"].data[0]
    price_data = {
        "currency": "usd",
        "product": item.price.product,
        "unit_amount": unit_amount,
        "recurring": {"interval": "month"},
    }
    return {"items": [{"id": item.id, "price_data": price_data}], **extra}


def test_invoice_previews_and_their_lines_match_fixtures(stripe_client, session_params, stripe_fixtures):
    paid = _paid_subscription(stripe_client, session_params)

    for details in (
        _change(stripe_client, paid, 1999, proration_behavior="always_invoice"),
        _change(stripe_client, paid, 1999),
        None,
    ):
        params = {"subscription": paid.subscription, **({"subscription_details": details} if details else {})}
        preview = raw(stripe_client.v1.invoices.create_preview(params=params))

        differences = [d for d in key_differences(preview, stripe_fixtures["invoice"]) if d not in PREVIEW_LAGS]
        assert not differences, f"invoice preview differs: {differences}"
        for line in preview["lines"]["data"]:
            assert_conforms(line, stripe_fixtures["line_item"], "line_item (preview)")


def test_plan_change_objects_and_events_match_fixtures(stripe_client, session_params, stripe_fixtures):
    paid = _paid_subscription(stripe_client, session_params)
    updated = stripe_client.v1.subscriptions.update(
        paid.subscription, params=_change(stripe_client, paid, 1999, proration_behavior="always_invoice")
    )
    stripe_client.v1.subscriptions.update(paid.subscription, params=_change(stripe_client, paid, 2999))

    invoice = raw(stripe_client.v1.invoices.retrieve(updated.latest_invoice))
    assert_conforms(invoice, stripe_fixtures["invoice"], "invoice (subscription_update)")
    for line in invoice["lines"]["data"]:
        assert_conforms(line, stripe_fixtures["line_item"], "line_item (proration)")
    invoice_items = raw(stripe_client.v1.invoice_items.list())
    assert len(invoice_items["data"]) == 4
    for entry in invoice_items["data"]:
        differences = [d for d in key_differences(entry, stripe_fixtures["invoiceitem"]) if d not in INVOICE_ITEM_LAGS]
        assert not differences, f"invoiceitem differs: {differences}"
    assert_conforms(
        raw(stripe_client.v1.subscriptions.retrieve(paid.subscription)),
        stripe_fixtures["subscription"],
        "subscription (changed)",
    )
    for event in raw(stripe_client.v1.events.list(params={"limit": 100}))["data"]:
        obj = event["data"]["object"]
        expected = INVOICE_ITEM_LAGS if obj["object"] == "invoiceitem" else FIXTURE_LAGS.get(obj["object"], set())
        differences = [d for d in key_differences(obj, stripe_fixtures[obj["object"]]) if d not in expected]
        assert not differences, f"data.object of {event['type']} differs: {differences}"


# Against stripe-python's types for the API version we pin (2026-05-27.dahlia; stripe-python 15.6.2 types
# 2026-08-26.dahlia, the same shapes here): fields a newer version removed, which the fixture file still shows.


def _full_life(stripe_client, session_params, sandbox_url) -> str:
    """A card subscription that renews, changes plan and is previewed, and a bank debit that settles: most objects
    and events the sandbox makes. Returns the card subscription's id."""
    paid = _paid_subscription(stripe_client, session_params)
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete", payment_status="unpaid"
    )
    stripe_client.raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{session.id}/async_payment", result="succeeded"
    )
    requests.post(f"{sandbox_url}/_sandbox/clock/advance", json={"seconds": 32 * 86400}, timeout=10).raise_for_status()
    stripe_client.v1.subscriptions.update(
        paid.subscription, params=_change(stripe_client, paid, 1999, proration_behavior="always_invoice")
    )
    return paid.subscription


def test_no_invoice_carries_the_top_level_subscription_dahlia_removed(
    stripe_client, session_params, sandbox_url, sandbox_http, webhook_receiver
):
    invoice_events = ["invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded"]
    stripe_client.v1.webhook_endpoints.create(params={"url": webhook_receiver.url, "enabled_events": invoice_events})
    subscription = _full_life(stripe_client, session_params, sandbox_url)
    listed = raw(stripe_client.v1.invoices.list(params={"limit": 100}))["data"]
    retrieved = [
        raw(stripe_client.v1.invoices.retrieve(invoice["id"], params={"expand": ["payments"]})) for invoice in listed
    ]
    preview = raw(stripe_client.v1.invoices.create_preview(params={"subscription": subscription}))
    in_events = [
        event["data"]["object"]
        for event in raw(stripe_client.v1.events.list(params={"limit": 100}))["data"]
        if event["data"]["object"]["object"] == "invoice"
    ]
    assert sandbox_http.control("POST", "deliveries/wait", json={"timeout": 10}).json()["idle"]
    delivered = [request.json()["data"]["object"] for request in webhook_receiver.received]

    invoices = [*listed, *retrieved, preview, *in_events, *delivered]
    assert len(listed) >= 5 and in_events and delivered  # two first invoices, two renewals, a proration
    for invoice in invoices:
        assert "subscription" not in invoice, f"{invoice.get('id')} has a top-level subscription"
        assert invoice["parent"]["type"] == "subscription_details"
        assert invoice["parent"]["subscription_details"]["subscription"].startswith("sub_")
        assert undeclared_fields(invoice) == [], invoice.get("id")
    assert subscription in {invoice["parent"]["subscription_details"]["subscription"] for invoice in listed}


def test_every_object_and_webhook_payload_has_only_fields_stripe_python_declares(
    stripe_client, session_params, sandbox_url, sandbox_http, webhook_receiver
):
    stripe_client.v1.webhook_endpoints.create(params={"url": webhook_receiver.url, "enabled_events": ["*"]})
    subscription = _full_life(stripe_client, session_params, sandbox_url)
    customers = raw(stripe_client.v1.customers.list())["data"]
    answers = [
        raw(stripe_client.v1.subscriptions.retrieve(subscription, params={"expand": ["latest_invoice"]})),
        *raw(stripe_client.v1.checkout.sessions.list(params={"expand": ["data.line_items"]}))["data"],
        *raw(stripe_client.v1.charges.list(params={"limit": 100}))["data"],
        *raw(stripe_client.v1.payment_intents.list(params={"limit": 100}))["data"],
        *raw(stripe_client.v1.invoice_items.list())["data"],
        *customers,
        *[
            method
            for customer in customers
            for method in raw(stripe_client.v1.customers.payment_methods.list(customer["id"]))["data"]
        ],
        raw(stripe_client.v1.accounts.retrieve_current()),
    ]
    assert sandbox_http.control("POST", "deliveries/wait", json={"timeout": 10}).json()["idle"]
    payloads = [request.json() for request in webhook_receiver.received]

    assert len(payloads) > 40
    problems = {f"{obj['object']}{path}" for obj in answers for path in undeclared_fields(obj)}
    problems |= {f"event{path}" for payload in payloads for path in undeclared_fields(payload)}
    problems |= {
        f"{payload['type']} data.object{path}"
        for payload in payloads
        for path in undeclared_fields(payload["data"]["object"])
    }
    assert problems == set()


def test_undeclared_fields_finds_removed_and_unknown_keys_at_any_depth():
    invoice = {
        "object": "invoice",
        "id": "in_1",
        "subscription": "sub_1",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1", "x": 1}},
        "lines": {"object": "list", "data": [{"object": "line_item", "subscription": "sub_1", "y": 2}]},
        "metadata": {"anything": "goes"},
    }

    assert undeclared_fields(invoice) == [".subscription", ".parent.subscription_details.x", ".lines.y"]


def _bank_debit_charges(stripe_client, session_params, sandbox_url) -> list[dict]:
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete", payment_status="unpaid"
    )
    stripe_client.raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{session.id}/async_payment", result="succeeded"
    )
    requests.post(f"{sandbox_url}/_sandbox/clock/advance", json={"seconds": 32 * 86400}, timeout=10).raise_for_status()
    return raw(stripe_client.v1.charges.list(params={"limit": 100}))["data"]


def test_a_bank_debit_charge_names_its_mandate_which_can_be_retrieved(
    stripe_client, session_params, sandbox_url, stripe_fixtures
):
    renewal, first = _bank_debit_charges(stripe_client, session_params, sandbox_url)
    mandate_id = first["payment_method_details"]["us_bank_account"]["mandate"]

    assert re.fullmatch(r"mandate_[A-Za-z0-9]{24}", mandate_id)
    assert renewal["payment_method_details"]["us_bank_account"]["mandate"] == mandate_id  # multi-use: renewals too
    mandate = raw(stripe_client.v1.mandates.retrieve(mandate_id))
    assert (mandate["id"], mandate["payment_method"], mandate["status"], mandate["type"]) == (
        mandate_id,
        first["payment_method"],
        "active",
        "multi_use",
    )
    assert mandate["payment_method_details"]["type"] == "us_bank_account"
    assert mandate["customer_acceptance"]["type"] == "online"
    assert undeclared_fields(mandate) == []
    # The fixture's mandate is a SEPA debit; ours is a US bank account, compared without the type's own hash.
    fixture = {**stripe_fixtures["mandate"], "payment_method_details": {"type": "sepa_debit"}}
    ours = {
        **mandate,
        "payment_method_details": _without_type_details(mandate["payment_method_details"], "us_bank_account"),
    }
    assert_conforms(ours, fixture, "mandate")
    expanded = raw(stripe_client.v1.mandates.retrieve(mandate_id, params={"expand": ["payment_method"]}))
    assert expanded["payment_method"]["id"] == first["payment_method"]


def test_a_card_charge_has_no_mandate_and_an_unknown_mandate_is_404(stripe_client, session_params):
    paid = _paid_subscription(stripe_client, session_params)
    [charge] = raw(stripe_client.v1.charges.list(params={"customer": paid.customer}))["data"]

    assert charge["payment_method_details"]["card"]["mandate"] is None
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.mandates.retrieve("mandate_unknown")
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"

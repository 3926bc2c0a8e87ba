"""What Stripe validates on these calls, and the fields it computes for an open subscription session."""

import re
import time

import pytest
import stripe


def create_error(stripe_client, params) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.checkout.sessions.create(params=params)
    return raised.value


def with_price_data(session_params, **price_data):
    params = session_params()
    params["line_items"][0]["price_data"].update(price_data)
    return params


def test_a_new_session_shows_stripe_computed_fields(stripe_client, sandbox_url, session_params):
    coupon = stripe_client.v1.coupons.create(params={"percent_off": 20, "duration": "once"})
    params = session_params(discounts=[{"coupon": coupon.id}])
    params["line_items"][0]["quantity"] = 3
    before = int(time.time())

    session = stripe_client.v1.checkout.sessions.create(params=params)

    assert re.fullmatch(r"cs_test_[A-Za-z0-9]{58}", session.id)
    assert session.amount_subtotal == 3 * 799
    assert session.total_details.amount_discount == round(3 * 799 * 0.2)
    assert session.amount_total == 3 * 799 - round(3 * 799 * 0.2)
    assert (session.currency, session.status, session.payment_status) == ("usd", "open", "unpaid")
    assert session.livemode is False
    assert session.url == f"{sandbox_url}/c/pay/{session.id}"
    assert before <= session.created <= int(time.time())
    assert session.expires_at == session.created + 24 * 3600
    assert [discount.to_dict() for discount in session.discounts] == [{"coupon": coupon.id, "promotion_code": None}]


def test_an_amount_off_coupon_is_capped_at_the_subtotal(stripe_client, session_params):
    coupon = stripe_client.v1.coupons.create(params={"amount_off": 5000, "currency": "usd"})

    session = stripe_client.v1.checkout.sessions.create(params=session_params(discounts=[{"coupon": coupon.id}]))

    assert (session.amount_subtotal, session.total_details.amount_discount, session.amount_total) == (799, 799, 0)


def test_a_session_can_use_an_existing_active_price(stripe_client, session_params):
    price = stripe_client.v1.prices.create(
        params={
            "currency": "eur",
            "unit_amount": 1200,
            "recurring": {"interval": "year"},
            "product_data": {"name": "VPS"},
        }
    )

    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(line_items=[{"price": price.id, "quantity": 2}])
    )

    assert (session.currency, session.amount_subtotal) == ("eur", 2400)


@pytest.mark.parametrize(("interval", "count"), [("year", 4), ("month", 37), ("week", 157), ("day", 1096)])
def test_a_recurring_interval_over_three_years_is_rejected(stripe_client, session_params, interval, count):
    params = with_price_data(session_params, recurring={"interval": interval, "interval_count": count})

    error = create_error(stripe_client, params)

    assert error.http_status == 400
    assert error.param == "line_items[0][price_data][recurring][interval_count]"


@pytest.mark.parametrize(("interval", "count"), [("year", 3), ("month", 36), ("week", 156)])
def test_a_recurring_interval_of_exactly_three_years_is_accepted(stripe_client, session_params, interval, count):
    session = stripe_client.v1.checkout.sessions.create(
        params=with_price_data(session_params, recurring={"interval": interval, "interval_count": count})
    )

    item = stripe_client.v1.checkout.sessions.line_items.list(session.id).data[0]
    assert (item.price.recurring.interval, item.price.recurring.interval_count) == (interval, count)


def test_an_unknown_interval_is_rejected(stripe_client, session_params):
    error = create_error(stripe_client, with_price_data(session_params, recurring={"interval": "decade"}))

    assert error.param == "line_items[0][price_data][recurring][interval]"


@pytest.mark.parametrize("unit_amount", [-1, 7.5, "abc"])
def test_a_negative_or_non_integer_unit_amount_is_rejected(stripe_client, session_params, unit_amount):
    error = create_error(stripe_client, with_price_data(session_params, unit_amount=unit_amount))

    assert error.http_status == 400
    assert error.param == "line_items[0][price_data][unit_amount]"


def test_a_currency_must_have_three_letters(stripe_client, session_params):
    error = create_error(stripe_client, with_price_data(session_params, currency="dollars"))

    assert error.param == "line_items[0][price_data][currency]"


def test_an_unknown_coupon_is_a_resource_missing_error(stripe_client, session_params):
    error = create_error(stripe_client, session_params(discounts=[{"coupon": "NOPE"}]))

    assert error.http_status == 400
    assert error.code == "resource_missing"
    assert error.param == "discounts[0][coupon]"
    assert error.user_message == "No such coupon: 'NOPE'"


@pytest.mark.parametrize("seconds_ahead", [10 * 60, 25 * 3600])
def test_expires_at_outside_30_minutes_to_24_hours_is_rejected(stripe_client, session_params, seconds_ahead):
    error = create_error(stripe_client, session_params(expires_at=int(time.time()) + seconds_ahead))

    assert error.http_status == 400
    assert error.param == "expires_at"


def test_expires_at_within_the_window_is_kept(stripe_client, session_params):
    expires_at = int(time.time()) + 3600

    session = stripe_client.v1.checkout.sessions.create(params=session_params(expires_at=expires_at))

    assert session.expires_at == expires_at


@pytest.mark.parametrize(("missing", "param"), [("mode", "mode"), ("success_url", "success_url")])
def test_required_parameters_are_enforced(stripe_client, session_params, missing, param):
    params = session_params()
    del params[missing]

    error = create_error(stripe_client, params)

    assert error.param == param


def test_subscription_mode_needs_line_items(stripe_client, session_params):
    params = session_params()
    del params["line_items"]

    assert create_error(stripe_client, params).param == "line_items"


def test_subscription_mode_needs_a_recurring_price(stripe_client, session_params):
    params = session_params()
    del params["line_items"][0]["price_data"]["recurring"]

    error = create_error(stripe_client, params)

    assert "at least one recurring price" in error.user_message


def test_payment_mode_rejects_a_recurring_price(stripe_client, session_params):
    error = create_error(stripe_client, session_params(mode="payment"))

    assert error.param == "line_items[0][price_data][recurring]"


def test_a_line_item_needs_a_quantity(stripe_client, session_params):
    params = session_params()
    del params["line_items"][0]["quantity"]

    assert create_error(stripe_client, params).param == "line_items[0][quantity]"


def test_an_unknown_session_is_a_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.checkout.sessions.retrieve("cs_test_missing")

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.param == "id"


def test_expire_closes_an_open_session_and_fails_the_second_time(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    expired = stripe_client.v1.checkout.sessions.expire(session.id)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.checkout.sessions.expire(session.id)

    assert (expired.status, expired.url) == ("expired", None)
    assert raised.value.http_status == 400


def test_sessions_list_newest_first_in_pages(stripe_client, session_params):
    ids = [stripe_client.v1.checkout.sessions.create(params=session_params()).id for _ in range(3)]

    first = stripe_client.v1.checkout.sessions.list(params={"limit": 2})
    rest = stripe_client.v1.checkout.sessions.list(params={"limit": 2, "starting_after": first.data[-1].id})

    assert [session.id for session in first.data] == [ids[2], ids[1]]
    assert first.has_more is True
    assert [session.id for session in rest.data] == [ids[0]]
    assert rest.has_more is False
    assert first.url == "/v1/checkout/sessions"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"percent_off": 10, "amount_off": 100, "currency": "usd"}, "percent_off"),
        ({"duration": "once"}, "amount_off"),
        ({"percent_off": 0}, "percent_off"),
        ({"percent_off": 100.5}, "percent_off"),
        ({"amount_off": 100}, "currency"),
        ({"percent_off": 10, "duration": "repeating"}, "duration_in_months"),
    ],
)
def test_invalid_coupons_are_rejected(stripe_client, params, param):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.coupons.create(params=params)

    assert raised.value.http_status == 400
    assert raised.value.param == param


def test_a_coupon_id_can_be_used_once(stripe_client):
    stripe_client.v1.coupons.create(params={"id": "LAUNCH", "percent_off": 10})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.coupons.create(params={"id": "LAUNCH", "percent_off": 20})

    assert raised.value.code == "resource_already_exists"
    assert stripe_client.v1.coupons.retrieve("LAUNCH").percent_off == 10


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{n}": "v" for n in range(51)}, "metadata"),
        ({"k" * 41: "v"}, "metadata[" + "k" * 41 + "]"),
        ({"k": "v" * 501}, "metadata[k]"),
    ],
)
def test_metadata_limits_are_enforced(stripe_client, metadata, param):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.customers.create(params={"metadata": metadata})

    assert raised.value.param == param


def test_metadata_at_the_limits_is_accepted(stripe_client):
    metadata = {f"{n:02d}" + "k" * 38: "v" * 500 for n in range(50)}

    customer = stripe_client.v1.customers.create(params={"metadata": metadata})

    assert customer.metadata.to_dict() == metadata


# Enums: Stripe refuses a value outside the list its API reference (and stripe-python's types) give.


def test_an_unknown_locale_is_refused_as_stripe_refuses_it(sandbox_http, session_params):
    response = sandbox_http.api(
        "POST",
        "/v1/checkout/sessions",
        data={
            "mode": "subscription",
            "success_url": "https://shop.test/s",
            "locale": "xx",
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "799",
            "line_items[0][price_data][recurring][interval]": "month",
            "line_items[0][price_data][product_data][name]": "Plan",
            "line_items[0][quantity]": "1",
        },
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error.keys() == {"message", "type", "param"}
    assert (error["type"], error["param"]) == ("invalid_request_error", "locale")
    assert error["message"].startswith("Invalid locale: must be one of auto, bg, cs, ")
    assert error["message"].endswith(", zh, zh-HK, or zh-TW")


def test_an_unknown_payment_method_type_is_refused_with_its_index(stripe_client, session_params):
    error = create_error(stripe_client, session_params(payment_method_types=["card", "cheque"]))

    assert (error.http_status, error.param, error.code) == (400, "payment_method_types[1]", None)
    assert error.user_message.startswith("Invalid payment_method_types[1]: must be one of acss_debit, affirm, ")
    assert error.user_message.endswith(", us_bank_account, wechat_pay, or zip")


@pytest.mark.parametrize("locale", ["auto", "fr-CA", "es-419", "zh-TW"])
def test_every_locale_of_stripes_list_is_accepted(stripe_client, session_params, locale):
    session = stripe_client.v1.checkout.sessions.create(params=session_params(locale=locale))

    assert session.locale == locale


def test_payment_method_types_of_stripes_list_are_accepted(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(payment_method_types=["card", "us_bank_account", "link"])
    )

    assert session.payment_method_types == ["card", "us_bank_account", "link"]


def test_the_sandboxs_enums_are_stripe_pythons():
    from typing import Literal, get_args, get_origin

    from stripe.params.checkout._session_create_params import SessionCreateParams

    from stripe_sandbox.resources.checkout_sessions import LOCALES, PAYMENT_METHOD_TYPES

    def literals(annotation) -> set[str]:
        if get_origin(annotation) is Literal:
            return set(get_args(annotation))
        return {value for argument in get_args(annotation) for value in literals(argument)}

    hints = SessionCreateParams.__annotations__
    assert set(PAYMENT_METHOD_TYPES) == literals(hints["payment_method_types"])
    # `locale` is typed as a string literal ("Literal['auto', ...]|str"): read the names from it.
    assert set(LOCALES) == set(re.findall(r"'([^']+)'", str(hints["locale"])))

"""Stripe's wire format: nested form parameters, API keys, idempotency keys and response headers."""

import re

import pytest
import stripe

from stripe_sandbox.wire import StripeError, decode_form


def test_nested_form_parameters_decode_into_hashes_and_arrays():
    params = decode_form(
        "line_items[0][price_data][unit_amount]=799&line_items[0][quantity]=1"
        "&expand[]=line_items&expand[]=customer&metadata[order]=42&metadata[note]="
    )

    assert params == {
        "line_items": {"0": {"price_data": {"unit_amount": "799"}, "quantity": "1"}},
        "expand": ["line_items", "customer"],
        "metadata": {"order": "42", "note": ""},
    }


def test_a_parameter_given_as_both_value_and_hash_is_rejected():
    with pytest.raises(StripeError) as raised:
        decode_form("metadata=x&metadata[k]=v")

    assert raised.value.status == 400
    assert raised.value.param == "metadata[k]"


def test_stripe_python_nested_params_reach_the_objects(stripe_client, sandbox_http, session_params):
    params = session_params(metadata={"order": "42", "user": "u-7"}, client_reference_id="checkout-9")
    params["line_items"][0]["price_data"]["product_data"]["metadata"] = {"plan": "basic"}
    params["line_items"][0]["quantity"] = 2

    session = stripe_client.v1.checkout.sessions.create(params=params)

    logged = sandbox_http.logged_requests()[-1]["params"]
    assert logged["line_items"]["0"]["price_data"]["recurring"] == {"interval": "month", "interval_count": "1"}
    assert session.metadata.to_dict() == {"order": "42", "user": "u-7"}
    assert session.client_reference_id == "checkout-9"
    assert session.amount_subtotal == 2 * 799
    item = stripe_client.v1.checkout.sessions.line_items.list(session.id).data[0]
    assert (item.quantity, item.price.unit_amount, item.price.recurring.interval) == (2, 799, "month")
    product = stripe_client.v1.products.retrieve(item.price.product)
    assert (product.name, product.description, product.metadata.to_dict()) == (
        "Shared hosting",
        "Basic plan",
        {"plan": "basic"},
    )


@pytest.mark.parametrize("expand", ["expand[]=line_items", "expand[0]=line_items"])
def test_expand_in_the_query_string_takes_both_array_forms(stripe_client, sandbox_http, session_params, expand):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    response = sandbox_http.api("GET", f"/v1/checkout/sessions/{session.id}?{expand}")

    assert response.status_code == 200
    assert response.json()["line_items"]["data"][0]["description"] == "Shared hosting"


def test_expand_of_an_unknown_property_is_rejected(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["no_such_field"]})

    assert raised.value.http_status == 400
    assert "cannot be expanded (no_such_field)" in raised.value.user_message


def test_expand_customer_replaces_the_id_with_the_customer(stripe_client, session_params):
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com"})
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(customer=customer.id, customer_email=None)
    )

    expanded = stripe_client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["customer"]})

    assert session.customer == customer.id
    assert expanded.customer.id == customer.id
    assert expanded.customer.email == "ada@example.com"


def test_an_unknown_parameter_is_rejected_with_its_name(stripe_client, session_params):
    params = session_params()
    params["line_items"][0]["price_data"]["unit_amout"] = 5

    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.checkout.sessions.create(params=params)

    assert raised.value.param == "line_items[0][price_data][unit_amout]"
    assert "Received unknown parameter" in raised.value.user_message


def test_a_request_without_api_key_gets_401(sandbox_http):
    response = sandbox_http.api("GET", "/v1/account", key=None)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "You did not provide an API key" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "key",
    ["sk_test_tooShort123", "sk_live_" + "a" * 24, "pk_test_" + "a" * 24, "sk_test_" + "a" * 23 + "!"],
)
def test_a_malformed_api_key_gets_401(sandbox_url, key):
    client = stripe.StripeClient(key, base_addresses={"api": sandbox_url}, max_network_retries=0)

    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.accounts.retrieve_current()

    assert raised.value.http_status == 401
    assert raised.value.json_body["error"]["type"] == "invalid_request_error"


def test_basic_auth_with_the_key_as_user_name_is_accepted(sandbox_http, api_key):
    response = sandbox_http.session.get(f"{sandbox_http.url}/v1/account", auth=(api_key, ""), timeout=10)

    assert response.status_code == 200
    assert response.json()["object"] == "account"


def test_same_idempotency_key_and_body_replays_the_first_response(stripe_client, session_params):
    options = {"idempotency_key": "checkout-123"}

    first = stripe_client.v1.checkout.sessions.create(params=session_params(), options=options)
    second = stripe_client.v1.checkout.sessions.create(params=session_params(), options=options)

    assert second.id == first.id
    assert second.last_response.body == first.last_response.body
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(stripe_client.v1.checkout.sessions.list().data) == 1


def test_same_idempotency_key_with_other_parameters_is_an_idempotency_error(stripe_client, session_params):
    options = {"idempotency_key": "checkout-124"}
    stripe_client.v1.checkout.sessions.create(params=session_params(), options=options)

    with pytest.raises(stripe.IdempotencyError) as raised:
        stripe_client.v1.checkout.sessions.create(params=session_params(client_reference_id="other"), options=options)

    assert raised.value.http_status == 400
    assert raised.value.json_body["error"]["type"] == "idempotency_error"


def test_same_idempotency_key_on_another_endpoint_is_an_idempotency_error(stripe_client):
    stripe_client.v1.customers.create(options={"idempotency_key": "key-1"})

    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.coupons.create(params={"percent_off": 10}, options={"idempotency_key": "key-1"})


def test_an_error_is_replayed_for_its_idempotency_key(stripe_client, session_params):
    params = session_params(discounts=[{"coupon": "LATER"}])
    options = {"idempotency_key": "checkout-125"}
    with pytest.raises(stripe.InvalidRequestError) as first:
        stripe_client.v1.checkout.sessions.create(params=params, options=options)
    stripe_client.v1.coupons.create(params={"id": "LATER", "percent_off": 10})

    # The coupon exists now, yet the same key still gets the first answer.
    with pytest.raises(stripe.InvalidRequestError) as second:
        stripe_client.v1.checkout.sessions.create(params=params, options=options)

    assert second.value.http_body == first.value.http_body
    assert second.value.headers["Idempotent-Replayed"] == "true"
    assert second.value.code == "resource_missing"


def test_an_idempotency_key_longer_than_255_characters_is_rejected(sandbox_http):
    response = sandbox_http.api("POST", "/v1/customers", headers={"Idempotency-Key": "k" * 256})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert sandbox_http.api("POST", "/v1/customers", headers={"Idempotency-Key": "k" * 255}).status_code == 200


def test_responses_carry_a_request_id_and_the_requested_stripe_version(sandbox_http):
    response = sandbox_http.api("GET", "/v1/account", headers={"Stripe-Version": "2026-05-27.dahlia"})

    assert re.fullmatch(r"req_[A-Za-z0-9]{14}", response.headers["Request-Id"])
    assert response.headers["Stripe-Version"] == "2026-05-27.dahlia"
    assert response.headers["Content-Type"] == "application/json"


def test_an_unknown_url_is_a_stripe_404(sandbox_http):
    response = sandbox_http.api("GET", "/v1/no_such_resource")

    assert response.status_code == 404
    assert "Unrecognized request URL (GET: /v1/no_such_resource)" in response.json()["error"]["message"]


def test_stripe_python_reuses_one_connection(stripe_client, sandbox_http):
    stripe_client.v1.accounts.retrieve_current()
    stripe_client.v1.customers.create()
    stripe_client.v1.accounts.retrieve_current()

    clients = {entry["client"] for entry in sandbox_http.logged_requests()}
    assert len(clients) == 1, f"expected one keep-alive connection, saw {clients}"


@pytest.mark.parametrize(
    ("api_version", "ui_mode"), [("2026-05-27.dahlia", "hosted_page"), ("2025-09-30.clover", "hosted")]
)
def test_ui_mode_uses_the_names_of_the_requested_api_version(
    sandbox_url, api_key, session_params, api_version, ui_mode
):
    client = stripe.StripeClient(
        api_key, base_addresses={"api": sandbox_url}, stripe_version=api_version, max_network_retries=0
    )

    session = client.v1.checkout.sessions.create(params=session_params())

    assert session.ui_mode == ui_mode

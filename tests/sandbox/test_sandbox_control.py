"""The control API under /_sandbox/: faults, the request log, reset and health."""

import time

import pytest
import stripe


def test_an_injected_fault_fails_one_request_then_the_next_succeeds(stripe_client, sandbox_http, session_params):
    fault = {"path_prefix": "/v1/checkout/sessions", "method": "POST", "status": 500, "count": 1}
    assert sandbox_http.control("POST", "faults", json=fault).status_code == 200

    with pytest.raises(stripe.APIError) as raised:
        stripe_client.v1.checkout.sessions.create(params=session_params())
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    assert raised.value.http_status == 500
    assert raised.value.json_body["error"]["type"] == "api_error"
    assert session.status == "open"


@pytest.mark.parametrize("status", [502, 503])
def test_a_fault_can_answer_502_or_503(stripe_client, sandbox_http, status):
    sandbox_http.control("POST", "faults", json={"status": status})

    with pytest.raises(stripe.APIError) as raised:
        stripe_client.v1.accounts.retrieve_current()

    assert raised.value.http_status == status


def test_a_fault_only_hits_matching_requests(stripe_client, sandbox_http):
    sandbox_http.control("POST", "faults", json={"path_prefix": "/v1/customers", "method": "POST", "count": 2})

    stripe_client.v1.accounts.retrieve_current()
    stripe_client.v1.coupons.create(params={"percent_off": 10})
    with pytest.raises(stripe.APIError):
        stripe_client.v1.customers.create()
    with pytest.raises(stripe.APIError):
        stripe_client.v1.customers.create()
    stripe_client.v1.customers.create()


def test_a_retry_with_the_same_idempotency_key_after_a_fault_runs_the_request(stripe_client, sandbox_http):
    sandbox_http.control("POST", "faults", json={"path_prefix": "/v1/customers"})
    options = {"idempotency_key": "retry-me"}

    with pytest.raises(stripe.APIError):
        stripe_client.v1.customers.create(params={"email": "ada@example.com"}, options=options)
    customer = stripe_client.v1.customers.create(params={"email": "ada@example.com"}, options=options)

    assert customer.email == "ada@example.com"
    assert "Idempotent-Replayed" not in customer.last_response.headers


def test_a_delay_fault_delays_without_failing(stripe_client, sandbox_http):
    sandbox_http.control("POST", "faults", json={"status": None, "delay_ms": 300})

    start = time.monotonic()
    account = stripe_client.v1.accounts.retrieve_current()

    assert time.monotonic() - start >= 0.3
    assert account.object == "account"


@pytest.mark.parametrize(
    "fault",
    [{"status": 404}, {"count": 0}, {"path_prefix": "/c/pay"}, {"delay_ms": -1}, {"status": None}, {"colour": "red"}],
)
def test_an_invalid_fault_is_rejected(sandbox_http, fault):
    response = sandbox_http.control("POST", "faults", json=fault)

    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_the_request_log_shows_calls_newest_last_with_idempotency_keys(stripe_client, sandbox_http):
    stripe_client.v1.accounts.retrieve_current()
    stripe_client.v1.customers.create(params={"metadata": {"ref": "u1"}}, options={"idempotency_key": "cus-1"})

    log = sandbox_http.logged_requests()

    assert [(entry["method"], entry["path"], entry["status"]) for entry in log] == [
        ("GET", "/v1/account", 200),
        ("POST", "/v1/customers", 200),
    ]
    assert log[1]["idempotency_key"] == "cus-1"
    assert log[1]["params"] == {"metadata": {"ref": "u1"}}
    assert log[0]["request_id"].startswith("req_")


def test_the_request_log_keeps_the_last_1000_requests(sandbox_http):
    for _ in range(1005):
        sandbox_http.api("GET", "/v1/account")
    sandbox_http.api("GET", "/v1/customers/cus_last")

    log = sandbox_http.logged_requests()

    assert len(log) == 1000
    assert log[-1]["path"] == "/v1/customers/cus_last"


def test_reset_forgets_objects_faults_and_the_log(stripe_client, sandbox_http):
    customer = stripe_client.v1.customers.create()
    sandbox_http.control("POST", "faults", json={"path_prefix": "/v1/coupons"})

    assert sandbox_http.control("POST", "reset").status_code == 200

    assert sandbox_http.logged_requests() == []
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.retrieve(customer.id)
    stripe_client.v1.coupons.create(params={"percent_off": 5})


def test_health(sandbox_http):
    response = sandbox_http.control("GET", "health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

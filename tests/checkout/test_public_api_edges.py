"""What a public endpoint needs around the contract: CORS, throttling per client IP, health, the OpenAPI schema."""

import pytest
from rest_framework.test import APIClient

from tests.checkout.conftest import CREATE_URL, order

pytestmark = pytest.mark.django_db

ALLOWED = "https://migrahosting.com"


def test_cors_preflight_from_the_marketing_site_is_allowed(api):
    response = api.options(
        CREATE_URL,
        HTTP_ORIGIN=ALLOWED,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_cors_from_another_origin_gets_no_allow_header(api, create_session):
    preflight = api.options(CREATE_URL, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    post = create_session(order(), HTTP_ORIGIN="https://evil.example")

    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Origin" not in post


def test_cors_actual_request_from_the_marketing_site_carries_the_header(create_session):
    response = create_session(order(), HTTP_ORIGIN=ALLOWED)
    assert response["Access-Control-Allow-Origin"] == ALLOWED


def with_rates(settings, **rates):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"checkout_create": "1000/min", "checkout_read": "1000/min", **rates},
    }


def test_create_is_throttled_per_client_ip(create_session, settings):
    with_rates(settings, checkout_create="3/min")

    statuses = [create_session(order(), REMOTE_ADDR="203.0.113.7").status_code for _ in range(4)]
    other_client = create_session(order(), REMOTE_ADDR="203.0.113.8")

    assert statuses == [200, 200, 200, 429]
    assert other_client.status_code == 200


def test_throttled_answer_has_retry_after_and_the_error_shape(api, settings, db):
    with_rates(settings, checkout_read="1/min")
    api.get("/api/checkout/session/cs_test_x")

    response = api.get("/api/checkout/session/cs_test_x")

    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_behind_one_proxy_the_client_ip_comes_from_x_forwarded_for(api, settings, db):
    with_rates(settings, checkout_read="2/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def get(client_ip):
        return api.get(
            "/api/checkout/session/cs_test_x", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"{client_ip}"
        ).status_code

    assert [get("198.51.100.1") for _ in range(3)] == [404, 404, 429]
    assert get("198.51.100.2") == 404  # another customer behind the same proxy is not throttled


def test_without_a_proxy_a_forged_x_forwarded_for_does_not_escape_the_throttle(api, settings, db):
    with_rates(settings, checkout_read="2/min")

    statuses = [
        api.get(
            "/api/checkout/session/cs_test_x", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}"
        ).status_code
        for i in range(3)
    ]

    assert statuses == [404, 404, 429]


def test_health_checks_the_database(api, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = api.get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_openapi_schema_documents_both_endpoints_and_their_errors(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    create = schema["paths"]["/api/checkout/create-session"]["post"]
    detail = schema["paths"]["/api/checkout/session/{session_id}"]["get"]
    assert {"200", "400", "413", "429", "502", "503"} <= set(create["responses"])
    assert {"200", "404"} <= set(detail["responses"])
    request_schema = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"planId", "billingCycle", "customer", "couponCode", "domain", "trialActive"} <= set(
        schema["components"]["schemas"][request_schema]["properties"]
    )
    assert {"error", "code"} <= set(schema["components"]["schemas"]["Error"]["properties"])


def test_docs_page_renders_with_assets_served_by_us(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert b"cdn." not in response.content and b"/static/drf_spectacular_sidecar/" in response.content


def test_a_redis_outage_does_not_block_checkouts(api, settings, db):
    with_rates(settings, checkout_read="1/min")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    statuses = [api.get("/api/checkout/session/cs_test_x").status_code for _ in range(3)]

    assert statuses == [404, 404, 404]


def test_create_session_with_a_coupon_works_while_the_cache_redis_is_down(create_session, settings, stripe_sandbox):
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.DegradingRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

    first = create_session(order(couponCode="WELCOME10"))
    second = create_session(order(couponCode="WELCOME10", customer={"name": "B", "email": "b@example.com"}))

    assert (first.status_code, second.status_code) == (200, 200), first.content
    # Without the cache mark the coupon is ensured at Stripe each time: Stripe answers "already exists".
    assert len(stripe_sandbox.requests(method="POST", path="/v1/coupons")) == 2


def test_json_nested_a_thousand_deep_is_a_400_not_a_500(api, catalog, stripe_sandbox):
    body = "[" * 1000 + "]" * 1000  # 2 KB, inside the size limit

    response = api.post("/api/checkout/create-session", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_an_unknown_api_path_is_a_json_404_even_with_debug_on(client, settings):
    settings.DEBUG = True

    response = client.get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"error": "Not found.", "code": "not_found"}

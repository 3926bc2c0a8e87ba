"""The request edges an adversary found (issue 10, item 7): international domain names as IDNA 2008 has them, an
Idempotency-Key reused with another body, error codes said once, the bounds the schema must state, and a webhook
body over the limit answered in the API's JSON shape."""

import uuid

import pytest
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from rest_framework.test import APIClient

from checkout.models import CheckoutSession
from tests.checkout.conftest import order
from tests.checkout.test_create_session_errors import assert_rejected

pytestmark = pytest.mark.django_db


def with_domain(value: str) -> dict:
    return order(domain={"mode": "new", "value": value})


# --- Domains: IDNA 2008 with UTS 46, as registries and browsers have them ---------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2003 (Python's codec) would turn it into fass.de: another domain
        ("Bücher.DE", "xn--bcher-kva.de"),  # case folded as UTS 46 maps it
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),  # an A-label that decodes is kept as it is
        ("例え.jp", "xn--r8jz45g.jp"),
        ("example.com.", "example.com"),
    ],
)
def test_an_international_domain_is_stored_as_its_idna_2008_a_label(create_session, stripe_sandbox, typed, stored):
    response = create_session(with_domain(typed))

    assert response.status_code == 200, response.content
    session = CheckoutSession.objects.get()
    assert session.domain_info["value"] == stored
    assert session.metadata["domain"] == stored


@pytest.mark.parametrize(
    "typed",
    [
        "ab\u200bcd.com",  # a zero-width space: UTS 46 would drop it silently and register abcd.com
        "ab\u200dcd.com",  # a zero-width joiner outside the scripts that may use it
        "ab\u00adcd.com",  # a soft hyphen, invisible too
        "xn--zz.com",  # not valid punycode
        "xn--a.com",  # decodes to nothing valid
        "fa\u00df..de",  # an empty label
        "-ab.com",
    ],
)
def test_an_invisible_character_or_a_broken_a_label_is_a_400(create_session, stripe_sandbox, typed):
    assert_rejected(create_session(with_domain(typed)), stripe_sandbox, field="domain.value", code="invalid")


# --- Idempotency-Key: one key, one request ----------------------------------------------------------------------------


def test_an_idempotency_key_reused_with_another_body_is_a_400_idempotency_error(create_session, stripe_sandbox):
    first = create_session(order(), HTTP_IDEMPOTENCY_KEY="order-7f3a")
    assert first.status_code == 200

    second = create_session(order(billingCycle="yearly"), HTTP_IDEMPOTENCY_KEY="order-7f3a")

    assert second.status_code == 400, second.content
    assert second.json()["code"] == "idempotency_error"
    assert second.json()["field"] == "Idempotency-Key"
    assert CheckoutSession.objects.count() == 1
    assert len(stripe_sandbox.requests(method="POST", path="/v1/checkout/sessions")) == 1


def test_the_same_idempotency_key_and_body_return_the_same_session(create_session, stripe_sandbox):
    first = create_session(order(), HTTP_IDEMPOTENCY_KEY="order-7f3a")
    second = create_session(order(), HTTP_IDEMPOTENCY_KEY="order-7f3a")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["sessionId"] == second.json()["sessionId"]
    assert CheckoutSession.objects.count() == 1


def test_a_key_older_than_a_day_is_forgotten_as_stripe_forgets_it(create_session, stripe_sandbox):
    from datetime import timedelta

    from django.utils import timezone

    create_session(order(), HTTP_IDEMPOTENCY_KEY="order-7f3a")
    CheckoutSession.objects.update(created_at=timezone.now() - timedelta(hours=25))

    again = create_session(order(billingCycle="yearly"), HTTP_IDEMPOTENCY_KEY="order-7f3a")

    assert again.status_code == 200, again.content
    assert CheckoutSession.objects.count() == 2


def test_without_a_key_two_different_bodies_are_two_sessions(create_session, stripe_sandbox):
    create_session(order())
    create_session(order(billingCycle="yearly"))
    assert CheckoutSession.objects.count() == 2


def test_an_idempotency_key_with_a_control_character_is_a_400(create_session, stripe_sandbox):
    response = create_session(order(), HTTP_IDEMPOTENCY_KEY="order\x007f3a")
    assert_rejected(response, stripe_sandbox, field="Idempotency-Key")


# --- Error codes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (order(domain={"mode": "steal", "value": "example.com"}), "invalid_choice"),
        ({k: v for k, v in order().items() if k != "planId"}, "invalid_required"),
        (order(planId="p" * 101), "invalid_max_length"),
        (order(customer={"name": "Nul\x00Byte", "email": "a@example.com"}), "invalid_null_characters_not_allowed"),
        (order(planId="starter\x00"), "invalid_null_characters_not_allowed"),
    ],
)
def test_error_codes_say_invalid_once(create_session, stripe_sandbox, body, code):
    assert_rejected(create_session(body), stripe_sandbox, code=code)


# --- The schema states the bounds the API enforces --------------------------------------------------------------------


def resolved(schema: dict, node: dict) -> dict:
    """A property's own schema, through drf-spectacular's `allOf: [{$ref}]` wrapping of named enums."""
    for ref in [part["$ref"] for part in node.get("allOf", []) if "$ref" in part] + (
        [node["$ref"]] if "$ref" in node else []
    ):
        node = {**node, **schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]}
    return node


def schema_of_create(schema: dict) -> tuple[dict, dict]:
    create = schema["paths"]["/api/checkout/create-session"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    return create, schema["components"]["schemas"][ref]


def test_the_schema_states_the_idempotency_key_bounds_and_the_enums(catalog):
    from catalog.models import BILLING_CYCLE_ALIASES, BillingCycle, Product

    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    create, body = schema_of_create(schema)

    (key,) = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header"
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    assert "pattern" in key["schema"]
    plan_ids = set(Product.objects.filter(active=True).values_list("code", flat=True))
    assert plan_ids and set(body["properties"]["planId"]["enum"]) == plan_ids
    billing_cycle = resolved(schema, body["properties"]["billingCycle"])
    assert set(billing_cycle["enum"]) == {*BillingCycle.values, *BILLING_CYCLE_ALIASES}
    # The session's own billing_cycle (an answer, no aliases) keeps its enum: the two are not merged into one.
    session = schema["components"]["schemas"]["CheckoutSessionPublic"]["properties"]["billing_cycle"]
    assert "annual" not in resolved(schema, session).get("enum", [])


def test_every_enum_in_the_schema_is_accepted_by_the_api(create_session, stripe_sandbox):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    _, body = schema_of_create(schema)

    for cycle in resolved(schema, body["properties"]["billingCycle"])["enum"]:
        response = create_session(order(billingCycle=cycle))
        assert response.status_code in (200, 400), response.content
        # 400 only when the plan has no price for that cycle, never because the cycle is unknown.
        assert response.status_code == 200 or response.json()["code"] == "plan_unavailable", response.content


# --- Bodies over the limit --------------------------------------------------------------------------------------------


def test_a_webhook_body_over_the_limit_is_a_json_413_that_stores_nothing(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    endpoint = WebhookEndpoint.objects.create(
        id="we_test_big",
        url="https://shop.test/api/webhooks/stripe/x/",
        enabled_events=["*"],
        status="enabled",
        secret="whsec_test_big",
        livemode=False,
        djstripe_uuid=uuid.uuid4(),
    )

    response = client.post(
        f"/api/webhooks/stripe/{endpoint.djstripe_uuid}/",
        data=b"{" + b" " * 2048 + b"}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "payload_too_large"
    assert not WebhookEventTrigger.objects.exists()


def test_any_api_400_raised_outside_the_api_views_is_json(client):
    # A Host header Django refuses (DisallowedHost, a SuspiciousOperation): the 400 comes from Django itself.
    response = client.get("/api/health/", HTTP_HOST="evil.example.com:bad")

    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"

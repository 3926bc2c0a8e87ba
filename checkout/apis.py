"""The public checkout API: thin views that parse input, call one service or selector, and shape the answer."""

import re

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import BILLING_CYCLE_ALIASES, BillingCycle
from checkout.models import CheckoutSessionStatus
from checkout.selectors import Fulfilment, checkout_session_public
from checkout.services import checkout_session_create, checkout_session_follow
from core.domains import InvalidDomainName, domain_name_normalize
from core.exceptions import ApplicationError
from core.throttling import ClientIpThrottle

DOMAIN_MODES = ("new-or-transfer", "new", "transfer", "existing")
_STRIPE_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")
# What an Idempotency-Key may be: 1 to 255 characters, none of them a control character (NUL included).
IDEMPOTENCY_KEY_PATTERN = r"^[^\x00-\x1f\x7f]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class CheckoutCreateThrottle(ClientIpThrottle):
    scope = "checkout_create"


class CheckoutReadThrottle(ClientIpThrottle):
    scope = "checkout_read"


class StringOnlyMixin:
    """A JSON string and nothing else: DRF's CharField would quietly turn 42 or true into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="not_a_string")
        return super().to_internal_value(data)


class StrictCharField(StringOnlyMixin, serializers.CharField):
    pass


class StrictEmailField(StringOnlyMixin, serializers.EmailField):
    pass


# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: the output's billing_cycle (no aliases) is another enum.
BILLING_CYCLES_ACCEPTED = [*BillingCycle.values, *BILLING_CYCLE_ALIASES]


@extend_schema_field({"type": "string", "enum": BILLING_CYCLES_ACCEPTED, "maxLength": 20})
class BillingCycleField(StrictCharField):
    """A billing cycle or one of its aliases (annual, annually, biennially, triennially), in any case."""


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. plan_unavailable.")
    field = serializers.CharField(required=False, help_text="The request field at fault, when there is one.")


ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request; `field` names the offending field."),
    413: OpenApiResponse(ErrorSerializer, description="Request body too large."),
    429: OpenApiResponse(ErrorSerializer, description="Too many requests from this IP; see Retry-After."),
    502: OpenApiResponse(ErrorSerializer, description="Stripe answered with an error; nothing was recorded."),
    503: OpenApiResponse(ErrorSerializer, description="Stripe could not be reached; nothing was recorded."),
}


class CustomerInputSerializer(serializers.Serializer):
    name = StrictCharField(required=False, allow_blank=True, max_length=255)
    firstName = StrictCharField(required=False, allow_blank=True, max_length=120)
    lastName = StrictCharField(required=False, allow_blank=True, max_length=120)
    email = StrictEmailField(max_length=254)

    def validate(self, attrs):
        name = attrs.get("name", "").strip()
        if not name:
            name = f"{attrs.get('firstName', '').strip()} {attrs.get('lastName', '').strip()}".strip()
        return {"email": attrs["email"].strip().lower(), "name": name or None}


class DomainInputSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=DOMAIN_MODES, default="new-or-transfer")
    value = StrictCharField(max_length=253)

    def validate_value(self, value: str) -> str:
        try:
            return domain_name_normalize(value)
        except InvalidDomainName as error:
            raise serializers.ValidationError(str(error)) from None


class CheckoutSessionCreateApi(APIView):
    throttle_classes = [CheckoutCreateThrottle]

    class InputSerializer(serializers.Serializer):
        planId = StrictCharField(
            max_length=100,
            help_text="The plan's code; the schema lists the plans on sale when it was generated (config/schema.py).",
        )
        billingCycle = BillingCycleField(max_length=20)
        trialActive = StrictBooleanField(required=False, default=False)
        couponCode = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=50)
        customer = CustomerInputSerializer()
        domain = DomainInputSerializer(required=False, allow_null=True)

        def validate_billingCycle(self, value: str) -> str:
            cycle = value.strip().lower()
            cycle = BILLING_CYCLE_ALIASES.get(cycle, cycle)
            if cycle not in BillingCycle.values:
                accepted = ", ".join([*BillingCycle.values, *BILLING_CYCLE_ALIASES])
                raise serializers.ValidationError(f"Unknown billing cycle '{value}'; use one of {accepted}.")
            return cycle

    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        url = serializers.URLField(help_text="Stripe's payment page: send the customer there.")
        sessionId = serializers.CharField(help_text="The Stripe Checkout Session id.")

    @extend_schema(
        operation_id="checkout_create_session",
        summary="Create a Stripe Checkout Session for a plan",
        description="The amount always comes from our catalog: any price, amount or currency in the body is "
        "ignored. Repeating the same request (or sending the same `Idempotency-Key` header) while the session is "
        "still open returns the same session instead of creating another.",
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
                OpenApiParameter.HEADER,
                required=False,
                description="Optional; 1 to 255 characters, no control characters. Reusing a key with a different body "
                "within 24 hours is a 400 `idempotency_error`.",
            )
        ],
        responses={200: OutputSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Starter, monthly, with a coupon and a domain",
                request_only=True,
                value={
                    "planId": "starter",
                    "billingCycle": "monthly",
                    "trialActive": False,
                    "couponCode": "WELCOME10",
                    "customer": {"name": "John Doe", "email": "john@example.com"},
                    "domain": {"mode": "new-or-transfer", "value": "example.com"},
                },
            ),
            OpenApiExample(
                "Unknown plan",
                response_only=True,
                status_codes=["400"],
                value={
                    "error": "No active price for plan invalid (monthly)",
                    "code": "plan_unavailable",
                    "field": "planId",
                },
            ),
        ],
    )
    def post(self, request):
        content_length = request.META.get("CONTENT_LENGTH") or "0"
        if content_length.isdigit() and int(content_length) > settings.CHECKOUT_MAX_BODY_BYTES:
            raise ApplicationError("The request body is too large.", code="payload_too_large", status_code=413)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise ApplicationError(
                "Idempotency-Key must be 1 to 255 characters, none of them a control character.",
                code="invalid",
                field="Idempotency-Key",
            )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer, domain = data["customer"], data.get("domain")
        session = checkout_session_create(
            plan_code=data["planId"].strip().lower(),
            billing_cycle=BillingCycle(data["billingCycle"]),
            email=customer["email"],
            customer_name=customer["name"],
            coupon_code=(data.get("couponCode") or "").strip() or None,
            domain=dict(domain) if domain else None,
            trial=data["trialActive"],
            client_idempotency_key=key,
        )
        return Response({"success": True, "url": session.stripe_url, "sessionId": session.stripe_session_id})


class CheckoutSessionPublicSerializer(serializers.Serializer):
    """What the public API shows of a session (documentation only: the view builds the dict itself, it is hot)."""

    id = serializers.UUIDField()
    stripe_session_id = serializers.CharField()
    email = serializers.EmailField()
    product_code = serializers.CharField()
    billing_cycle = serializers.CharField()
    amount = serializers.IntegerField(help_text="Catalog price of one billing period, in cents, before any discount.")
    status = serializers.ChoiceField(choices=CheckoutSessionStatus.values)
    amount_total = serializers.IntegerField(
        help_text="What the first payment charges, in cents: the price less the discount, 0 during a free trial."
    )
    amount_discount = serializers.IntegerField(help_text="The coupon's discount on the first invoice, in cents.")
    currency = serializers.CharField(help_text="Three-letter ISO code in lower case, e.g. usd.")
    trial_end = serializers.DateTimeField(
        allow_null=True,
        help_text="When the free trial ends (the first charge); null without a trial or before payment.",
    )
    fulfilment = serializers.ChoiceField(
        choices=Fulfilment.ALL,
        help_text="The order's state: pending (payment not confirmed yet) → paid → setting_up (the hosting account "
        "is being created) → ready; or payment_failed, expired, needs_review (we will be in touch). ready, "
        "payment_failed, expired and needs_review are final for a success page.",
    )


class CheckoutSessionEnvelopeSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    session = CheckoutSessionPublicSerializer()


class CheckoutSessionDetailApi(APIView):
    throttle_classes = [CheckoutReadThrottle]

    @extend_schema(
        operation_id="checkout_get_session",
        summary="Read a checkout session by its Stripe session id",
        description="The success page polls this after payment: a session still pending is re-read from Stripe "
        "(at most every 5 seconds) and fulfilled at once if Stripe says it is paid, should the webhook be late. "
        "`fulfilment` follows the order until the hosting account is ready.",
        responses={
            200: CheckoutSessionEnvelopeSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No session with this id."),
            429: ERROR_RESPONSES[429],
        },
    )
    def get(self, request, session_id: str):
        session = None
        if _STRIPE_SESSION_ID.match(session_id):
            session = checkout_session_follow(stripe_session_id=session_id)
        if session is None:
            raise ApplicationError(f"No checkout session {session_id[:80]}", code="not_found", status_code=404)
        return Response({"success": True, "session": checkout_session_public(session=session)})

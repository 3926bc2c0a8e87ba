"""The public catalog for the marketing site: what is on sale and at what price, cheap to ask for again."""

import hashlib
import json
import time

from django.http import HttpResponse
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from catalog.models import BillingCycle, ProductType
from catalog.selectors import catalog_public, catalog_version

# Browsers and CDNs may keep the answer but must ask again each time (a 304 when nothing changed): a price edited
# in the admin is advertised at once.
CACHE_CONTROL = "public, no-cache"
# The built answer is kept per process for the version it was built from; rebuilt at least this often all the same,
# in case a transaction that wrote an older `updated_at` committed after the version was read.
_MAX_AGE_SECONDS = 60
_built: dict = {"version": None, "at": 0.0, "etag": "", "body": b""}


class CatalogPriceSerializer(serializers.Serializer):
    billing_cycle = serializers.ChoiceField(choices=BillingCycle.values, help_text="Send it as billingCycle.")
    months = serializers.IntegerField(help_text="Months one billing period covers.")
    amount = serializers.IntegerField(help_text="Charged once per billing period, in cents.")
    currency = serializers.CharField(help_text="Three-letter ISO code in lower case, e.g. usd.")
    amount_per_month = serializers.IntegerField(
        help_text="The per-month equivalent, in cents, rounded to the nearest cent: for display only."
    )
    trial_days = serializers.IntegerField(allow_null=True, help_text="Free trial offered on request; null: none.")


class CatalogPlanSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Send it as planId to create a checkout session.")
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=ProductType.values)
    description = serializers.CharField()
    prices = CatalogPriceSerializer(many=True, help_text="One per billing cycle and currency, shortest cycle first.")


class CatalogSerializer(serializers.Serializer):
    """Documentation only: the answer is built once per catalog change and served as bytes."""

    plans = CatalogPlanSerializer(many=True)


class CatalogApi(APIView):
    @extend_schema(
        operation_id="catalog_list",
        summary="The plans on sale, with their prices per billing cycle",
        description="Active plans in display order, with each active price in cents and its currency, the per-month "
        "equivalent and the trial offered. Served with an `ETag` and `Cache-Control: public, no-cache`: send the "
        "ETag back in `If-None-Match` and an unchanged catalog answers 304 with no body. A price edited in the "
        "admin is in the next answer.",
        parameters=[
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="The ETag of the catalog you have.",
            )
        ],
        responses={200: CatalogSerializer, 304: OpenApiResponse(description="Not modified since that ETag.")},
    )
    def get(self, request):
        etag, body = _catalog_answer()
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        response["Cache-Control"] = CACHE_CONTROL
        return response


def _catalog_answer() -> tuple[str, bytes]:
    """The answer's ETag and bytes: one query for the version, the catalog's query only when it moved."""
    version = catalog_version()
    now = time.monotonic()
    built = _built
    if built["version"] != version or now - built["at"] > _MAX_AGE_SECONDS:
        body = json.dumps(catalog_public(), separators=(",", ":")).encode()
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        built = {"version": version, "at": now, "etag": etag, "body": body}
        _built.update(built)
    return built["etag"], built["body"]


def _etag_matches(header: str | None, etag: str) -> bool:
    # Weak comparison, as RFC 9110 asks for If-None-Match: a proxy that compressed the answer may send W/"...".
    if not header:
        return False
    tags = parse_etags(header)
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)

"""The Stripe webhook endpoint: dj-stripe's view, behind a signature check that writes nothing when it fails."""

import logging

import stripe
from django.conf import settings
from django.http import JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from djstripe.models import WebhookEndpoint
from djstripe.views import ProcessWebhookView

from core.exceptions import error_body

logger = logging.getLogger(__name__)


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(ProcessWebhookView):
    """dj-stripe stores every delivery it is given, forged ones included, and in DEBUG lets a request header choose
    the secret. We verify the signature against the stored secret first, so a forged, stale or unsigned delivery is
    a 400 that leaves no row behind, and the header is honoured only where settings allow it (local development)."""

    def post(self, request, uuid):
        endpoint = WebhookEndpoint.objects.filter(djstripe_uuid=uuid).only("secret", "djstripe_tolerance").first()
        if endpoint is None:
            return JsonResponse(error_body("Unknown webhook endpoint.", "not_found"), status=404)
        try:
            stripe.WebhookSignature.verify_header(
                request.body.decode("utf-8"),
                request.headers.get("Stripe-Signature", ""),
                endpoint.secret,
                endpoint.djstripe_tolerance,
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            logger.warning("Rejected a Stripe webhook with a bad signature from %s", request.META.get("REMOTE_ADDR"))
            return JsonResponse(error_body("Invalid Stripe signature.", "invalid_signature"), status=400)
        if not settings.STRIPE_WEBHOOK_ALLOW_SECRET_HEADER:
            request.META.pop("HTTP_X_DJSTRIPE_WEBHOOK_SECRET", None)
            request.__dict__.pop("headers", None)  # HttpRequest.headers is cached from META
        try:
            return super().post(request, uuid)
        except stripe.InvalidRequestError as error:
            if error.code != "resource_missing":
                raise
            # A correctly signed event about an object Stripe no longer has (deleted since): retrying cannot help,
            # and a 500 would have Stripe retry it for three days. dj-stripe's trigger row keeps the error.
            logger.warning("Stripe webhook for an object Stripe does not have: %s", error.user_message or error)
            return JsonResponse({"received": True, "processed": False, "reason": "object not found at Stripe"})


app_name = "djstripe"  # dj-stripe's admin reverses its webhook URL by this name
urlpatterns = [path("<uuid:uuid>/", StripeWebhookView.as_view(), name="djstripe_webhook_by_uuid")]

"""/metrics: the Prometheus exposition, for the monitoring network only (README, Operations)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.throttling import BaseThrottle

from core.exceptions import error_body
from core.observability.metrics import metrics_registry


def metrics_view(request):
    """For a client in METRICS_ALLOWED_NETWORKS, or one sending `Authorization: Bearer <METRICS_BEARER_TOKEN>`;
    anyone else gets a 403."""
    if not metrics_reader_allowed(request):
        return JsonResponse(error_body("Metrics are served to the monitoring network only.", "forbidden"), status=403)
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def metrics_reader_allowed(request) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    if token and hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        return True
    try:
        # The client as the API's throttle sees it: behind DJANGO_NUM_PROXIES proxies, the address the nearest one
        # wrote into X-Forwarded-For; with none, the socket's address.
        address = ipaddress.ip_address(BaseThrottle().get_ident(request).strip())
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS)

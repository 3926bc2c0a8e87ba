from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from checkout.pages import checkout_cancel_page, checkout_success_page
from core.observability.metrics_view import metrics_view
from core.views import HealthApi, ReadinessApi, api_not_found

urlpatterns = [
    path(f"{settings.ADMIN_URL}backoffice/", include("backoffice.urls")),
    path(settings.ADMIN_URL, admin.site.urls),  # DJANGO_ADMIN_URL, default admin/
    path("account/", include("accounts.urls")),
    path("api/health/", HealthApi.as_view(), name="health"),
    path("api/ready/", ReadinessApi.as_view(), name="ready"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; restricted (README, Operations)
    path("api/checkout/", include("checkout.urls")),
    path("api/catalog/", include("catalog.urls")),
    path("checkout/success/", checkout_success_page, name="checkout-success"),
    path("checkout/cancel/", checkout_cancel_page, name="checkout-cancel"),
    path("api/webhooks/stripe/", include("checkout.webhook_view", namespace="djstripe")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # Last: any other path under /api/ is the API's JSON 404, with DEBUG on too (Django's HTML debug page otherwise).
    re_path(r"^api/", api_not_found),
]

handler400 = "core.failures.bad_request"
handler404 = "core.views.json_not_found"
handler500 = "core.views.json_server_error"

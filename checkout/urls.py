from django.urls import path

from checkout.apis import CheckoutSessionCreateApi, CheckoutSessionDetailApi

app_name = "checkout"

urlpatterns = [
    path("create-session", CheckoutSessionCreateApi.as_view(), name="create-session"),
    path("session/<str:session_id>", CheckoutSessionDetailApi.as_view(), name="session-detail"),
]

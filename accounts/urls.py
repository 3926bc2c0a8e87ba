"""URLs of accounts (mounted under /account/ in config/urls.py): the client area, sign-in and passwords."""

from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.service_list, name="services"),
    path("login/", views.ClientLoginView.as_view(), name="login"),
    path("logout/", views.ClientLogoutView.as_view(), name="logout"),
    path("password-reset/", views.ClientPasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", views.ClientPasswordResetSentView.as_view(), name="password_reset_sent"),
    path("password-reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("set-password/done/", views.PasswordSetDoneView.as_view(), name="password_set_done"),
    path("set-password/<uidb64>/<token>/", views.PasswordSetView.as_view(), name="password_set"),
    path("services/<int:pk>/", views.service_detail, name="service"),
    path("services/<int:pk>/billing-portal/", views.billing_portal, name="billing_portal"),
    path("services/<int:pk>/cancel/", views.service_cancel, name="service_cancel"),
    path("services/<int:pk>/cancel/undo/", views.service_cancel_undo, name="service_cancel_undo"),
    path("services/<int:pk>/change-plan/", views.plan_change_options_page, name="plan_change_options"),
    path("services/<int:pk>/change-plan/<int:price_id>/", views.plan_change_preview_page, name="plan_change_preview"),
]

"""URLs of accounts (mounted under /account/ in config/urls.py): the set-password pages."""

from django.urls import path

from accounts.views import PasswordSetDoneView, PasswordSetView

app_name = "accounts"

urlpatterns = [
    path("set-password/done/", PasswordSetDoneView.as_view(), name="password_set_done"),
    path("set-password/<uidb64>/<token>/", PasswordSetView.as_view(), name="password_set"),
]

"""Pages of accounts: a customer created by an order chooses a password from the link in the set-password e-mail."""

from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy


class PasswordSetView(auth_views.PasswordResetConfirmView):
    """Django's password-reset confirmation as the first-password page: the same token (default_token_generator),
    which stops working once the password is set, and the same validators."""

    template_name = "accounts/password_set.html"
    success_url = reverse_lazy("accounts:password_set_done")
    title = "Choose your password"


class PasswordSetDoneView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_set_done.html"
    title = "Your password is set"

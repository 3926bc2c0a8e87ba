"""Forms of the client area: sign-in and password reset, both throttled with the admin's login throttle
(backoffice/login.py: failures per client IP and per e-mail address, counted in the shared cache)."""

import logging

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction

from backoffice.login import ThrottledAdminAuthenticationForm, admin_login_failure_record, admin_login_is_blocked

logger = logging.getLogger(__name__)


class ClientLoginForm(ThrottledAdminAuthenticationForm):
    """The admin's throttled login form without its staff-only rule: any active user signs in here. Failures count
    in the same buckets as the admin's, so alternating between the two forms buys a guesser nothing."""

    error_messages = {
        **ThrottledAdminAuthenticationForm.error_messages,
        "invalid_login": "That e-mail address and password do not match. Passwords are case-sensitive.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "E-mail address"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})

    def confirm_login_allowed(self, user):
        AuthenticationForm.confirm_login_allowed(self, user)  # skips AdminAuthenticationForm's is_staff check


def _reset_throttle_key(email: str) -> str:
    # Its own per-address bucket (resets never lock an address out of signing in); the per-IP bucket is the login's,
    # so one client gets one budget of guesses and reset requests together.
    return f"password-reset:{email.strip().lower()}"


class ClientPasswordResetForm(forms.Form):
    """Asks for a reset link. Whatever the address, the request does the same work (count it, queue one task with
    the address) and the page says the same thing: the task alone finds out whether a user has it."""

    email = forms.EmailField(label="E-mail address", max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))

    def __init__(self, *args, request=None, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def clean_email(self):
        email = self.cleaned_data["email"]
        key = _reset_throttle_key(email)
        if self.request is not None:
            if admin_login_is_blocked(self.request, key):
                raise ValidationError(
                    "Too many requests for a reset link. Please wait %(minutes)s minutes and try again.",
                    code="throttled",
                    params={"minutes": max(1, settings.ADMIN_LOGIN_FAILURE_WINDOW_SECONDS // 60)})
            admin_login_failure_record(self.request, key)
        return email

    def save(self, **_ignored) -> None:
        from accounts.tasks import password_reset_email_send_task

        email = self.cleaned_data["email"]

        def enqueue():
            try:
                password_reset_email_send_task.delay(email)
            except Exception:  # the broker is down: the same page for every address; the person can ask again
                logger.exception("Password reset e-mail not queued")

        transaction.on_commit(enqueue)

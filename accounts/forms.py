"""Forms of the client area: sign-in (guessing stopped by django-axes, as at the admin: core/login_lockout.py) and
password reset (its own small counters per address and per client IP, which never touch sign-in)."""

import logging
import time

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction

from core.login_lockout import LockoutMessageFormMixin, client_ip

logger = logging.getLogger(__name__)


class ClientLoginForm(LockoutMessageFormMixin, AuthenticationForm):
    """Any active user signs in here (no staff rule). Failures count in axes' records with the admin's, per address
    and client IP together, so alternating between the two forms buys a guesser nothing."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That e-mail address and password do not match. Passwords are case-sensitive.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "E-mail address"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})


def password_reset_request_allowed(request, email: str) -> bool:
    """Counts one reset request for the address and for the client; False past either limit in the current window.
    The counters are the cache's (Redis, shared by every worker) and their own: a flood of reset requests never
    locks the address's owner out of signing in. Redis down: the cache misses and requests go through."""
    window = int(time.time() // settings.PASSWORD_RESET_WINDOW_SECONDS)
    allowed = True
    for key, limit in (
        (f"password-reset:address:{email.strip().lower()}:{window}", settings.PASSWORD_RESET_MAX_PER_ADDRESS),
        (f"password-reset:ip:{client_ip(request) or 'unknown'}:{window}", settings.PASSWORD_RESET_MAX_PER_IP),
    ):
        cache.add(key, 0, settings.PASSWORD_RESET_WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr, or the cache is unreachable
            count = 1
        allowed = allowed and count <= limit
    return allowed


class ClientPasswordResetForm(forms.Form):
    """Asks for a reset link. Whatever the address, the request does the same work (count it, queue one task with
    the address) and the page says the same thing: the task alone finds out whether a user has it."""

    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}),
    )

    def __init__(self, *args, request=None, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def clean_email(self):
        email = self.cleaned_data["email"]
        if self.request is not None and not password_reset_request_allowed(self.request, email):
            raise ValidationError(
                "Too many requests for a reset link. Please wait %(minutes)s minutes and try again.",
                code="throttled",
                params={"minutes": max(1, settings.PASSWORD_RESET_WINDOW_SECONDS // 60)},
            )
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

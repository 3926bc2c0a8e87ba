"""The admin's login form, throttled against password guessing: per client IP and per e-mail address, a limited
number of failures per window (counted in the cache, shared by every worker); past it, the form asks to wait."""

import hashlib
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError


def _client_ip(request) -> str:
    # Behind N proxies the client is the N-th address from the right of X-Forwarded-For (as the API's throttle).
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(request, username: str) -> list[tuple[str, int]]:
    window = int(time.time() // settings.ADMIN_LOGIN_FAILURE_WINDOW_SECONDS)
    user_hash = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"admin-login-fail:ip:{_client_ip(request)}:{window}", settings.ADMIN_LOGIN_MAX_FAILURES_PER_IP),
        (f"admin-login-fail:user:{user_hash}:{window}", settings.ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME),
    ]


def admin_login_is_blocked(request, username: str) -> bool:
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(request, username))


def admin_login_failure_record(request, username: str) -> None:
    timeout = settings.ADMIN_LOGIN_FAILURE_WINDOW_SECONDS + 5
    for key, _ in _keys(request, username):
        cache.add(key, 0, timeout)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout)


def admin_login_failures_clear(request, username: str) -> None:
    """A successful login forgets the address's failures (typos before it), not the IP's."""
    cache.delete(_keys(request, username)[1][0])


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many failed logins. Please wait %(minutes)s minutes and try again.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        if self.request is not None and admin_login_is_blocked(self.request, username):
            # The password is not even checked: a guess made now would tell the guesser nothing.
            raise ValidationError(
                self.error_messages["throttled"], code="throttled",
                params={"minutes": max(1, settings.ADMIN_LOGIN_FAILURE_WINDOW_SECONDS // 60)},
            )
        try:
            cleaned_data = super().clean()
        except ValidationError:
            if self.request is not None:
                admin_login_failure_record(self.request, username)
            raise
        if self.request is not None:
            admin_login_failures_clear(self.request, username)
        return cleaned_data

"""Sign-in protection with django-axes: the glue our settings name (client IP, username, backend, lockout answer)
and the form mixin that tells a locked-out person how long to wait. Used by the admin's login and the client area's."""

import ipaddress
import math

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.utils import timezone

LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Please try again in %(minutes)s minutes."


def client_ip(request) -> str | None:
    """The client's address as the API's throttle takes it (DRF's get_ident): behind DJANGO_NUM_PROXIES proxies, that
    many addresses from the right of X-Forwarded-For, the part our own proxy wrote; with none, the socket's address.
    Whatever a client puts to the left of it is ignored, so a forged header cannot buy a fresh address; a value that is
    not an address at all counts as the socket's. None when there is no address (a request made up in a test)."""
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        candidate = addresses[-min(proxies, len(addresses))]
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return remote
    return remote


def login_username(request, credentials) -> str | None:
    """The address typed, as one account: `Jane@Example.com ` and `jane@example.com` share their failures."""
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        username = credentials.get(field)
    else:
        username = getattr(request, "POST", {}).get(field)
    return username.strip().lower() if username else username


class LoginLockoutBackend(AxesStandaloneBackend):
    """axes' backend, for sign-ins that come with a request (every form we serve). A call without one (the test
    client's `login()`, a shell) has no client to lock and is left to the next backend instead of raising."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_minutes_left(request) -> int:
    """Whole minutes until the account can sign in again from this client (at least 1)."""
    cool_off = get_cool_off(request)
    attempt = (
        AccessAttempt.objects.filter(username=login_username(request, None), ip_address=client_ip(request))
        .order_by("-attempt_time")
        .first()
    )
    if attempt is None or cool_off is None:
        return max(1, math.ceil((cool_off.total_seconds() if cool_off else 0) / 60))
    seconds = (attempt.attempt_time + cool_off - timezone.now()).total_seconds()
    return max(1, math.ceil(seconds / 60))


class LockoutMessageFormMixin:
    """For an AuthenticationForm: when axes refused the sign-in (locked now, or by this very failure), the error says
    so and how long to wait, instead of the usual "wrong password"."""

    def get_invalid_login_error(self):
        if self.request is not None and getattr(self.request, "axes_locked_out", False):
            return ValidationError(
                LOCKED_OUT_MESSAGE, code="locked_out", params={"minutes": lockout_minutes_left(self.request)}
            )
        return super().get_invalid_login_error()


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the sign-in page the form drew (with the message above) answered as 429, rather than
    axes' bare page; anything else (no page drawn) gets the message as text."""
    if original_response is not None and original_response.status_code == 200:
        original_response.status_code = 429
        return original_response
    minutes = lockout_minutes_left(request)
    return HttpResponse(LOCKED_OUT_MESSAGE % {"minutes": minutes}, status=429, content_type="text/plain; charset=utf-8")

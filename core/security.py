"""Keeping secrets out of sight: the Stripe key, webhook secrets, the control panel's HMAC secret, Django's key and the
passwords in connection URLs are masked in log lines and error reports, and dj-stripe's admin shows none of them."""

import logging
import re
from functools import lru_cache

from django.conf import settings
from django.contrib import admin
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = "********************"

# Settings whose values are secrets. Anything else named like a secret is masked in error reports by its name.
SECRET_SETTINGS = (
    "SECRET_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_TEST_SECRET_KEY",
    "STRIPE_LIVE_SECRET_KEY",
    "PROVISIONING_HTTP_SECRET",
    "EMAIL_HOST_PASSWORD",
    "METRICS_BEARER_TOKEN",
    "DATABASE_APP_PASSWORD",
)
# Settings that are URLs which may carry a password (redis://:pw@host, postgres://user:pw@host).
URL_SETTINGS = ("REDIS_URL", "CELERY_BROKER_URL", "PROVISIONING_HTTP_URL")

# Shapes of Stripe secrets, wherever they come from (a key dj-stripe echoes in an error, a webhook secret).
_STRIPE_SECRET = re.compile(r"\b((?:sk|rk)_(?:live|test)|whsec)_[A-Za-z0-9]{8,}")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/@:\s]*:)(?P<password>[^@/\s]+)(?=@)", re.I)


def _stripe_secret_masked(match: re.Match) -> str:
    secret = match.group(0)
    return f"{match.group(1)}_...{secret[-4:]}"  # as Stripe's dashboard shows a key


@lru_cache(maxsize=8)
def _known_secrets(*values: str) -> tuple[str, ...]:
    # Longest first, so a secret that contains another is replaced whole. Short values would mask ordinary words.
    return tuple(sorted({v for v in values if isinstance(v, str) and len(v) >= 8}, key=len, reverse=True))


def known_secret_values() -> tuple[str, ...]:
    values = [getattr(settings, name, "") for name in SECRET_SETTINGS]
    for database in settings.DATABASES.values():
        values.append(database.get("PASSWORD") or "")
    return _known_secrets(*values)


def redact(text: str) -> str:
    """The text with every secret we know of, every Stripe-shaped secret and every password in a URL masked."""
    if not text:
        return text
    for secret in known_secret_values():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _STRIPE_SECRET.sub(_stripe_secret_masked, text)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


class SecretsLogFilter(logging.Filter):
    """On a log handler: masks secrets in the message and the traceback before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the formatter's problem to report, not ours
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            masked_text = redact(text)
            if masked_text != text:
                # Formatters print exc_text when there is no exc_info to format afresh.
                record.exc_info, record.exc_text = None, masked_text
        return True


class _Masked:
    """Stands in for a frame variable in an error report: its repr, masked."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """DEFAULT_EXCEPTION_REPORTER_FILTER: Django's, plus our names (URLs with credentials, webhook secrets), POST
    fields named like secrets, and frame variables named like secrets or holding one, masked on the debug page and in
    the error e-mails alike."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL|DATABASE_URL|BROKER_URL|REDIS_URL|DSN|WHSEC",
        flags=re.I,
    )

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            cleansed = redact(cleansed)
        return cleansed

    def get_post_parameters(self, request):
        post = super().get_post_parameters(request)
        if request is None or not post:
            return post
        post = post.copy()
        for name in post:
            if self.hidden_settings.search(name):
                post[name] = self.cleansed_substitute
        return post

    def get_traceback_frame_variables(self, request, tb_frame):
        cleansed = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if value != self.cleansed_substitute:
                if isinstance(name, str) and self.hidden_settings.search(name):
                    value = self.cleansed_substitute
                else:
                    try:
                        text = repr(value)
                    except Exception:
                        text = ""
                    masked = redact(text)
                    if masked != text:
                        value = _Masked(masked)
            cleansed.append((name, value))
        return cleansed


class SecretsExceptionReporter(ExceptionReporter):
    """DEFAULT_EXCEPTION_REPORTER: the exception's own message masked too (dj-stripe puts an invalid key in its
    message, a connection error its URL)."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        if data.get("exception_value"):
            data["exception_value"] = redact(str(data["exception_value"]))
        for frame in data.get("frames", []):
            frame["exc_cause"] = frame.get("exc_cause") and _Masked(redact(str(frame["exc_cause"])))
        return data


# --- The admin: dj-stripe's pages read-only, for superusers, without secrets ---------------------------------------

# Names of fields and properties never shown: dj-stripe's StripeModelAdmin lists every property of a model as a
# read-only field, and `default_api_key` is the secret key itself.
SECRET_FIELD = re.compile(r"secret|api_key|password", re.I)


def _without_secrets(names):
    return [name for name in names if not (isinstance(name, str) and SECRET_FIELD.search(name))]


class SuperuserOnlyAdminMixin:
    """Only superusers see the model in the admin (staff with a stray permission do not)."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class StripeMirrorAdminMixin(SuperuserOnlyAdminMixin):
    """dj-stripe's copies of Stripe objects: looked at, never edited here (Stripe is the source; our back office has
    its own actions), no secret field or property shown, and none of dj-stripe's actions, whose confirmation view
    checks no permission at all (any staff member could cancel a subscription through it)."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}

    def get_urls(self):
        return admin.ModelAdmin.get_urls(self)  # without dj-stripe's custom-action view

    def get_list_display(self, request):
        return _without_secrets(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        return _without_secrets(super().get_readonly_fields(request, obj))

    def get_fields(self, request, obj=None):
        return _without_secrets(super().get_fields(request, obj))

    def get_fieldsets(self, request, obj=None):
        return [
            (title, {**options, "fields": _without_secrets(options.get("fields", ()))})
            for title, options in super().get_fieldsets(request, obj)
        ]

    def get_search_fields(self, request):
        return _without_secrets(super().get_search_fields(request))


def _stripe_properties_shown_safely(model, admin_class) -> dict:
    """Admin methods named as the model's properties, which the admin then shows in their place: dj-stripe reads some
    of them straight from the stored JSON (`Invoice.paid` is `stripe_data["paid"]`), and objects of our API version
    no longer carry every such key, which made the invoice pages a 500."""

    def shown(name):
        def show(self, obj):
            try:
                return getattr(obj, name)
            except (KeyError, TypeError, AttributeError):
                return None

        show.short_description = name.replace("_", " ")
        return show

    return {
        name: shown(name)
        for name in dir(model)
        if isinstance(getattr(model, name, None), property)
        and not hasattr(admin_class, name)
        and not SECRET_FIELD.search(name)
    }


def admin_site_lock_down(site: admin.AdminSite) -> None:
    """Called once the admin is loaded (backoffice's ready): dj-stripe's API key admin goes away, its other models
    become read-only for superusers only, and axes' lock records are for superusers only (they unlock)."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from djstripe.models import APIKey

    if site.is_registered(APIKey):
        site.unregister(APIKey)
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label == "djstripe":
            mixin = StripeMirrorAdminMixin
        elif model in (AccessAttempt, AccessLog, AccessFailureLog):
            mixin = SuperuserOnlyAdminMixin
        else:
            continue
        if isinstance(model_admin, mixin):
            continue
        attributes = (
            _stripe_properties_shown_safely(model, type(model_admin)) if mixin is StripeMirrorAdminMixin else {}
        )
        admin_class = type(type(model_admin).__name__, (mixin, type(model_admin)), attributes)
        site.unregister(model)
        site.register(model, admin_class)

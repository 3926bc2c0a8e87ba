"""System checks: provisioning settings that would only fail later, on a customer's order."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def provisioning_settings_check(app_configs, **kwargs) -> list[Error]:
    errors = []
    if settings.PROVISIONING_BACKEND == "http" and not (
        settings.PROVISIONING_HTTP_URL and settings.PROVISIONING_HTTP_SECRET
    ):
        errors.append(
            Error(
                "PROVISIONING_BACKEND is http, but PROVISIONING_HTTP_URL or PROVISIONING_HTTP_SECRET is empty.",
                hint="Set both, or PROVISIONING_BACKEND=simulated.",
                id="provisioning.E001",
            )
        )
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    if visibility <= settings.PROVISIONING_RETRY_CAP_SECONDS:
        errors.append(
            Error(
                f"PROVISIONING_RETRY_CAP_SECONDS ({settings.PROVISIONING_RETRY_CAP_SECONDS:g}) must be shorter than the "
                f"broker's visibility timeout ({visibility}): Redis would hand a waiting retry to a second worker.",
                id="provisioning.E002",
            )
        )
    return errors

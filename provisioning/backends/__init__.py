"""Provisioning backends behind one interface (base.py); settings.PROVISIONING_BACKEND picks one."""

from django.conf import settings
from django.utils.module_loading import import_string

from provisioning.backends.base import (
    AccountActionRequest,
    PlanChangeRequest,
    ProvisionedAccount,
    ProvisioningBackend,
    ProvisioningError,
    ProvisioningRequest,
)
from provisioning.backends.http import HttpBackend
from provisioning.backends.simulated import SimulatedBackend

__all__ = [
    "AccountActionRequest",
    "PlanChangeRequest",
    "ProvisionedAccount",
    "ProvisioningBackend",
    "ProvisioningError",
    "ProvisioningRequest",
    "provisioning_backend_get",
]


def provisioning_backend_get() -> ProvisioningBackend:
    """The configured backend: a short name, or the dotted path of a class built without arguments."""
    choice = settings.PROVISIONING_BACKEND
    if choice == "simulated":
        return SimulatedBackend()
    if choice == "http":
        return HttpBackend(
            url=settings.PROVISIONING_HTTP_URL,
            secret=settings.PROVISIONING_HTTP_SECRET,
            timeout=settings.PROVISIONING_HTTP_TIMEOUT_SECONDS,
        )
    return import_string(choice)()

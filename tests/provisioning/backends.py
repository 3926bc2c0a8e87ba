"""Backends for tests, selected like any other through settings.PROVISIONING_BACKEND (a dotted path)."""

from datetime import timedelta

from django.utils import timezone

from provisioning.backends import AccountActionRequest, ProvisionedAccount, ProvisioningRequest
from provisioning.backends.simulated import SimulatedBackend
from provisioning.models import ProvisioningJob
from provisioning.tasks import provisioning_job_run_task


class RedeliveringBackend(SimulatedBackend):
    """While the first delivery of a job's task is inside the backend, the broker delivers the same message again
    (as Redis does after a visibility timeout, or a second worker with a copy). Records what that delivery did."""

    name = "redelivering"
    calls: list[int] = []
    redelivery_results: list[object] = []

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        type(self).calls.append(request.attempt)
        if len(type(self).calls) == 1:
            type(self).redelivery_results.append(provisioning_job_run_task.apply(args=[request.job_id]).result)
        return super().provision(request)


class ExplodingBackend:
    """A backend with a bug: not a ProvisioningError, just an exception."""

    name = "exploding"

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        raise KeyError("server")


class LeaseOutlivingBackend(SimulatedBackend):
    """The first attempt is so slow that its lease expires and another delivery runs the job meanwhile; then the
    first attempt comes back with an answer of its own, too late to count."""

    name = "lease-outliving"
    calls: list[int] = []

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        type(self).calls.append(request.attempt)
        if request.attempt == 1:
            expired = timezone.now() - timedelta(seconds=1)
            ProvisioningJob.objects.filter(pk=request.job_id).update(lease_expires_at=expired)
            provisioning_job_run_task.delay(request.job_id)
            return ProvisionedAccount(username="late", server="late.test", domain=request.domain, reference="late")
        return super().provision(request)


class RecordingBackend(SimulatedBackend):
    """The simulated panel, keeping a list of what it was asked, in order: (action, job id, attempt)."""

    name = "recording"
    calls: list[tuple[str, int, int]] = []

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        type(self).calls.append(("provision", request.job_id, request.attempt))
        return super().provision(request)

    def _act(self, request: AccountActionRequest) -> None:
        type(self).calls.append((request.action, request.job_id, request.attempt))
        super()._act(request)

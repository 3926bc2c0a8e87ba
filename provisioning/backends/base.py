"""The interface every provisioning backend implements: create (or find) the hosting account, and carry out billing's
decisions about it (suspend, unsuspend, terminate, change its plan)."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProvisioningRequest:
    """What a backend is told about one job. `idempotency_key` is the same on every attempt of the job."""

    idempotency_key: str
    job_id: int
    attempt: int
    subscription_id: int
    product_code: str
    billing_cycle: str
    domain: str
    customer_email: str
    customer_name: str


@dataclass(frozen=True)
class AccountActionRequest:
    """One decision about an existing account: `action` is suspend, unsuspend or terminate. `idempotency_key` is the
    job's, the same on every attempt; `reason` is what staff or the billing rule gave, for the panel's own log."""

    idempotency_key: str
    job_id: int
    attempt: int
    subscription_id: int
    action: str
    username: str
    server: str
    domain: str
    panel_reference: str
    reason: str


@dataclass(frozen=True)
class PlanChangeRequest(AccountActionRequest):
    """Move an existing account to another plan or billing cycle (`action` is change_plan): the panel gives it the
    resources of `product_code`. The previous plan is said too, for the panel's log and its own checks."""

    product_code: str
    billing_cycle: str
    previous_product_code: str
    previous_billing_cycle: str


@dataclass(frozen=True)
class ProvisionedAccount:
    """The account as the control panel reports it. Never a password: customers set theirs in the panel."""

    username: str
    server: str
    domain: str
    reference: str


class ProvisioningError(Exception):
    """The backend did not do what it was asked. `retryable`: another attempt may succeed (timeouts, 5xx); otherwise
    the request itself was refused and repeating it is pointless."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class ProvisioningBackend(Protocol):
    name: str  # recorded on the job, at most 50 characters

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        """Create the account, or return the one already made for `request.idempotency_key`.

        Raises ProvisioningError. Must be safe to call again with the same key: a worker can die after the
        backend acted but before we recorded its answer.
        """
        ...

    def suspend(self, request: AccountActionRequest) -> None:
        """Suspend the account (the site stops serving, the data stays). Raises ProvisioningError.

        Like every action, safe to call again with the same key, and a success when the account is already in the
        state asked for: an earlier attempt may have acted without our hearing the answer.
        """
        ...

    def unsuspend(self, request: AccountActionRequest) -> None:
        """Make a suspended account serve again. Raises ProvisioningError."""
        ...

    def terminate(self, request: AccountActionRequest) -> None:
        """Remove the account for good. Raises ProvisioningError."""
        ...

    def change_plan(self, request: PlanChangeRequest) -> None:
        """Give the account the resources of `request.product_code`; a success when it already has them.
        Raises ProvisioningError."""
        ...


class ActionsThroughOneCall:
    """For a backend that carries out every decision about an account the same way, one call naming the action:
    ProvisioningBackend's four actions, each handed to the backend's `_act`."""

    def _act(self, request: AccountActionRequest) -> None:
        raise NotImplementedError

    def suspend(self, request: AccountActionRequest) -> None:
        self._act(request)

    def unsuspend(self, request: AccountActionRequest) -> None:
        self._act(request)

    def terminate(self, request: AccountActionRequest) -> None:
        self._act(request)

    def change_plan(self, request: PlanChangeRequest) -> None:
        self._act(request)

"""A backend without a control panel, for development and tests: the account is derived from the order.

The answer is a pure function of the request, so a second call with the same idempotency key returns the same
account, in any process. The first label of the domain selects a behaviour, so that a test (or a person trying
`make run`) can order a failure through the real checkout:

    fail-3-times.example.com   attempts 1 to 3 fail (retryable), attempt 4 succeeds
    always-fail.example.com    every attempt fails (retryable), until the job runs out of attempts
    reject.example.com         the panel refuses the order (permanent: no retry)
    slow-20s.example.com       takes 20 seconds, then succeeds (to stop a worker mid-job)

Suspend, unsuspend, terminate and change_plan always succeed (the panel holds no state here: asking twice is as good
as once), except for accounts whose domain's first label names the action that misbehaves; provisioning them
succeeds:

    suspend-fails.example.com      every suspend fails (retryable); likewise unsuspend-, terminate-, change_plan-fails
    suspend-rejected.example.com   the panel refuses to suspend (permanent); likewise unsuspend-, terminate-,
                                   change_plan-rejected
    slow-20s.example.com           takes 20 seconds for every action too
"""

import hashlib
import re
import time
import uuid

from provisioning.backends.base import (
    AccountActionRequest,
    ActionsThroughOneCall,
    ProvisionedAccount,
    ProvisioningError,
    ProvisioningRequest,
)

SERVER_NAMES = tuple(f"web{n:02d}.sim.migrahosting.test" for n in range(1, 5))
_FAIL_N_TIMES = re.compile(r"^fail-(\d+)-times?$")
_SLOW = re.compile(r"^slow-(\d+)s$")


class SimulatedBackend(ActionsThroughOneCall):
    name = "simulated"

    def provision(self, request: ProvisioningRequest) -> ProvisionedAccount:
        label = request.domain.split(".", 1)[0].lower()
        if label == "always-fail":
            raise ProvisioningError(f"simulated failure (attempt {request.attempt})", retryable=True)
        if label == "reject":
            raise ProvisioningError("simulated refusal: the panel rejected the order", retryable=False)
        if (match := _FAIL_N_TIMES.match(label)) and request.attempt <= int(match[1]):
            raise ProvisioningError(f"simulated failure {request.attempt} of {match[1]}", retryable=True)
        if match := _SLOW.match(label):
            time.sleep(int(match[1]))

        key = uuid.UUID(request.idempotency_key)
        return ProvisionedAccount(
            username=simulated_username(request.domain or request.customer_email, key=key),
            server=SERVER_NAMES[key.int % len(SERVER_NAMES)],
            domain=request.domain,
            reference=f"sim-{key.hex[:12]}",
        )

    def _act(self, request: AccountActionRequest) -> None:
        label = request.domain.split(".", 1)[0].lower()
        if label == f"{request.action}-fails":
            raise ProvisioningError(f"simulated {request.action} failure (attempt {request.attempt})", retryable=True)
        if label == f"{request.action}-rejected":
            raise ProvisioningError(
                f"simulated refusal: the panel would not {request.action} the account", retryable=False
            )
        if match := _SLOW.match(label):
            time.sleep(int(match[1]))


def simulated_username(source: str, *, key: uuid.UUID) -> str:
    """Up to 8 letters and digits of the domain's first label (or the e-mail's local part), starting with a letter,
    and 4 hex digits of the key so that two customers with similar domains get different users: `example3f2a`."""
    stem = re.sub(r"[^a-z0-9]", "", re.split(r"[.@]", source.lower(), maxsplit=1)[0])
    stem = stem.lstrip("0123456789")[:8] or "user"
    return f"{stem}{hashlib.sha256(key.bytes).hexdigest()[:4]}"

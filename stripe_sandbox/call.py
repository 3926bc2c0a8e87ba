"""The request context an endpoint handler gets: the sandbox's state, the call's parameters and who asked, when.

Apart from wire.py (the format) and store.py (the state) so that neither imports the other: the store raises wire's
errors; a call carries the store.
"""

from dataclasses import dataclass

from stripe_sandbox.store import Store
from stripe_sandbox.wire import Params


@dataclass
class ApiCall:
    """What an endpoint handler gets: the state, its parameters and the request context."""

    store: Store
    params: Params
    now: int
    api_version: str
    public_url: str
    request_id: str | None = None
    idempotency_key: str | None = None

    @property
    def event_request(self) -> dict:
        """The `request` of the events this call causes."""
        return {"id": self.request_id, "idempotency_key": self.idempotency_key}

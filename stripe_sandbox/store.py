"""The sandbox's in-memory state: Stripe objects and events, the clock, idempotent results, injected faults and the
request log."""

import heapq
import json
import secrets
import string
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from stripe_sandbox import objects
from stripe_sandbox.wire import encode_json, resource_missing

_ALPHANUMERIC = string.ascii_letters + string.digits

# The account is configuration rather than state: a fixed id survives resets and restarts, so the owner account that
# dj-stripe stored for our API key stays valid.
ACCOUNT_ID = "acct_1SbxLocalSandbox"

# The API version events are rendered in: the account's default, which the project pins too.
ACCOUNT_API_VERSION = "2026-05-27.dahlia"

REQUEST_LOG_SIZE = 1000
IDEMPOTENCY_KEYS_KEPT = 10_000
IDEMPOTENCY_KEY_LIFETIME = 24 * 3600


def new_id(prefix: str, length: int) -> str:
    # One urandom call per id (secrets.choice makes one per character, a third of a session create's time);
    # bytes from 248 up are skipped so that every character stays equally likely (248 = 4 * 62).
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(_ALPHANUMERIC[byte % 62] for byte in secrets.token_bytes(2 * length) if byte < 248)
    return prefix + "".join(chars[:length])


@dataclass
class IdempotentResult:
    method: str
    path: str
    params: dict
    status: int
    body: bytes
    request_id: str
    created: float = field(default_factory=time.time)


@dataclass
class Fault:
    path_prefix: str
    method: str | None
    status: int | None
    count: int
    delay_ms: int

    def as_dict(self) -> dict:
        return {
            "path_prefix": self.path_prefix,
            "method": self.method,
            "status": self.status,
            "count": self.count,
            "delay_ms": self.delay_ms,
        }


@dataclass(frozen=True)
class BillingConfig:
    """How failed renewals are retried: days after the first failure, and what the last failure does (Stripe's
    Dashboard settings for smart retries and "if all retries for a payment fail")."""

    retry_days: tuple[int, ...] = (3, 5, 7)
    after_last_retry: str = "cancel"  # or "unpaid"


class Store:
    """All state behind one re-entrant lock; the server holds it for the whole of an API call.

    `event_sink`, when set, is called (under the lock, so in creation order) with each new event and the ids of the
    webhook endpoints that want it; it must only queue the work, never wait.
    """

    def __init__(self, billing: BillingConfig | None = None, public_url: str = "http://127.0.0.1"):
        self.lock = threading.RLock()
        self.billing = billing or BillingConfig()
        # Base of the hosted pages' URLs (checkout, invoices).
        self.public_url = public_url
        self.account = objects.account(id=ACCOUNT_ID, created=int(time.time()))
        self.event_sink: Callable[[dict, list[str]], None] | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            # Seconds added to the wall clock by POST /_sandbox/clock/advance.
            self.clock_offset = 0
            # (expires_at, session id) of sessions created open, soonest first; see fulfillment.expire_due_sessions.
            self.expirations: list[tuple[int, str]] = []
            self._objects: dict[tuple[str, str], dict] = {}
            self._ids_by_type: dict[str, list[str]] = defaultdict(list)
            # Data that belongs to an object without being one of its fields, keyed by (object id, name):
            # a session's line items, discount, subscription_data (for the subscription it will create) and
            # return_url; an invoice's payment intent; a webhook endpoint's signing secret; a bank account's
            # mandate.
            self.attached: dict[tuple[str, str], object] = {}
            self.idempotent: OrderedDict[str, IdempotentResult] = OrderedDict()
            self.requests: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)
            self.faults: list[Fault] = []
            # What subscriptions have to do next (renew, retry a payment, end), per clock (None: the sandbox's own,
            # else a test clock id): heaps of (time, sequence, subscription id); see billing.py.
            self.billing_due: dict[str | None, list[tuple[int, int, str]]] = defaultdict(list)
            self.billing_sequence = 0

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    # Stripe objects

    def add(self, obj: dict) -> dict:
        self._objects[obj["object"], obj["id"]] = obj
        self._ids_by_type[obj["object"]].append(obj["id"])
        return obj

    def remove(self, object_type: str, id: str) -> None:
        del self._objects[object_type, id]
        self._ids_by_type[object_type].remove(id)

    def find(self, object_type: str, id: str) -> dict | None:
        return self._objects.get((object_type, id))

    def get(self, object_type: str, id: str, *, param: str = "id", status: int = 404) -> dict:
        obj = self.find(object_type, id)
        if obj is None:
            raise resource_missing(object_type, id, param=param, status=status)
        return obj

    def newest_first(self, object_type: str) -> list[dict]:
        return [self._objects[object_type, id] for id in reversed(self._ids_by_type[object_type])]

    # Subscriptions' next steps

    def schedule_billing(self, subscription: dict, at: int) -> None:
        """Note that `subscription` has something to do at `at` (on its clock); billing.run_due decides what."""
        self.billing_sequence += 1
        heapq.heappush(self.billing_due[subscription["test_clock"]], (at, self.billing_sequence, subscription["id"]))

    # Events

    def emit(
        self,
        type: str,
        obj: dict,
        *,
        request: dict | None = None,
        previous_attributes: dict | None = None,
        created: int | None = None,
    ) -> dict:
        """Record an event about `obj` (a snapshot of it as it is now) and hand it to the webhook endpoints that want
        it. `request` is `{"id": ..., "idempotency_key": ...}` of the API request that caused it, if any; `created`
        is when it happened (default now: a renewal or a test clock says otherwise)."""
        endpoints = self.endpoints_for(type)
        request = request or {}
        event = self.add(
            objects.event(
                id=new_id("evt_", 24),
                created=self.now() if created is None else created,
                type=type,
                api_version=ACCOUNT_API_VERSION,
                # A JSON round trip is a deep copy, and quicker than copy.deepcopy.
                data_object=json.loads(encode_json(obj)),
                previous_attributes=previous_attributes,
                request_id=request.get("id"),
                idempotency_key=request.get("idempotency_key"),
                pending_webhooks=len(endpoints),
            )
        )
        if endpoints and self.event_sink is not None:
            self.event_sink(event, endpoints)
        return event

    def endpoints_for(self, type: str) -> list[str]:
        """The enabled webhook endpoints that want events of `type`, oldest first."""
        return [
            endpoint["id"]
            for endpoint in reversed(self.newest_first("webhook_endpoint"))
            if endpoint["status"] == "enabled"
            and ("*" in endpoint["enabled_events"] or type in endpoint["enabled_events"])
        ]

    # Idempotency

    def idempotent_result(self, key: str) -> IdempotentResult | None:
        result = self.idempotent.get(key)
        if result is not None and result.created < time.time() - IDEMPOTENCY_KEY_LIFETIME:
            del self.idempotent[key]
            return None
        return result

    def save_idempotent_result(self, key: str, result: IdempotentResult) -> None:
        self.idempotent[key] = result
        # Stripe may forget keys after 24 hours; a bound also keeps a long benchmark from growing without limit.
        while len(self.idempotent) > IDEMPOTENCY_KEYS_KEPT:
            self.idempotent.popitem(last=False)

    # Faults

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counted down (and dropped once used up)."""
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path_prefix) and fault.method in (None, method):
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # Request log

    def log_request(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)

    def logged_requests(self) -> list[dict]:
        with self.lock:
            return list(self.requests)

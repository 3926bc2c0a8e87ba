"""The sandbox's in-memory state: Stripe objects, idempotent results, injected faults and the request log."""

import secrets
import string
import threading
import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field

from stripe_sandbox import objects
from stripe_sandbox.wire import resource_missing

_ALPHANUMERIC = string.ascii_letters + string.digits

# The account is configuration rather than state: a fixed id survives resets and restarts, so the owner account that
# dj-stripe stored for our API key stays valid.
ACCOUNT_ID = "acct_1SbxLocalSandbox"

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


class Store:
    """All state behind one re-entrant lock; the server holds it for the whole of an API call."""

    def __init__(self):
        self.lock = threading.RLock()
        self.account = objects.account(id=ACCOUNT_ID, created=int(time.time()))
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._objects: dict[tuple[str, str], dict] = {}
            self._ids_by_type: dict[str, list[str]] = defaultdict(list)
            # Data that belongs to an object without being one of its fields, keyed by (object id, name):
            # a session's line items and discount, its subscription_data for the subscription it will create.
            self.attached: dict[tuple[str, str], object] = {}
            self.idempotent: OrderedDict[str, IdempotentResult] = OrderedDict()
            self.requests: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)
            self.faults: list[Fault] = []

    # Stripe objects

    def add(self, obj: dict) -> dict:
        self._objects[obj["object"], obj["id"]] = obj
        self._ids_by_type[obj["object"]].append(obj["id"])
        return obj

    def find(self, object_type: str, id: str) -> dict | None:
        return self._objects.get((object_type, id))

    def get(self, object_type: str, id: str, *, param: str = "id", status: int = 404) -> dict:
        obj = self.find(object_type, id)
        if obj is None:
            raise resource_missing(object_type, id, param=param, status=status)
        return obj

    def newest_first(self, object_type: str) -> list[dict]:
        return [self._objects[object_type, id] for id in reversed(self._ids_by_type[object_type])]

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

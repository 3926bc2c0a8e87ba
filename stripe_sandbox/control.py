"""The control API under `/_sandbox/` (not Stripe's): reset the state, inject faults, read the request log, health."""

import json

from stripe_sandbox.responses import Response, json_response
from stripe_sandbox.store import Fault, Store

FAULT_STATUSES = (500, 502, 503)
_FAULT_FIELDS = {"path_prefix", "method", "status", "count", "delay_ms"}


def _reset(store: Store, body: bytes) -> dict:
    store.reset()
    return {"reset": True}


def _parse_fault(body: bytes) -> Fault:
    """`{"path_prefix": "/v1/checkout/sessions", "method": "POST", "status": 500, "count": 1, "delay_ms": 0}`;
    all optional: any /v1/ request, any method, status 500 (null: only the delay), once, no delay."""
    try:
        spec = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("The body must be a JSON object.") from None
    if not isinstance(spec, dict):
        raise ValueError("The body must be a JSON object.")
    unknown = set(spec) - _FAULT_FIELDS
    if unknown:
        raise ValueError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    path_prefix = spec.get("path_prefix", "/v1/")
    method = spec.get("method")
    status = spec.get("status", 500)
    count = spec.get("count", 1)
    delay_ms = spec.get("delay_ms", 0)
    if not isinstance(path_prefix, str) or not path_prefix.startswith("/v1/"):
        raise ValueError("path_prefix must be a string starting with /v1/.")
    if method is not None and method not in ("GET", "POST", "DELETE"):
        raise ValueError("method must be GET, POST, DELETE or null (any).")
    if status is not None and status not in FAULT_STATUSES:
        raise ValueError("status must be 500, 502, 503 or null (delay only).")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count must be a positive integer.")
    if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
        raise ValueError("delay_ms must be a non-negative integer.")
    if status is None and delay_ms == 0:
        raise ValueError("A fault needs a status, a delay_ms, or both.")
    return Fault(path_prefix=path_prefix, method=method, status=status, count=count, delay_ms=delay_ms)


def _add_fault(store: Store, body: bytes) -> dict:
    fault = _parse_fault(body)
    store.add_fault(fault)
    return {"fault": fault.as_dict()}


def _requests(store: Store, body: bytes) -> dict:
    return {"data": store.logged_requests()}


def _health(store: Store, body: bytes) -> dict:
    return {"status": "ok"}


_ROUTES = {
    ("POST", "/_sandbox/reset"): _reset,
    ("POST", "/_sandbox/faults"): _add_fault,
    ("GET", "/_sandbox/requests"): _requests,
    ("GET", "/_sandbox/health"): _health,
}


def handle(store: Store, method: str, path: str, body: bytes) -> Response:
    handler = _ROUTES.get((method, path))
    if handler is None:
        return json_response(404, {"error": {"message": f"No control endpoint {method} {path}."}})
    try:
        return json_response(200, handler(store, body))
    except ValueError as error:
        return json_response(400, {"error": {"message": str(error)}})

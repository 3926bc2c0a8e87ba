"""The control API under `/_sandbox/` (not Stripe's): reset the state, inject faults, read the request log, watch
and steer webhook deliveries, move the clock, health."""

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from stripe_sandbox import billing, fulfillment
from stripe_sandbox.responses import Response, json_response
from stripe_sandbox.store import Fault, Store
from stripe_sandbox.webhooks import Dispatcher

FAULT_STATUSES = (500, 502, 503)
_FAULT_FIELDS = {"path_prefix", "method", "status", "count", "delay_ms"}
WAIT_MAX_SECONDS = 60


@dataclass
class _Context:
    store: Store
    dispatcher: Dispatcher
    query: dict[str, str]
    body: bytes


def _json_object(body: bytes, fields: set[str]) -> dict:
    try:
        spec = json.loads(body or b"{}")
    except ValueError:
        raise ValueError("The body must be a JSON object.") from None
    if not isinstance(spec, dict):
        raise ValueError("The body must be a JSON object.")
    unknown = set(spec) - fields
    if unknown:
        raise ValueError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    return spec


def _number(value, name: str, *, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative {'integer' if integer else 'number'}.")
    return value


def _reset(context: _Context) -> dict:
    """Forget objects, events, webhook endpoints, faults, the request log, queued deliveries and the delivery log;
    the clock goes back to the wall clock and deliveries resume."""
    context.store.reset()
    context.dispatcher.reset()
    return {"reset": True}


def _parse_fault(body: bytes) -> Fault:
    """`{"path_prefix": "/v1/checkout/sessions", "method": "POST", "status": 500, "count": 1, "delay_ms": 0}`;
    all optional: any /v1/ request, any method, status 500 (null: only the delay), once, no delay."""
    spec = _json_object(body, _FAULT_FIELDS)
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


def _add_fault(context: _Context) -> dict:
    fault = _parse_fault(context.body)
    context.store.add_fault(fault)
    return {"fault": fault.as_dict()}


def _requests(context: _Context) -> dict:
    return {"data": context.store.logged_requests()}


def _health(context: _Context) -> dict:
    return {"status": "ok"}


def _deliveries(context: _Context) -> dict:
    """Every delivery attempt, oldest first, optionally only those of `?event=`, `?endpoint=` or `?type=`."""
    filters = {name: context.query[name] for name in ("event", "endpoint", "type") if name in context.query}
    attempts = [
        attempt
        for attempt in context.dispatcher.attempts()
        if all(attempt[name] == value for name, value in filters.items())
    ]
    return {"data": attempts, **context.dispatcher.status()}


def _pause(context: _Context) -> dict:
    context.dispatcher.pause()
    return context.dispatcher.status()


def _resume(context: _Context) -> dict:
    context.dispatcher.resume()
    return context.dispatcher.status()


def _wait(context: _Context) -> dict:
    """`{"timeout": 10}`: answer once no delivery is pending and none is on the wire (`idle: true`: a request sent
    before a reset has been answered too) or after the timeout (`idle: false`)."""
    spec = _json_object(context.body, {"timeout"})
    timeout = min(_number(spec.get("timeout", 10), "timeout"), WAIT_MAX_SECONDS)
    idle = context.dispatcher.wait_idle(timeout)
    return {"idle": idle, **context.dispatcher.status()}


def _clock(context: _Context) -> dict:
    with context.store.lock:
        return {"now": context.store.now(), "offset": context.store.clock_offset}


def _advance_clock(context: _Context) -> dict:
    """`{"seconds": 1900}`: move the sandbox's clock on, expire the sessions whose time is up, and run every renewal,
    payment retry and period-end cancellation that came due, in time order (each at its own time)."""
    seconds = _number(_json_object(context.body, {"seconds"}).get("seconds"), "seconds", integer=True)
    store = context.store
    with store.lock:
        store.clock_offset += seconds
        expired = fulfillment.expire_due_sessions(store)
        steps = billing.run_due(store, None, store.now())
        return {"now": store.now(), "offset": store.clock_offset, "expired": expired, "billing_steps": steps}


def _redeliver(context: _Context) -> dict:
    """`{"event": "evt_...", "endpoint": "we_..."}`: send an event again, to one endpoint or to every enabled
    endpoint that wants its type (a duplicate delivery, as Stripe makes now and then)."""
    spec = _json_object(context.body, {"event", "endpoint"})
    store = context.store
    with store.lock:
        event = store.find("event", spec.get("event") or "")
        if event is None:
            raise LookupError(f"No such event: {spec.get('event')!r}.")
        if "endpoint" in spec:
            if store.find("webhook_endpoint", spec["endpoint"] or "") is None:
                raise LookupError(f"No such webhook endpoint: {spec['endpoint']!r}.")
            endpoints = [spec["endpoint"]]
        else:
            endpoints = store.endpoints_for(event["type"])
        context.dispatcher.enqueue(event, endpoints, counts_as_pending=False)
    return {"event": event["id"], "endpoints": endpoints}


_ROUTES = {
    ("POST", "/_sandbox/reset"): _reset,
    ("POST", "/_sandbox/faults"): _add_fault,
    ("GET", "/_sandbox/requests"): _requests,
    ("GET", "/_sandbox/health"): _health,
    ("GET", "/_sandbox/deliveries"): _deliveries,
    ("POST", "/_sandbox/deliveries/pause"): _pause,
    ("POST", "/_sandbox/deliveries/resume"): _resume,
    ("POST", "/_sandbox/deliveries/wait"): _wait,
    ("GET", "/_sandbox/clock"): _clock,
    ("POST", "/_sandbox/clock/advance"): _advance_clock,
    ("POST", "/_sandbox/webhooks/redeliver"): _redeliver,
}


def handle(store: Store, dispatcher: Dispatcher, method: str, path: str, query: str, body: bytes) -> Response:
    handler = _ROUTES.get((method, path))
    if handler is None:
        return json_response(404, {"error": {"message": f"No control endpoint {method} {path}."}})
    try:
        return json_response(200, handler(_Context(store, dispatcher, dict(parse_qsl(query)), body)))
    except ValueError as error:
        return json_response(400, {"error": {"message": str(error)}})
    except LookupError as error:
        return json_response(404, {"error": {"message": str(error).strip("'")}})

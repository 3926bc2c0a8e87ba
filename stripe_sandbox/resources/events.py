"""`/v1/events`: retrieve and list (newest first), filtered by type, a group of types or creation time."""

from fnmatch import fnmatchcase

from stripe_sandbox.call import ApiCall
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.wire import StripeError

TYPES_MAX = 20


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("event", id)


def list_events(call: ApiCall) -> dict:
    params = call.params
    type = params.string("type")
    types = params.strings("types")
    created = created_filter(params)
    if type is not None and types:
        raise StripeError("You may only specify one of these parameters: type, types.", param="types")
    if len(types) > TYPES_MAX:
        raise StripeError(f"You can pass at most {TYPES_MAX} types.", param="types")
    # `type` may name a group with a wildcard, such as `invoice.*`.
    patterns = [type] if type is not None else types
    events = [
        event
        for event in call.store.newest_first("event")
        if (not patterns or any(fnmatchcase(event["type"], pattern) for pattern in patterns)) and created(event)
    ]
    return page(params, events, url="/v1/events", object_type="event")


ROUTES = [
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/events/{id}", retrieve),
]

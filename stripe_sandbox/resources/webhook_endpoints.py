"""`/v1/webhook_endpoints`: create (the only answer that shows the signing secret), retrieve, list, update, delete."""

import re

from stripe_sandbox import objects
from stripe_sandbox.call import ApiCall
from stripe_sandbox.resources.listing import page
from stripe_sandbox.store import new_id
from stripe_sandbox.wire import Params, StripeError, missing_param

_EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)+")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
DESCRIPTION_MAX_LENGTH = 5000


def _enabled_events(params: Params, *, required: bool) -> list[str] | None:
    if not params.has("enabled_events"):
        if required:
            raise missing_param("enabled_events")
        params.strings("enabled_events")
        return None
    events = params.strings("enabled_events")
    for index, name in enumerate(events):
        # Stripe checks the names against its list of event types; the sandbox only checks their form.
        if name != "*" and not _EVENT_TYPE.fullmatch(name):
            raise StripeError(
                f"Invalid enabled_events[{index}]: {name} is not an event type.", param=f"enabled_events[{index}]"
            )
    if not events:
        raise missing_param("enabled_events")
    return list(dict.fromkeys(events))


def create(call: ApiCall) -> dict:
    params = call.params
    url = params.url("url")
    enabled_events = _enabled_events(params, required=True)
    api_version = params.string("api_version")
    description = params.string("description", max_length=DESCRIPTION_MAX_LENGTH)
    connect = params.boolean("connect")
    metadata = params.metadata()
    params.finish()
    if url is None:
        raise missing_param("url")
    if api_version is not None and not _API_VERSION.fullmatch(api_version):
        raise StripeError(f"Invalid Stripe API version: {api_version}", param="api_version")
    if connect:
        raise StripeError("The Stripe sandbox has no connected accounts: connect must be false.", param="connect")
    endpoint = call.store.add(
        objects.webhook_endpoint(
            id=new_id("we_", 24),
            created=call.now,
            url=url,
            enabled_events=enabled_events,
            api_version=api_version,
            description=description,
            metadata=metadata,
        )
    )
    secret = "whsec_" + new_id("", 32)
    call.store.attached[endpoint["id"], "secret"] = secret
    return {**endpoint, "secret": secret}


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("webhook_endpoint", id)


def list_endpoints(call: ApiCall) -> dict:
    endpoints = call.store.newest_first("webhook_endpoint")
    return page(call.params, endpoints, url="/v1/webhook_endpoints", object_type="webhook_endpoint")


def update(call: ApiCall, id: str) -> dict:
    params = call.params
    url = params.url("url")
    enabled_events = _enabled_events(params, required=False)
    description = params.string("description", max_length=DESCRIPTION_MAX_LENGTH)
    disabled = params.boolean("disabled")
    metadata = params.metadata(keep_empty=True)
    params.finish()
    endpoint = call.store.get("webhook_endpoint", id)
    if url is not None:
        endpoint["url"] = url
    if enabled_events is not None:
        endpoint["enabled_events"] = enabled_events
    if description is not None:
        endpoint["description"] = description
    if disabled is not None:
        endpoint["status"] = "disabled" if disabled else "enabled"
    for key, value in metadata.items():
        if value == "":
            endpoint["metadata"].pop(key, None)
        else:
            endpoint["metadata"][key] = value
    return endpoint


def delete(call: ApiCall, id: str) -> dict:
    call.params.finish()
    call.store.get("webhook_endpoint", id)
    call.store.remove("webhook_endpoint", id)
    call.store.attached.pop((id, "secret"), None)
    return {"id": id, "object": "webhook_endpoint", "deleted": True}


ROUTES = [
    ("POST", "/v1/webhook_endpoints", create),
    ("GET", "/v1/webhook_endpoints", list_endpoints),
    ("GET", "/v1/webhook_endpoints/{id}", retrieve),
    ("POST", "/v1/webhook_endpoints/{id}", update),
    ("DELETE", "/v1/webhook_endpoints/{id}", delete),
]

"""`/v1/test_helpers/test_clocks`: Stripe's test clocks. Customers created with `test_clock` live on the clock's
time, and so do their subscriptions and invoices; advancing a clock runs their renewals and retries in time order."""

from stripe_sandbox import billing, objects
from stripe_sandbox.call import ApiCall
from stripe_sandbox.resources.listing import page
from stripe_sandbox.store import new_id
from stripe_sandbox.wire import StripeError

OBJECT = "test_helpers.test_clock"

NAME_MAX_LENGTH = 300


def create(call: ApiCall) -> dict:
    params = call.params
    frozen_time = params.integer("frozen_time", required=True)
    name = params.string("name", max_length=NAME_MAX_LENGTH)
    params.finish()
    clock = call.store.add(
        objects.test_clock(id=new_id("clock_", 24), created=call.now, frozen_time=frozen_time, name=name)
    )
    call.store.emit("test_helpers.test_clock.created", clock, request=call.event_request, created=frozen_time)
    return clock


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get(OBJECT, id)


def list_clocks(call: ApiCall) -> dict:
    return page(call.params, call.store.newest_first(OBJECT), url="/v1/test_helpers/test_clocks", object_type=OBJECT)


def advance(call: ApiCall, id: str) -> dict:
    params = call.params
    frozen_time = params.integer("frozen_time", required=True)
    params.finish()
    clock = call.store.get(OBJECT, id)
    if clock["status"] != "ready":
        raise StripeError(f"The test clock {id} is {clock['status']}: it can only be advanced when it is ready.")
    return billing.advance_clock(call.store, clock, frozen_time, call.event_request)


def delete(call: ApiCall, id: str) -> dict:
    call.params.finish()
    clock = call.store.get(OBJECT, id)
    billing.delete_clock(call.store, clock)
    return {"id": id, "object": OBJECT, "deleted": True}


ROUTES = [
    ("POST", "/v1/test_helpers/test_clocks", create),
    ("GET", "/v1/test_helpers/test_clocks", list_clocks),
    ("GET", "/v1/test_helpers/test_clocks/{id}", retrieve),
    ("POST", "/v1/test_helpers/test_clocks/{id}/advance", advance),
    ("DELETE", "/v1/test_helpers/test_clocks/{id}", delete),
]

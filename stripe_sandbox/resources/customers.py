"""`/v1/customers`: create, retrieve, update and list."""

from stripe_sandbox import objects
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.store import new_id
from stripe_sandbox.wire import ApiCall

ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def create(call: ApiCall) -> dict:
    params = call.params
    email = params.email("email")
    name = params.string("name", max_length=256)
    description = params.string("description", max_length=350)
    phone = params.string("phone", max_length=20)
    address_params = params.hash("address")
    address = None
    if address_params is not None:
        address = {field: address_params.string(field) for field in ADDRESS_FIELDS}
    preferred_locales = params.strings("preferred_locales")
    metadata = params.metadata()
    params.finish()
    customer = call.store.add(
        objects.customer(
            id=new_id("cus_", 14),
            created=call.now,
            # Stripe's invoice prefixes are upper-case letters and digits.
            invoice_prefix=new_id("", 8).upper(),
            email=email,
            name=name,
            description=description,
            phone=phone,
            address=address,
            preferred_locales=preferred_locales,
            metadata=metadata,
        )
    )
    call.store.emit("customer.created", customer, request=call.event_request)
    return customer


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("customer", id)


def update(call: ApiCall, id: str) -> dict:
    """The fields a service changes on its customers (dj-stripe writes its subscriber key into metadata)."""
    params = call.params
    email = params.email("email")
    name = params.string("name", max_length=256)
    description = params.string("description", max_length=350)
    phone = params.string("phone", max_length=20)
    metadata = params.metadata(keep_empty=True)
    params.finish()
    customer = call.store.get("customer", id)
    previous: dict = {}
    for field, value in (("email", email), ("name", name), ("description", description), ("phone", phone)):
        if value is not None and value != customer[field]:
            previous[field] = customer[field]
            customer[field] = value
    old_metadata = dict(customer["metadata"])
    for key, value in metadata.items():
        if value == "":
            customer["metadata"].pop(key, None)
        else:
            customer["metadata"][key] = value
    new_metadata = customer["metadata"]
    changed = sorted(
        key for key in old_metadata.keys() | new_metadata.keys() if old_metadata.get(key) != new_metadata.get(key)
    )
    if changed:
        # Stripe lists the metadata keys that changed, with their old values (null for a key that is new).
        previous["metadata"] = {key: old_metadata.get(key) for key in changed}
    if previous:
        call.store.emit("customer.updated", customer, request=call.event_request, previous_attributes=previous)
    return customer


def list_customers(call: ApiCall) -> dict:
    params = call.params
    email = params.string("email", max_length=512)
    created = created_filter(params)
    customers = [
        customer
        for customer in call.store.newest_first("customer")
        if email in (None, customer["email"]) and created(customer)
    ]
    return page(params, customers, url="/v1/customers", object_type="customer")


ROUTES = [
    ("POST", "/v1/customers", create),
    ("GET", "/v1/customers", list_customers),
    ("GET", "/v1/customers/{id}", retrieve),
    ("POST", "/v1/customers/{id}", update),
]

"""`/v1/customers`: create and retrieve."""

from stripe_sandbox import objects
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
    return call.store.add(
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


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("customer", id)


ROUTES = [
    ("POST", "/v1/customers", create),
    ("GET", "/v1/customers/{id}", retrieve),
]

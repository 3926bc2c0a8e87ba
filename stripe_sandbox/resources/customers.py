"""`/v1/customers`: create, retrieve, update and list."""

from stripe_sandbox import billing, objects
from stripe_sandbox.call import ApiCall
from stripe_sandbox.fulfillment import _Flow
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.store import new_id
from stripe_sandbox.wire import StripeError

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
    test_clock_id = params.string("test_clock")
    payment_method_id = params.string("payment_method")
    settings = params.hash("invoice_settings")
    default_method_id = settings.string("default_payment_method") if settings is not None else None
    params.finish()
    clock = None
    if test_clock_id is not None:
        clock = call.store.get("test_helpers.test_clock", test_clock_id, param="test_clock", status=400)
    customer = call.store.add(
        objects.customer(
            id=new_id("cus_", 14),
            # A customer on a test clock is created at the clock's time.
            created=clock["frozen_time"] if clock else call.now,
            test_clock=test_clock_id,
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
    flow = _Flow(call.store, billing.now_for(call.store, customer), call.event_request)
    flow.emit("customer.created", customer)
    method = None
    if payment_method_id is not None:
        method = billing.payment_method_for_customer(
            call.store, payment_method_id, customer, now=flow.now, param="payment_method", flow=flow
        )
    if default_method_id is not None:
        if method is None or default_method_id != payment_method_id:
            method = billing.payment_method_for_customer(
                call.store,
                default_method_id,
                customer,
                now=flow.now,
                param="invoice_settings[default_payment_method]",
                flow=flow,
            )
        customer["invoice_settings"]["default_payment_method"] = method["id"]
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
    settings = params.hash("invoice_settings")
    default_method_id = settings.string("default_payment_method") if settings is not None else None
    params.finish()
    customer = call.store.get("customer", id)
    previous: dict = {}
    if default_method_id is not None:
        method = call.store.get(
            "payment_method", default_method_id, param="invoice_settings[default_payment_method]", status=400
        )
        if method["customer"] != id:
            raise StripeError(
                f"The customer does not have a payment method with the ID {default_method_id}. The payment method "
                "must be attached to the customer.",
                param="invoice_settings[default_payment_method]",
            )
        old = customer["invoice_settings"]["default_payment_method"]
        if old != method["id"]:
            previous["invoice_settings"] = {"default_payment_method": old}
            customer["invoice_settings"]["default_payment_method"] = method["id"]
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
        call.store.emit(
            "customer.updated",
            customer,
            request=call.event_request,
            previous_attributes=previous,
            created=billing.now_for(call.store, customer),
        )
    return customer


def list_customers(call: ApiCall) -> dict:
    params = call.params
    email = params.string("email", max_length=512)
    test_clock = params.string("test_clock")
    created = created_filter(params)
    customers = [
        customer
        for customer in call.store.newest_first("customer")
        if email in (None, customer["email"]) and test_clock in (None, customer["test_clock"]) and created(customer)
    ]
    return page(params, customers, url="/v1/customers", object_type="customer")


ROUTES = [
    ("POST", "/v1/customers", create),
    ("GET", "/v1/customers", list_customers),
    ("GET", "/v1/customers/{id}", retrieve),
    ("POST", "/v1/customers/{id}", update),
]

"""`/v1/products` and `/v1/prices`: create and retrieve, plus the `price_data` reader Checkout shares."""

from dataclasses import dataclass

from stripe_sandbox import objects
from stripe_sandbox.call import ApiCall
from stripe_sandbox.resources.listing import page
from stripe_sandbox.store import Store, new_id
from stripe_sandbox.wire import Params, StripeError

# Stripe's longest recurring interval is three years, whatever the unit.
INTERVAL_MAX_COUNT = {"day": 1095, "week": 156, "month": 36, "year": 3}


@dataclass
class ProductData:
    name: str
    description: str | None
    metadata: dict


@dataclass
class PriceData:
    """A price to create, read and checked but not yet stored (so a failed request leaves nothing behind)."""

    currency: str
    unit_amount: int
    interval: str | None
    interval_count: int | None
    product_id: str | None
    product_data: ProductData | None
    # Parameter names for later errors, e.g. `line_items[0][price_data][recurring]`.
    currency_param: str
    product_param: str
    recurring_param: str


def read_price_data(params: Params, *, product_description: bool) -> PriceData:
    """Read `currency`, `unit_amount`, `recurring` and `product` or `product_data` (Checkout's product_data also
    takes a description, the Prices API's does not)."""
    currency = params.currency("currency", required=True)
    unit_amount = params.integer("unit_amount", required=True, minimum=0)
    interval = interval_count = None
    recurring = params.hash("recurring")
    if recurring is not None:
        interval = recurring.string("interval", required=True, choices=tuple(INTERVAL_MAX_COUNT))
        interval_count = recurring.integer("interval_count", minimum=1) or 1
        if interval_count > INTERVAL_MAX_COUNT[interval]:
            raise StripeError(
                "The maximum recurring interval is 3 years (3 years, 36 months, 156 weeks or 1095 days).",
                param=recurring.name("interval_count"),
            )
    product_id = params.string("product")
    product_data = None
    product_params = params.hash("product_data")
    if product_params is not None:
        product_data = ProductData(
            name=product_params.string("name", required=True, max_length=250),
            description=product_params.string("description", max_length=40000) if product_description else None,
            metadata=product_params.metadata(),
        )
    if (product_id is None) == (product_data is None):
        raise StripeError(
            "You must specify exactly one of these parameters: product, product_data.", param=params.name("product")
        )
    return PriceData(
        currency=currency,
        unit_amount=unit_amount,
        interval=interval,
        interval_count=interval_count,
        product_id=product_id,
        product_data=product_data,
        currency_param=params.name("currency"),
        product_param=params.name("product"),
        recurring_param=params.name("recurring"),
    )


def check_price_data(store: Store, data: PriceData) -> None:
    """The checks that need the store: the product named must exist."""
    if data.product_id is not None:
        store.get("product", data.product_id, param=data.product_param, status=400)


def store_price(
    store: Store, data: PriceData, *, now: int, active: bool, nickname=None, lookup_key=None, metadata=None
) -> dict:
    product_id = data.product_id
    if data.product_data is not None:
        product = store.add(
            objects.product(
                id=new_id("prod_", 14),
                created=now,
                name=data.product_data.name,
                description=data.product_data.description,
                metadata=data.product_data.metadata,
                active=True,
            )
        )
        product_id = product["id"]
    return store.add(
        objects.price(
            id=new_id("price_", 24),
            created=now,
            product=product_id,
            currency=data.currency,
            unit_amount=data.unit_amount,
            interval=data.interval,
            interval_count=data.interval_count,
            active=active,
            nickname=nickname,
            lookup_key=lookup_key,
            metadata=metadata or {},
        )
    )


def product_create(call: ApiCall) -> dict:
    params = call.params
    id = params.string("id", max_length=200)
    name = params.string("name", required=True, max_length=250)
    description = params.string("description", max_length=40000)
    active = params.boolean("active")
    metadata = params.metadata()
    params.finish()
    if id is not None and call.store.find("product", id) is not None:
        raise StripeError("Product already exists.", param="id", code="resource_already_exists")
    product = call.store.add(
        objects.product(
            id=id or new_id("prod_", 14),
            created=call.now,
            name=name,
            description=description,
            metadata=metadata,
            active=active is not False,
        )
    )
    call.store.emit("product.created", product, request=call.event_request)
    return product


def product_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("product", id)


def product_features(call: ApiCall, id: str) -> dict:
    """A product's entitlement features: the sandbox has none (dj-stripe asks for them when it syncs a product)."""
    call.store.get("product", id)
    return page(call.params, [], url=f"/v1/products/{id}/features", object_type="product_feature")


def price_create(call: ApiCall) -> dict:
    params = call.params
    data = read_price_data(params, product_description=False)
    active = params.boolean("active")
    nickname = params.string("nickname")
    lookup_key = params.string("lookup_key", max_length=200)
    metadata = params.metadata()
    params.finish()
    check_price_data(call.store, data)
    price = store_price(
        call.store,
        data,
        now=call.now,
        active=active is not False,
        nickname=nickname,
        lookup_key=lookup_key,
        metadata=metadata,
    )
    # Prices (and products) made inline from a Checkout Session's price_data get no events; these do.
    call.store.emit("price.created", price, request=call.event_request)
    return price


def price_retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("price", id)


ROUTES = [
    ("POST", "/v1/products", product_create),
    ("GET", "/v1/products/{id}", product_retrieve),
    ("GET", "/v1/products/{id}/features", product_features),
    ("POST", "/v1/prices", price_create),
    ("GET", "/v1/prices/{id}", price_retrieve),
]

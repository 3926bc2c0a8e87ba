"""`/v1/checkout/sessions`: create, retrieve, list, list line items and expire."""

from dataclasses import dataclass

from stripe_sandbox import fulfillment, objects
from stripe_sandbox.amounts import amounts_off
from stripe_sandbox.call import ApiCall
from stripe_sandbox.resources.listing import created_filter, page
from stripe_sandbox.resources.products import PriceData, check_price_data, read_price_data, store_price
from stripe_sandbox.store import Store, new_id
from stripe_sandbox.wire import Params, StripeError

MIN_LIFETIME = 30 * 60
MAX_LIFETIME = 24 * 3600
TRIAL_MAX_DAYS = 730

# API version 2026-03-25.dahlia renamed the ui_mode values; a request gets the names of the version it asks for.
UI_MODES_RENAMED_IN = "2026-03-25"
UI_MODES_NOW = {"hosted": "hosted_page", "embedded": "embedded_page"}
UI_MODES_BEFORE = {"hosted": "hosted", "embedded": "embedded"}


# Stripe's enums for Checkout Session create, as stripe-python 15.6.2's SessionCreateParams types them
# (2026-08-26.dahlia; the same for 2026-05-27.dahlia). The sandbox's page pays by card or US bank account only, but it
# refuses what Stripe refuses, not what it cannot show.
LOCALES = (
    "auto",
    "bg",
    "cs",
    "da",
    "de",
    "el",
    "en",
    "en-GB",
    "es",
    "es-419",
    "et",
    "fi",
    "fil",
    "fr",
    "fr-CA",
    "hr",
    "hu",
    "id",
    "it",
    "ja",
    "ko",
    "lt",
    "lv",
    "ms",
    "mt",
    "nb",
    "nl",
    "pl",
    "pt",
    "pt-BR",
    "ro",
    "ru",
    "sk",
    "sl",
    "sv",
    "th",
    "tr",
    "vi",
    "zh",
    "zh-HK",
    "zh-TW",
)
PAYMENT_METHOD_TYPES = (
    "acss_debit",
    "affirm",
    "afterpay_clearpay",
    "alipay",
    "alma",
    "amazon_pay",
    "au_becs_debit",
    "bacs_debit",
    "bancontact",
    "billie",
    "bizum",
    "blik",
    "boleto",
    "card",
    "cashapp",
    "crypto",
    "customer_balance",
    "eps",
    "fpx",
    "giropay",
    "grabpay",
    "ideal",
    "kakao_pay",
    "klarna",
    "konbini",
    "kr_card",
    "link",
    "mb_way",
    "mobilepay",
    "multibanco",
    "naver_pay",
    "nz_bank_account",
    "oxxo",
    "p24",
    "pay_by_bank",
    "payco",
    "paynow",
    "paypal",
    "payto",
    "pix",
    "promptpay",
    "revolut_pay",
    "samsung_pay",
    "satispay",
    "scalapay",
    "sepa_debit",
    "sofort",
    "sunbit",
    "swish",
    "twint",
    "upi",
    "us_bank_account",
    "wechat_pay",
    "zip",
)


def ui_modes(api_version: str) -> dict[str, str]:
    return UI_MODES_NOW if api_version[:10] >= UI_MODES_RENAMED_IN else UI_MODES_BEFORE


@dataclass
class LineItemInput:
    price_id: str | None
    price_data: PriceData | None
    quantity: int
    param: str  # `line_items[N]`


def _read_line_item(params: Params) -> LineItemInput:
    price_id = params.string("price")
    price_params = params.hash("price_data")
    price_data = read_price_data(price_params, product_description=True) if price_params is not None else None
    if (price_id is None) == (price_data is None):
        raise StripeError(
            f"You must specify exactly one of these parameters: {params.name('price')}, {params.name('price_data')}.",
            param=params.name("price"),
        )
    if not params.has("quantity"):
        raise StripeError(f"Quantity is required. Add `quantity` to `{params.prefix}`.", param=params.name("quantity"))
    quantity = params.integer("quantity", minimum=1, maximum=999999)
    return LineItemInput(price_id=price_id, price_data=price_data, quantity=quantity, param=params.prefix)


@dataclass
class SessionCreateInput:
    """The parameters of a session create, each read and checked on its own but not yet against the others."""

    mode: str
    ui_mode: str
    success_url: str | None
    cancel_url: str | None
    # Checked for embedded sessions but not shown: `return_url` is not among the keys of Stripe's fixture.
    return_url: str | None
    line_items: list[LineItemInput]
    customer_id: str | None
    customer_email: str | None
    client_reference_id: str | None
    metadata: dict[str, str]
    subscription_data: dict | None
    coupon_ids: list[str]
    allow_promotion_codes: bool | None
    expires_at: int | None
    payment_method_types: list[str]
    locale: str | None
    billing_address_collection: str | None


def create(call: ApiCall) -> dict:
    store = call.store
    modes = ui_modes(call.api_version)
    given = _read_create_params(call.params, modes)
    _check_create_params(given, hosted=modes["hosted"], now=call.now)

    prices = _check_line_items(store, given.mode, given.line_items)
    currency = prices[0][0]
    customer = store.get("customer", given.customer_id, param="customer", status=400) if given.customer_id else None
    coupon = _session_coupon(store, given.coupon_ids, currency=currency)

    id = new_id("cs_test_", 58)
    subtotals = [
        unit_amount * item.quantity for (_, unit_amount, _), item in zip(prices, given.line_items, strict=True)
    ]
    item_discounts = amounts_off(coupon, subtotals)
    discount = None
    if coupon is not None:
        discount = objects.discount(id=new_id("di_", 24), coupon_id=coupon["id"], checkout_session=id, start=call.now)
    items = _session_line_items(store, given.line_items, item_discounts, discount=discount, now=call.now)

    hosted = given.ui_mode == modes["hosted"]
    session = objects.checkout_session(
        id=id,
        created=call.now,
        expires_at=given.expires_at or call.now + MAX_LIFETIME,
        mode=given.mode,
        ui_mode=given.ui_mode,
        url=f"{call.public_url}/c/pay/{id}" if hosted else None,
        client_secret=None if hosted else f"{id}_secret_{new_id('', 24)}",
        currency=currency,
        amount_subtotal=sum(subtotals),
        amount_discount=sum(item_discounts),
        customer=customer["id"] if customer else None,
        customer_email=given.customer_email,
        client_reference_id=given.client_reference_id,
        metadata=given.metadata,
        success_url=given.success_url,
        cancel_url=given.cancel_url,
        coupon_id=coupon["id"] if coupon else None,
        payment_method_types=given.payment_method_types,
        locale=given.locale,
        billing_address_collection=given.billing_address_collection,
        allow_promotion_codes=given.allow_promotion_codes,
    )
    store.attached[id, "line_items"] = items
    store.attached[id, "discount"] = discount
    store.attached[id, "subscription_data"] = given.subscription_data
    store.attached[id, "return_url"] = given.return_url
    fulfillment.schedule_expiry(store, session)
    return store.add(session)


def _read_create_params(params: Params, modes: dict[str, str]) -> SessionCreateInput:
    """Every parameter, read in this order (the first invalid one is the error); an unknown one is an error too."""
    given = SessionCreateInput(
        mode=params.string("mode", required=True, choices=("payment", "setup", "subscription")),
        ui_mode=params.string("ui_mode", choices=tuple(modes.values())) or modes["hosted"],
        success_url=params.url("success_url"),
        cancel_url=params.url("cancel_url"),
        return_url=params.url("return_url"),
        line_items=[_read_line_item(item) for item in params.hashes("line_items")],
        customer_id=params.string("customer"),
        customer_email=params.email("customer_email"),
        client_reference_id=params.string("client_reference_id", max_length=200),
        metadata=params.metadata(),
        subscription_data=_read_subscription_data(params),
        coupon_ids=[discount.string("coupon", required=True) for discount in params.hashes("discounts")],
        allow_promotion_codes=params.boolean("allow_promotion_codes"),
        expires_at=params.integer("expires_at"),
        payment_method_types=params.strings("payment_method_types", choices=PAYMENT_METHOD_TYPES),
        locale=params.string("locale", choices=LOCALES),
        billing_address_collection=params.string("billing_address_collection", choices=("auto", "required")),
    )
    params.finish()
    return given


def _read_subscription_data(params: Params) -> dict | None:
    subscription_params = params.hash("subscription_data")
    if subscription_params is None:
        return None
    return {
        "metadata": subscription_params.metadata(),
        "trial_period_days": subscription_params.integer("trial_period_days", minimum=1, maximum=TRIAL_MAX_DAYS),
    }


def _check_create_params(given: SessionCreateInput, *, hosted: str, now: int) -> None:
    """The parameters against each other, before anything is looked up (`hosted`: the hosted ui_mode's name)."""
    if given.mode == "setup":
        raise StripeError("The Stripe sandbox does not implement setup mode yet.", param="mode")
    _check_redirect_urls(given, hosted=hosted)
    if not given.line_items:
        raise StripeError(
            f"line_items is required in `{given.mode}` mode.", param="line_items", code="parameter_missing"
        )
    if given.customer_id is not None and given.customer_email is not None:
        raise StripeError("You may only specify one of these parameters: customer, customer_email.", param="customer")
    if given.subscription_data is not None and given.mode != "subscription":
        raise StripeError("subscription_data can only be used in `subscription` mode.", param="subscription_data")
    if len(given.coupon_ids) > 1:
        raise StripeError("You may only apply one discount to a Checkout Session.", param="discounts")
    if given.coupon_ids and given.allow_promotion_codes:
        raise StripeError(
            "You may only specify one of these parameters: allow_promotion_codes, discounts.", param="discounts"
        )
    if given.expires_at is not None:
        _check_expires_at(given.expires_at, now=now)


def _check_redirect_urls(given: SessionCreateInput, *, hosted: str) -> None:
    """A hosted page redirects to success_url (and cancel_url); an embedded one to return_url only."""
    ui_mode = given.ui_mode
    if ui_mode == hosted:
        if given.success_url is None:
            raise StripeError(
                f"success_url is required when ui_mode is `{ui_mode}`.", param="success_url", code="parameter_missing"
            )
        if given.return_url is not None:
            raise StripeError(f"return_url cannot be used when ui_mode is `{ui_mode}`.", param="return_url")
        return
    for name, value in (("success_url", given.success_url), ("cancel_url", given.cancel_url)):
        if value is not None:
            raise StripeError(f"{name} cannot be used when ui_mode is `{ui_mode}`.", param=name)
    if given.return_url is None:
        raise StripeError(
            f"return_url is required when ui_mode is `{ui_mode}`.", param="return_url", code="parameter_missing"
        )


def _check_expires_at(expires_at: int, *, now: int) -> None:
    if expires_at < now + MIN_LIFETIME:
        raise StripeError(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
            param="expires_at",
        )
    if expires_at > now + MAX_LIFETIME:
        raise StripeError(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            param="expires_at",
        )


def _check_line_items(store: Store, mode: str, line_items: list[LineItemInput]) -> list[tuple[str, int, bool]]:
    """Check the prices against the store and the mode; return (currency, unit amount, recurring) per item."""
    prices = []
    for item in line_items:
        if item.price_data is not None:
            check_price_data(store, item.price_data)
            data = item.price_data
            prices.append((data.currency, data.unit_amount, data.interval is not None))
            recurring_param, currency_param = data.recurring_param, data.currency_param
        else:
            price_param = f"{item.param}[price]"
            price = store.get("price", item.price_id, param=price_param, status=400)
            if not price["active"]:
                raise StripeError(
                    "The price specified is inactive. This field only accepts active prices.", param=price_param
                )
            prices.append((price["currency"], price["unit_amount"], price["recurring"] is not None))
            recurring_param = currency_param = price_param
        currency, _, recurring = prices[-1]
        if mode == "payment" and recurring:
            raise StripeError(
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                "or use only one-time prices.",
                param=recurring_param,
            )
        if currency != prices[0][0]:
            raise StripeError(
                f"All line items must use the same currency; `{item.param}` is in {currency}, "
                f"the first is in {prices[0][0]}.",
                param=currency_param,
            )
    if mode == "subscription" and not any(recurring for _, _, recurring in prices):
        raise StripeError(
            "You must provide at least one recurring price in `subscription` mode when using prices.",
            param="line_items",
        )
    return prices


def _session_coupon(store: Store, coupon_ids: list[str], *, currency: str) -> dict | None:
    """The coupon the session applies, if any; an amount off must be in the session's currency."""
    if not coupon_ids:
        return None
    coupon = store.get("coupon", coupon_ids[0], param="discounts[0][coupon]", status=400)
    if coupon["amount_off"] is not None and coupon["currency"] != currency:
        raise StripeError(
            f"The coupon's currency ({coupon['currency']}) does not match the session's currency ({currency}).",
            param="discounts[0][coupon]",
        )
    return coupon


def _session_line_items(
    store: Store, line_items: list[LineItemInput], item_discounts: list[int], *, discount: dict | None, now: int
) -> list[dict]:
    """The session's line items; a price given as price_data is stored now, inactive, as Stripe stores it."""
    items = []
    for item, item_discount in zip(line_items, item_discounts, strict=True):
        if item.price_data is not None:
            price = store_price(store, item.price_data, now=now, active=False)
        else:
            price = store.find("price", item.price_id)
        product = store.find("product", price["product"])
        line_item = objects.checkout_item(
            id=new_id("li_", 24),
            price=price,
            description=product["name"],
            quantity=item.quantity,
            amount_discount=item_discount,
        )
        store.attached[line_item["id"], "discount"] = discount
        items.append(line_item)
    return items


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("checkout.session", id)


def list_sessions(call: ApiCall) -> dict:
    params = call.params
    filters = {name: params.string(name) for name in ("customer", "payment_intent", "status", "subscription")}
    created = created_filter(params)
    sessions = [
        session
        for session in call.store.newest_first("checkout.session")
        if all(value is None or session[name] == value for name, value in filters.items()) and created(session)
    ]
    return page(params, sessions, url="/v1/checkout/sessions", object_type="checkout.session")


def list_line_items(call: ApiCall, id: str) -> dict:
    call.store.get("checkout.session", id)
    items = call.store.attached[id, "line_items"]
    return page(call.params, items, url=f"/v1/checkout/sessions/{id}/line_items", object_type="item")


def expire(call: ApiCall, id: str) -> dict:
    call.params.finish()
    session = call.store.get("checkout.session", id)
    return fulfillment.expire_session(call.store, session, now=call.now, request=call.event_request)


ROUTES = [
    ("POST", "/v1/checkout/sessions", create),
    ("GET", "/v1/checkout/sessions", list_sessions),
    ("GET", "/v1/checkout/sessions/{id}", retrieve),
    ("GET", "/v1/checkout/sessions/{id}/line_items", list_line_items),
    ("POST", "/v1/checkout/sessions/{id}/expire", expire),
]

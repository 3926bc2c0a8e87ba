"""`/v1/coupons`: create and retrieve."""

from stripe_sandbox import objects
from stripe_sandbox.call import ApiCall
from stripe_sandbox.store import new_id
from stripe_sandbox.wire import StripeError

DURATIONS = ("once", "forever", "repeating")


def create(call: ApiCall) -> dict:
    params = call.params
    id = params.string("id", max_length=200)
    percent_off = params.decimal("percent_off")
    amount_off = params.integer("amount_off", minimum=1)
    currency = params.currency("currency")
    duration = params.string("duration", choices=DURATIONS) or "once"
    duration_in_months = params.integer("duration_in_months", minimum=1)
    name = params.string("name", max_length=40)
    max_redemptions = params.integer("max_redemptions", minimum=1)
    redeem_by = params.integer("redeem_by")
    metadata = params.metadata()
    params.finish()

    if (percent_off is None) == (amount_off is None):
        raise StripeError(
            "You must specify exactly one of these parameters: amount_off, percent_off.",
            param="percent_off" if percent_off is not None else "amount_off",
        )
    if percent_off is not None and not 0 < percent_off <= 100:
        raise StripeError("percent_off must be greater than 0 and at most 100.", param="percent_off")
    if amount_off is not None and currency is None:
        raise StripeError("You must specify a currency when creating an amount_off coupon.", param="currency")
    if percent_off is not None and currency is not None:
        raise StripeError("currency can only be set on amount_off coupons.", param="currency")
    if duration == "repeating" and duration_in_months is None:
        raise StripeError("duration_in_months is required when duration is repeating.", param="duration_in_months")
    if duration != "repeating" and duration_in_months is not None:
        raise StripeError("duration_in_months can only be set when duration is repeating.", param="duration_in_months")
    if redeem_by is not None and redeem_by <= call.now:
        raise StripeError("redeem_by must be in the future.", param="redeem_by")
    if id is not None and call.store.find("coupon", id) is not None:
        raise StripeError("Coupon already exists.", param="id", code="resource_already_exists")

    coupon = call.store.add(
        objects.coupon(
            id=id or new_id("", 8).upper(),
            created=call.now,
            percent_off=percent_off,
            amount_off=amount_off,
            currency=currency,
            duration=duration,
            duration_in_months=duration_in_months,
            name=name,
            max_redemptions=max_redemptions,
            redeem_by=redeem_by,
            metadata=metadata,
        )
    )
    call.store.emit("coupon.created", coupon, request=call.event_request)
    return coupon


def retrieve(call: ApiCall, id: str) -> dict:
    call.params.finish()
    return call.store.get("coupon", id)


ROUTES = [
    ("POST", "/v1/coupons", create),
    ("GET", "/v1/coupons/{id}", retrieve),
]

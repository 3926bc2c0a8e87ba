"""Stripe's list endpoints: pages of `limit` objects after `starting_after` or before `ending_before`, and the
`created` filter."""

from collections.abc import Callable

from stripe_sandbox import objects
from stripe_sandbox.wire import Params, StripeError, resource_missing


def page(params: Params, objects_in_order: list[dict], *, url: str, object_type: str) -> dict:
    """A list object of up to `limit` (1 to 100, default 10) of `objects_in_order` (newest first, usually)."""
    limit = params.integer("limit", minimum=1, maximum=100) or 10
    starting_after = params.string("starting_after")
    ending_before = params.string("ending_before")
    params.finish()
    if starting_after is not None and ending_before is not None:
        raise StripeError(
            "You may only specify one of these parameters: ending_before, starting_after.", param="ending_before"
        )
    cursor = starting_after or ending_before
    if cursor is None:
        return objects.list_object(objects_in_order[:limit], url=url, has_more=limit < len(objects_in_order))
    ids = [obj["id"] for obj in objects_in_order]
    if cursor not in ids:
        param = "starting_after" if starting_after is not None else "ending_before"
        raise resource_missing(object_type, cursor, param=param, status=400)
    index = ids.index(cursor)
    if starting_after is not None:
        start = index + 1
        return objects.list_object(
            objects_in_order[start : start + limit], url=url, has_more=start + limit < len(objects_in_order)
        )
    start = max(index - limit, 0)
    return objects.list_object(objects_in_order[start:index], url=url, has_more=start > 0)


def created_filter(params: Params) -> Callable[[dict], bool]:
    """`created=<unix time>` or `created[gt|gte|lt|lte]=<unix time>`, as a test on an object."""
    bounds = params.range("created") or {}
    gt, gte, lt, lte = (bounds.get(op) for op in ("gt", "gte", "lt", "lte"))
    return lambda obj: (
        (gt is None or obj["created"] > gt)
        and (gte is None or obj["created"] >= gte)
        and (lt is None or obj["created"] < lt)
        and (lte is None or obj["created"] <= lte)
    )

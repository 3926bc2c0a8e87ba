"""The Stripe API endpoints the sandbox implements, as routes from method and path to a handler."""

import re
from collections.abc import Callable
from urllib.parse import unquote

from stripe_sandbox.resources import (
    accounts,
    billing_portal,
    checkout_sessions,
    coupons,
    customers,
    events,
    invoices,
    payments,
    products,
    subscriptions,
    test_clocks,
    test_helpers,
    webhook_endpoints,
)

ROUTES = [
    *accounts.ROUTES,
    *billing_portal.ROUTES,
    *checkout_sessions.ROUTES,
    *coupons.ROUTES,
    *customers.ROUTES,
    *events.ROUTES,
    *invoices.ROUTES,
    *payments.ROUTES,
    *products.ROUTES,
    *subscriptions.ROUTES,
    *test_clocks.ROUTES,
    *test_helpers.ROUTES,
    *webhook_endpoints.ROUTES,
]

_COMPILED = [
    (method, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]


def resolve(method: str, path: str) -> tuple[Callable, dict] | None:
    """The handler for this request and its path arguments (ids, URL-decoded), or None."""
    for route_method, pattern, handler in _COMPILED:
        if route_method == method:
            match = pattern.match(path)
            if match:
                return handler, {name: unquote(value) for name, value in match.groupdict().items()}
    return None

"""Calls the sandbox tests share, through stripe-python as a client of Stripe makes them."""

import stripe


def helper(client: stripe.StripeClient, path: str, **params):
    """POST /v1/test_helpers/<path> (what stripe-python has no typed method for), its answer as a StripeObject."""
    return client.deserialize(client.raw_request("post", f"/v1/test_helpers/{path}", **params), api_mode="V1")


def all_events(client: stripe.StripeClient) -> list:
    """Every event so far, oldest first, page after page."""
    events, after = [], None
    while True:
        page = client.v1.events.list(params={"limit": 100, **({"starting_after": after} if after else {})})
        events += page.data
        if not page.has_more:
            return list(reversed(events))
        after = page.data[-1].id


def raw(stripe_object) -> dict:
    """The JSON the sandbox sent, before stripe-python turned it into objects."""
    return stripe_object.last_response.data

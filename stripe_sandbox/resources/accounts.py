"""`/v1/account`: the account the API key belongs to."""

from stripe_sandbox.call import ApiCall


def retrieve_current(call: ApiCall) -> dict:
    call.params.finish()
    return call.store.account


ROUTES = [("GET", "/v1/account", retrieve_current)]
